package worker

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

const qURL = "http://queue.test/default"

func newTestWorker(t *testing.T, q Queue, st *testbroker.Store, mod func(*Config)) *Worker {
	t.Helper()
	cfg := Config{
		Queues:            []QueueRef{{Name: "default", Band: "normal", URL: qURL}},
		Concurrency:       2,
		VisibilityTimeout: 4 * time.Second,
		Heartbeat:         200 * time.Millisecond,
		WaitTime:          50 * time.Millisecond,
		KillGrace:         time.Second,
		ShutdownGrace:     5 * time.Second,
		Info:              plan.WorkerInfo{ID: "w-test", Host: "h", PID: 1},
		TempDir:           t.TempDir(),
		Log:               zerolog.Nop(),
	}
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg, q, st)
}

func send(t *testing.T, q *testbroker.Queue, st *testbroker.Store, id string, argv ...string) {
	t.Helper()
	tk := &plan.Task{ID: id, Argv: argv}
	tk.Normalize()
	if _, err := st.PutTask(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(tk)
	if _, err := q.Send(context.Background(), qURL, sqs.Entry{Body: string(body), Attributes: map[string]string{"taskiq_id": id}}); err != nil {
		t.Fatal(err)
	}
}

// runUntil runs w until cond holds (checked every 20 ms) or 20 s pass.
func runUntil(t *testing.T, w *Worker, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("condition not reached in 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestWorkerRunsTaskStoresResultThenAcks(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	send(t, q, st, "t1", "true")
	send(t, q, st, "t2", "sh", "-c", "exit 3")
	// No heartbeat in the way: on a slow machine one would look for a
	// cancel marker while a task runs, which is not a read before start.
	w := newTestWorker(t, q, st, func(c *Config) { c.Heartbeat = time.Hour })
	runUntil(t, w, func() bool { return q.Len(qURL) == 0 })
	if r := st.Result("t1"); r == nil || r.State != plan.StateSucceeded || r.Attempt != 1 {
		t.Errorf("t1 result = %+v", r)
	}
	if r := st.Result("t2"); r == nil || r.State != plan.StateFailed || *r.ExitCode != 3 {
		t.Errorf("t2 result = %+v", r)
	}
	// The happy path reads nothing before it starts: one claim put, no
	// cancel check, no listing.
	if n := st.Calls("cancel_check") + st.Calls("list"); n != 0 {
		t.Errorf("%d reads before start, want 0", n)
	}
}

func TestWorkerDuplicateOfFinishedTaskIsAcked(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	send(t, q, st, "t1", "true")
	_ = st.PutResult(context.Background(), &plan.Result{V: plan.Version, ID: "t1", State: plan.StateSucceeded, Attempt: 1})
	_ = st.Claim(context.Background(), &plan.Running{V: plan.Version, ID: "t1", Attempt: 1})
	w := newTestWorker(t, q, st, nil)
	runUntil(t, w, func() bool { return q.Len(qURL) == 0 })
	if st.Calls("put_result") != 1 {
		t.Errorf("result written again")
	}
}

// With the store down, the worker stops receiving after the first failure
// and holds what it took; once the store is back the task runs on its
// first delivery: nothing is received over and over towards the DLQ.
func TestWorkerHoldsMessagesWhileStoreIsDown(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	send(t, q, st, "t1", "true")
	st.SetDown(true)
	var probed atomic.Bool
	w := newTestWorker(t, q, st, nil)
	go func() {
		// Up again once the worker has probed the store twice.
		for st.Calls("check") < 2 {
			time.Sleep(20 * time.Millisecond)
		}
		probed.Store(true)
		st.SetDown(false)
	}()
	runUntil(t, w, func() bool { return q.Len(qURL) == 0 })
	if !probed.Load() {
		t.Fatal("finished before the store came back")
	}
	if r := st.Result("t1"); r == nil || r.State != plan.StateSucceeded || r.Attempt != 1 {
		t.Errorf("result = %+v", r)
	}
	// The message was received once: held, not released and received again.
	if got := st.Claims("t1"); len(got) != 1 {
		t.Errorf("claims = %v, want one", got)
	}
}

// With every slot taken by a message held while the store is down, the
// fetch loop waits for a slot and probes nothing: the held messages probe
// the store themselves, and their tasks run once it is back.
func TestWorkerWithEverySlotHeldProbesTheStore(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	send(t, q, st, "t1", "true")
	send(t, q, st, "t2", "true")
	st.SetDown(true)
	// No heartbeat extends a lease here: it must outlast the outage and
	// the task, counted from the receive, on a slow machine.
	w := newTestWorker(t, q, st, func(c *Config) { c.Heartbeat, c.VisibilityTimeout = time.Hour, 30*time.Second })
	go func() {
		for st.Calls("check") < 1 {
			time.Sleep(20 * time.Millisecond)
		}
		st.SetDown(false)
	}()
	runUntil(t, w, func() bool { return st.Result("t1") != nil && st.Result("t2") != nil })
	for _, id := range []string{"t1", "t2"} {
		if got := st.Claims(id); len(got) != 1 {
			t.Errorf("%s claims = %v, want one", id, got)
		}
	}
}

// An attempt that runs past its lease (a frozen worker: its clock jumps)
// stores only its own attempt record and leaves the message alone.
func TestWorkerPastItsLeaseRecordsOnlyItsAttempt(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	dir := t.TempDir()
	send(t, q, st, "t1", "sh", "-c", "touch "+dir+"/started; sleep 0.5")
	var jump atomic.Int64
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Heartbeat = time.Hour // no heartbeat in the way: the end of the run sees the jump
		c.Now = func() time.Time { return time.Now().Add(time.Duration(jump.Load())) }
	})
	go func() {
		for st.Calls("claim") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		jump.Store(int64(time.Minute)) // frozen for a minute meanwhile
	}()
	runUntil(t, w, func() bool { return st.Attempt("t1", 1) != nil })
	if r := st.Result("t1"); r != nil {
		t.Errorf("a stale attempt wrote the final result %+v", r)
	}
	if q.Len(qURL) != 1 {
		t.Errorf("the stale attempt deleted the message")
	}
	if n := q.Calls("delete"); n != 0 {
		t.Errorf("%d delete calls", n)
	}
}

// A message at the last delivery its queue's redrive policy allows is not
// left to be dead-lettered unread when the worker cannot finish the task on
// it (here: another worker runs it): it is replaced by a fresh copy, and
// the task goes on.
func TestWorkerRenewsAMessageAtItsLastDelivery(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	q.MaxReceive = 2
	send(t, q, st, "t1", "true")
	ctx := context.Background()
	// Another worker holds attempt 1 with a fresh marker.
	now := time.Now()
	_ = st.Claim(ctx, &plan.Running{V: plan.Version, ID: "t1", Attempt: 1, Worker: plan.WorkerInfo{ID: "other", Host: "h", PID: 2},
		StartedAt: now, HeartbeatAt: now.Add(time.Hour), HeartbeatEvery: plan.Duration(time.Hour)})
	// The first delivery went to a receiver that let it go.
	if msgs, _ := q.Receive(ctx, qURL, 1, 0, 0); len(msgs) != 1 {
		t.Fatal("no first delivery")
	}
	w := newTestWorker(t, q, st, nil)
	runUntil(t, w, func() bool { return q.Calls("send") >= 2 && q.Calls("delete") >= 1 })
	if n := q.Len(qURL); n != 1 {
		t.Fatalf("%d messages, want the fresh copy only", n)
	}
	if c := q.ReceiveCount(qURL, "t1"); c != 0 {
		t.Errorf("the copy was received %d times; want a fresh, delayed copy", c)
	}
}
