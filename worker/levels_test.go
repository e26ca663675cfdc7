package worker

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// levelRefs are the queues of logical queue "default" at qURL, as the work
// command builds them.
func levelRefs() []QueueRef {
	var refs []QueueRef
	for _, b := range plan.Bands {
		refs = append(refs, QueueRef{Name: "default", Band: b.Name, URL: qURL + b.Suffix, Level: !b.Inbox, Min: b.Min})
	}
	return refs
}

// recordingQueue notes every receive: the queue and the wait.
type recordingQueue struct {
	*testbroker.Queue
	mu       sync.Mutex
	receives []receiveCall
	sent     map[string]int // by queue URL
	hints    int
	batches  int
}

type receiveCall struct {
	url  string
	wait time.Duration
	max  int
}

func (r *recordingQueue) Receive(ctx context.Context, url string, max int, wait, vis time.Duration) ([]sqs.Message, error) {
	r.mu.Lock()
	r.receives = append(r.receives, receiveCall{url, wait, max})
	r.mu.Unlock()
	return r.Queue.Receive(ctx, url, max, wait, vis)
}

func (r *recordingQueue) note(url string, e sqs.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = map[string]int{}
	}
	r.sent[url]++
	if _, ok := e.Attributes[plan.AttrHint]; ok {
		r.hints++
	}
}

func (r *recordingQueue) Send(ctx context.Context, url string, e sqs.Entry) (string, error) {
	r.note(url, e)
	return r.Queue.Send(ctx, url, e)
}

func (r *recordingQueue) SendBatch(ctx context.Context, url string, es []sqs.Entry) ([]error, error) {
	r.mu.Lock()
	r.batches++
	r.mu.Unlock()
	for _, e := range es {
		r.note(url, e)
	}
	return r.Queue.SendBatch(ctx, url, es)
}

func (r *recordingQueue) calls() []receiveCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.receives)
}

func sendPriority(t *testing.T, q *testbroker.Queue, st *testbroker.Store, id string, priority int) {
	t.Helper()
	tk := &plan.Task{ID: id, Argv: []string{"true"}, Priority: priority}
	tk.Normalize()
	if _, err := st.PutTask(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(tk)
	attrs := map[string]string{"taskiq_id": id, plan.AttrPriority: strconv.Itoa(priority)}
	if _, err := q.Send(context.Background(), qURL, sqs.Entry{Body: string(body), Attributes: attrs}); err != nil {
		t.Fatal(err)
	}
}

// A backlog in the inbox runs strictly by level on one slot, whatever the
// order it was sent in: the worker parks what it cannot run yet (one
// hint for the lot) and takes the levels highest first. Every queue is
// empty at the end: no parked copy or hint is left behind.
func TestWorkerRunsBacklogStrictlyByLevel(t *testing.T) {
	q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
	prios := []int{3, 10, 0, 7, -5, 1, 9, 5, 2, 8, 4, 6, 50}
	for _, p := range prios {
		sendPriority(t, q.Queue, st, "t"+strconv.Itoa(p), p)
	}
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat = levelRefs(), 1, time.Hour
	})
	done := func() bool {
		for _, p := range prios {
			if st.Result("t"+strconv.Itoa(p)) == nil {
				return false
			}
		}
		return true
	}
	runUntil(t, w, done)
	type start struct {
		prio int
		at   time.Time
	}
	var starts []start
	for _, p := range prios {
		starts = append(starts, start{p, st.Result("t" + strconv.Itoa(p)).StartedAt})
	}
	slices.SortFunc(starts, func(a, b start) int { return a.at.Compare(b.at) })
	var order []int
	for _, s := range starts {
		order = append(order, s.prio)
	}
	// 50 and 10 share the top level; 50 was drained with 10 and sorts first.
	want := []int{50, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -5}
	if !slices.Equal(order, want) {
		t.Errorf("start order %v, want %v", order, want)
	}
	for _, r := range levelRefs() {
		if n := q.Len(r.URL); n != 0 {
			t.Errorf("%s holds %d messages at the end", r.Band, n)
		}
	}
	if q.hints != 1 {
		t.Errorf("%d hints sent, want 1 (one parking of the backlog)", q.hints)
	}
	if n := q.sent[qURL+"-p10"] + q.sent[qURL+"-n"]; n != 2 {
		t.Errorf("%d copies parked in p10 and below0, want 2", n)
	}
}

// An idle worker asks each level once (the sweep at start), then only its
// inbox, each time with the whole long-poll wait.
func TestIdleWorkerWaitsOnTheInboxAlone(t *testing.T) {
	q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat, c.WaitTime = levelRefs(), 4, time.Hour, 30*time.Millisecond
	})
	runUntil(t, w, func() bool { return len(q.calls()) >= 40 })
	calls := q.calls()
	var levels, drains, waits int
	for i, c := range calls {
		switch {
		case c.url != qURL:
			levels++
		case c.wait == 0:
			drains++
			if i != 0 {
				t.Errorf("receive %d: the inbox asked without waiting while idle", i)
			}
		case c.wait != 30*time.Millisecond:
			t.Errorf("receive %d waited %s, want the whole wait", i, c.wait)
		default:
			waits++
		}
	}
	if levels != len(plan.Levels) {
		t.Errorf("%d receives from levels, want %d (one sweep)", levels, len(plan.Levels))
	}
	if waits < len(calls)-len(plan.Levels)-1 {
		t.Errorf("%d long polls of %d receives", waits, len(calls))
	}
}

// A hint wakes a worker to the levels: a task parked by another worker
// runs, and the hint is deleted.
func TestHintSendsAnIdleWorkerToTheLevels(t *testing.T) {
	q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
	tk := &plan.Task{ID: "parked", Argv: []string{"true"}, Priority: 4}
	tk.Normalize()
	if _, err := st.PutTask(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(tk)
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat, c.WaitTime = levelRefs(), 1, time.Hour, 30*time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// Once the start-up sweep is over, park the task behind the worker's
	// back, as another worker would, with its hint.
	for len(q.calls()) < len(plan.Levels)+3 {
		time.Sleep(10 * time.Millisecond)
	}
	_, _ = q.Queue.Send(ctx, qURL+"-p4", sqs.Entry{Body: string(body)})
	_, _ = q.Queue.Send(ctx, qURL, sqs.Entry{Body: plan.HintBody, Attributes: map[string]string{plan.AttrHint: "levels"}})
	deadline := time.Now().Add(20 * time.Second)
	for st.Result("parked") == nil || q.Len(qURL) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the parked task did not run after its hint")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A message taken from a level and put off (its task is running on
// another worker) goes back to the inbox, not to the level where no worker
// might look for it.
func TestPutOffLevelMessageGoesBackToTheInbox(t *testing.T) {
	q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
	ctx := context.Background()
	tk := &plan.Task{ID: "t1", Argv: []string{"true"}, Priority: 3}
	tk.Normalize()
	if _, err := st.PutTask(ctx, tk); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(tk)
	if _, err := q.Queue.Send(ctx, qURL+"-p3", sqs.Entry{Body: string(body)}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	_ = st.Claim(ctx, &plan.Running{V: plan.Version, ID: "t1", Attempt: 1, Worker: plan.WorkerInfo{ID: "other", Host: "h", PID: 2},
		StartedAt: now, HeartbeatAt: now.Add(time.Hour), HeartbeatEvery: plan.Duration(time.Hour)})
	w := newTestWorker(t, q, st, func(c *Config) { c.Queues, c.Heartbeat = levelRefs(), time.Hour })
	// The start-up sweep finds it in p3.
	runUntil(t, w, func() bool { return q.Len(qURL+"-p3") == 0 })
	if q.Len(qURL) != 1 {
		t.Errorf("the inbox holds %d messages, want the put-off copy", q.Len(qURL))
	}
	if st.Result("t1") != nil {
		t.Error("a task running elsewhere was run")
	}
}

// A parking that fails (the level cannot be sent to) loses nothing: the
// messages are given back to the inbox and every task runs once.
func TestFailedParkingGivesTheMessagesBack(t *testing.T) {
	q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
	for i, p := range []int{2, 2, 3} {
		sendPriority(t, q.Queue, st, "t"+strconv.Itoa(i+1), p)
	}
	q.Queue.FailNext("send", errors.New("injected: the level cannot be reached"))
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat = levelRefs(), 1, time.Hour
	})
	runUntil(t, w, func() bool {
		return st.Result("t1") != nil && st.Result("t2") != nil && st.Result("t3") != nil
	})
	for _, id := range []string{"t1", "t2", "t3"} {
		if r := st.Result(id); r.Attempt != 1 || r.State != plan.StateSucceeded {
			t.Errorf("%s: %+v", id, r)
		}
	}
	// The two priority-2 tasks are parked together; that call fails and
	// both go back to the inbox; the next drain parks the one it cannot
	// run again.
	if q.batches != 2 {
		t.Errorf("%d parking calls, want 2 (the failed one, then one more)", q.batches)
	}
}

// A batch sent straight to a level, with a hint that names the level,
// runs on an idle worker without parking anything, and the worker asks
// that level alone after the hint: no receive from the others.
func TestHintNamingALevelSendsTheWorkerThereAlone(t *testing.T) {
	q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat, c.WaitTime = levelRefs(), 4, time.Hour, 30*time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for len(q.calls()) < len(plan.Levels)+3 {
		time.Sleep(10 * time.Millisecond)
	}
	after := len(q.calls())
	var ids []string
	for i := range 25 {
		id := "s" + strconv.Itoa(i)
		ids = append(ids, id)
		tk := &plan.Task{ID: id, Argv: []string{"true"}, Priority: 6}
		tk.Normalize()
		if _, err := st.PutTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(tk)
		_, _ = q.Queue.Send(ctx, qURL+"-p6", sqs.Entry{Body: string(body), Attributes: map[string]string{plan.AttrPriority: "6"}})
	}
	_, _ = q.Queue.Send(ctx, qURL, sqs.Entry{Body: plan.HintBody, Attributes: map[string]string{plan.AttrHint: "p6"}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := 0
		for _, id := range ids {
			if st.Result(id) != nil {
				n++
			}
		}
		if n == len(ids) && q.Len(qURL) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks ran after the hint", n, len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, c := range q.calls()[after:] {
		if c.url != qURL && c.url != qURL+"-p6" {
			t.Errorf("asked %s after a hint for p6", c.url)
		}
	}
	if q.batches != 0 || q.hints != 0 {
		t.Errorf("the worker sent %d batches and %d hints: it parked", q.batches, q.hints)
	}
}

// An idle worker that a task wakes starts it with no receive more: the
// long poll that brought fewer tasks than it has free slots is not
// followed by another look at the inbox (the claim is then the one round
// trip before the command starts). One that brought as many as its slots
// looks again, to choose the highest of what came in.
func TestWokenIdleWorkerStartsWhatFitsWithoutAnotherReceive(t *testing.T) {
	for _, tc := range []struct {
		slots, receives int
	}{{4, 1}, {1, 2}} {
		q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
		w := newTestWorker(t, q, st, func(c *Config) {
			c.Queues, c.Concurrency, c.Heartbeat = levelRefs(), tc.slots, time.Hour
		})
		w.sweptAt, w.waitedIdle = time.Now(), true // after a long poll that found nothing
		sendPriority(t, q.Queue, st, "t1", 5)
		got, _, err := w.receive(context.Background(), tc.slots, 50*time.Millisecond)
		if err != nil || len(got) != 1 {
			t.Fatalf("%d slots: %v %v", tc.slots, got, err)
		}
		if n := len(q.calls()); n != tc.receives {
			t.Errorf("%d slots: %d receives, want %d", tc.slots, n, tc.receives)
		}
	}
}

// A message that comes back to a level after the worker found it empty (a
// receive whose answer was lost, here one taken behind the worker's back
// with a short lease) is found by the second look a lease later, not at
// the five-minute sweep, and no hint is needed.
func TestEmptiedLevelIsAskedAgainALeaseLater(t *testing.T) {
	q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
	ctx := context.Background()
	for i := range 3 {
		id := "r" + strconv.Itoa(i)
		tk := &plan.Task{ID: id, Argv: []string{"true"}, Priority: 4}
		tk.Normalize()
		if _, err := st.PutTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(tk)
		if _, err := q.Queue.Send(ctx, qURL+"-p4", sqs.Entry{Body: string(body), Attributes: map[string]string{plan.AttrPriority: "4"}}); err != nil {
			t.Fatal(err)
		}
	}
	lost, err := q.Queue.Receive(ctx, qURL+"-p4", 1, 0, 500*time.Millisecond)
	if err != nil || len(lost) != 1 {
		t.Fatalf("%v %v", lost, err)
	}
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat, c.VisibilityTimeout, c.WaitTime = levelRefs(), 4, time.Hour, time.Second, 20*time.Second
	})
	runUntil(t, w, func() bool {
		return st.Result("r0") != nil && st.Result("r1") != nil && st.Result("r2") != nil
	})
}

// overlapQueue holds each receive from one level, after the first, until a
// second one is under way beside it (or a few seconds pass), and notes how
// many were under way at once.
type overlapQueue struct {
	*recordingQueue
	level string

	mu       sync.Mutex
	armed    bool
	inFlight int
	most     int
	overlap  chan struct{}
}

func (o *overlapQueue) Receive(ctx context.Context, url string, n int, wait, vis time.Duration) ([]sqs.Message, error) {
	if url != o.level {
		return o.recordingQueue.Receive(ctx, url, n, wait, vis)
	}
	o.mu.Lock()
	armed := o.armed
	o.armed = true
	o.inFlight++
	o.most = max(o.most, o.inFlight)
	if o.inFlight == 2 {
		select {
		case <-o.overlap:
		default:
			close(o.overlap)
		}
	}
	o.mu.Unlock()
	if armed {
		select {
		case <-o.overlap:
		case <-time.After(3 * time.Second): // the failure case: never a second
		case <-ctx.Done():
		}
	}
	msgs, err := o.recordingQueue.Receive(ctx, url, n, wait, vis)
	o.mu.Lock()
	o.inFlight--
	o.mu.Unlock()
	return msgs, err
}

// A worker taking a deep level reads ahead: while its receive is under
// way, the slots its finished tasks free take the next messages of the
// level with a second receive, and every task runs once.
func TestDeepLevelIsReadAheadWhileAReceiveIsOut(t *testing.T) {
	level := qURL + plan.LevelFor(0).Suffix
	q := &overlapQueue{recordingQueue: &recordingQueue{Queue: testbroker.NewQueue()}, level: level, overlap: make(chan struct{})}
	st := testbroker.NewStore()
	const n = 40
	for i := range n {
		id := "d" + strconv.Itoa(i)
		tk := &plan.Task{ID: id, Argv: []string{"true"}}
		tk.Normalize()
		if _, err := st.PutTask(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(tk)
		attrs := map[string]string{"taskiq_id": id, plan.AttrPriority: "0"}
		if _, err := q.Queue.Send(context.Background(), level, sqs.Entry{Body: string(body), Attributes: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat = levelRefs(), 16, time.Hour
	})
	runUntil(t, w, func() bool {
		for i := range n {
			if st.Result("d"+strconv.Itoa(i)) == nil {
				return false
			}
		}
		return true
	})
	q.mu.Lock()
	most := q.most
	q.mu.Unlock()
	if most < 2 {
		t.Errorf("at most %d receive from the deep level under way at once, want 2", most)
	}
	for i := range n {
		if r := st.Result("d" + strconv.Itoa(i)); r.Attempt != 1 {
			t.Errorf("task d%d ended at attempt %d", i, r.Attempt)
		}
	}
}

// A read-ahead takes a whole batch beyond its free slots only while the
// worker's tasks end fast enough that ten more start well within the
// lease: never before a task has ended, never with long tasks.
func TestReadAheadHoldsOnlyForFastTasks(t *testing.T) {
	w := newTestWorker(t, testbroker.NewQueue(), testbroker.NewStore(), func(c *Config) {
		c.Queues, c.Concurrency, c.VisibilityTimeout = levelRefs(), 4, 30*time.Second
	})
	for _, c := range []struct {
		took time.Duration
		want bool
	}{{0, false}, {20 * time.Millisecond, true}, {300 * time.Millisecond, false}, {10 * time.Second, false}} {
		w.taskTime.Store(int64(c.took))
		if got := w.canHold(); got != c.want {
			t.Errorf("tasks taking %v: canHold %v, want %v", c.took, got, c.want)
		}
	}
}

// Messages a read-ahead took beyond its free slots start before anything
// else, in the order taken; what found no slot within holdFor, and what is
// held at the stop, goes back untouched: a level's message to its inbox,
// with a receive count of zero, never run.
func TestHeldMessagesStartFirstAndGoBackWhenLateOrStopped(t *testing.T) {
	ctx := context.Background()
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	level := qURL + plan.LevelFor(0).Suffix
	for i := range 4 {
		id := "h" + strconv.Itoa(i)
		tk := &plan.Task{ID: id, Argv: []string{"true"}}
		tk.Normalize()
		body, _ := json.Marshal(tk)
		if _, err := q.Send(ctx, level, sqs.Entry{Body: string(body), Attributes: map[string]string{"taskiq_id": id, plan.AttrPriority: "0"}}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.VisibilityTimeout = levelRefs(), 4, 30*time.Second
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	w.acks = newAcker(w.queue, w.log)
	msgs, err := q.Receive(ctx, level, 4, 0, 30*time.Second)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	var ref QueueRef
	for _, l := range w.levels {
		if l.URL == level {
			ref = l
		}
	}
	rs := tag(msgs, ref)
	w.hold(rs[:2])
	if got := w.takeHeld(1); len(got) != 1 || got[0].MessageID != rs[0].MessageID {
		t.Fatalf("took %v, want the first held", got)
	}
	mu.Lock()
	now = now.Add(w.holdFor() + time.Second)
	mu.Unlock()
	if got := w.takeHeld(4); len(got) != 0 {
		t.Errorf("took %d held past holdFor, want none (given back)", len(got))
	}
	w.hold(rs[2:])
	w.giveBackHeld()
	w.acks.close()
	back, err := q.Receive(ctx, qURL, 10, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range back {
		ids[m.Attributes["taskiq_id"]] = m.ReceiveCount
	}
	for _, id := range []string{"h1", "h2", "h3"} {
		if n, ok := ids[id]; !ok || n != 1 {
			t.Errorf("%s back in the inbox: %v, received %d times (want once: this receive)", id, ok, n)
		}
	}
	if _, ok := ids["h0"]; ok {
		t.Error("h0, taken to start, was given back")
	}
	if left, _ := q.Receive(ctx, level, 10, 0, time.Second); len(left) != 0 {
		t.Errorf("%d messages still in the level after their copies went back", len(left))
	}
}

// A worker at concurrency 1 never reads ahead: its one slot is the
// receive's.
func TestOneSlotNeverReadsAhead(t *testing.T) {
	level := qURL + plan.LevelFor(0).Suffix
	q := &overlapQueue{recordingQueue: &recordingQueue{Queue: testbroker.NewQueue()}, level: level, overlap: make(chan struct{})}
	close(q.overlap) // no holding: only the count matters
	st := testbroker.NewStore()
	for i := range 12 {
		id := "o" + strconv.Itoa(i)
		tk := &plan.Task{ID: id, Argv: []string{"true"}}
		tk.Normalize()
		if _, err := st.PutTask(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(tk)
		if _, err := q.Queue.Send(context.Background(), level, sqs.Entry{Body: string(body), Attributes: map[string]string{"taskiq_id": id, plan.AttrPriority: "0"}}); err != nil {
			t.Fatal(err)
		}
	}
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat = levelRefs(), 1, time.Hour
	})
	runUntil(t, w, func() bool { return st.Result("o11") != nil })
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.most != 1 {
		t.Errorf("%d receives from the level under way at once, want 1", q.most)
	}
}

// Messages held past their own lease (the worker was frozen, SIGSTOP, or
// starved while it held them) are SQS's again: another worker may have
// them by now. They are dropped untouched, neither renewed into the inbox
// (a second copy of each) nor given back with a receipt that is no longer
// theirs; what is still within its lease goes back as before. The lease
// runs from the receive, not from when the read-ahead got round to
// holding what it took.
func TestHeldPastTheirLeaseAreDroppedUntouched(t *testing.T) {
	ctx := context.Background()
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	level := qURL + plan.LevelFor(0).Suffix
	for i := range 4 {
		id := "s" + strconv.Itoa(i)
		tk := &plan.Task{ID: id, Argv: []string{"true"}}
		tk.Normalize()
		body, _ := json.Marshal(tk)
		if _, err := q.Send(ctx, level, sqs.Entry{Body: string(body), Attributes: map[string]string{"taskiq_id": id, plan.AttrPriority: "0"}}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.VisibilityTimeout = levelRefs(), 4, 30*time.Second
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	w.acks = newAcker(w.queue, w.log)
	var ref QueueRef
	for _, l := range w.levels {
		if l.URL == level {
			ref = l
		}
	}
	msgs, err := q.Receive(ctx, level, 4, 0, 30*time.Second)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	rs := tag(msgs, ref)
	for i := range rs {
		rs[i].at = now
	}
	ops := []string{"send", "set_visibility", "set_visibility_batch", "delete"}
	before := map[string]int{}
	for _, c := range ops {
		before[c] = q.Calls(c)
	}
	// Frozen right after the receive, before the messages were held: the
	// hold begins a lease later.
	mu.Lock()
	now = now.Add(w.cfg.VisibilityTimeout + time.Second)
	mu.Unlock()
	w.hold(rs[:2])
	if got := w.takeHeld(4); len(got) != 0 {
		t.Errorf("took %d held past their lease, want none", len(got))
	}
	w.hold(rs[2:])
	w.giveBackHeld()
	w.acks.close()
	if n := q.Len(qURL); n != 0 {
		t.Errorf("the inbox holds %d copies of messages held past their lease, want none", n)
	}
	for _, c := range ops {
		if n := q.Calls(c) - before[c]; n != 0 {
			t.Errorf("%d %s calls for messages held past their lease, want none", n, c)
		}
	}
}

// A held message's attempt takes the lease its receive began, not a whole
// visibility timeout from its claim: the supervisor's deadline and the
// running marker must not outlast what SQS gives (a worker cut off right
// after the claim would otherwise run its copy past the moment another
// worker may take the task).
func TestHeldMessageLeaseRunsFromItsReceive(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	send(t, q, st, "l1", "true")
	w := newTestWorker(t, q, st, func(c *Config) { c.VisibilityTimeout = 30 * time.Second })
	msgs, err := q.Receive(context.Background(), qURL, 1, 0, 30*time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	tk, _, err := plan.DecodeMessage([]byte(msgs[0].Body))
	if err != nil {
		t.Fatal(err)
	}
	receivedAt := time.Now().Add(-3 * time.Second) // held three seconds for a slot
	r, ok := w.claim(context.Background(), w.log, w.inboxes[0], tk, msgs[0], nil, receivedAt, receivedAt)
	if !ok {
		t.Fatal("claim not won")
	}
	want := receivedAt.Add(30 * time.Second)
	if !r.leaseUntil.Equal(want) || !r.marker.LeaseUntil.Equal(want) {
		t.Errorf("lease until %v (marker %v), want %v: from the receive", r.leaseUntil, r.marker.LeaseUntil, want)
	}
}

// What a read-ahead holds starts, going by the worker's task times,
// within the second that a task sent to the inbox may already wait behind
// a level's (emptyRecheck), whatever the visibility timeout: a worker
// with a long lease and tasks of a minute must not hold ten of them while
// a priority-10 task waits for the fetch loop's next look at the inbox.
func TestHoldingKeepsThePriorityWindow(t *testing.T) {
	for _, vt := range []time.Duration{2 * time.Second, 30 * time.Second, 5 * time.Minute, 12 * time.Hour} {
		for _, conc := range []int{2, 4, 16} {
			w := newTestWorker(t, testbroker.NewQueue(), testbroker.NewStore(), func(c *Config) {
				c.Queues, c.Concurrency, c.VisibilityTimeout = levelRefs(), conc, vt
			})
			for d := time.Millisecond; d < time.Hour; d = d * 3 / 2 {
				w.taskTime.Store(int64(d))
				if drain := time.Duration(sqs.MaxBatch) * d / time.Duration(conc); w.canHold() && drain > emptyRecheck {
					t.Errorf("lease %v, concurrency %d, tasks of %v: holds ten, which start over %v", vt, conc, d, drain)
					break
				}
			}
			if w.holdFor() > vt/10 {
				t.Errorf("lease %v: holds for %v, more than a tenth of it", vt, w.holdFor())
			}
		}
	}
}

// A message hidden by a lease longer than this worker's own (another
// worker's --visibility-timeout, or its last heartbeat's extension) comes
// back to its level after the worker's first look again found the level
// empty: a second look, after twice the wait, finds it, not the sweep.
func TestLostMessageOfALongerLeaseIsFoundByALaterLook(t *testing.T) {
	q, st := &recordingQueue{Queue: testbroker.NewQueue()}, testbroker.NewStore()
	ctx := context.Background()
	for i := range 3 {
		id := "l" + strconv.Itoa(i)
		tk := &plan.Task{ID: id, Argv: []string{"true"}, Priority: 4}
		tk.Normalize()
		if _, err := st.PutTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(tk)
		if _, err := q.Queue.Send(ctx, qURL+"-p4", sqs.Entry{Body: string(body), Attributes: map[string]string{plan.AttrPriority: "4"}}); err != nil {
			t.Fatal(err)
		}
	}
	// Taken by another worker whose lease (5 s) outlasts this worker's
	// first look again (2 s after it finds the level empty).
	lost, err := q.Queue.Receive(ctx, qURL+"-p4", 1, 0, 5*time.Second)
	if err != nil || len(lost) != 1 {
		t.Fatalf("%v %v", lost, err)
	}
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Queues, c.Concurrency, c.Heartbeat, c.VisibilityTimeout, c.WaitTime = levelRefs(), 4, time.Hour, time.Second, 20*time.Second
	})
	runUntil(t, w, func() bool {
		return st.Result("l0") != nil && st.Result("l1") != nil && st.Result("l2") != nil
	})
	looks := 0
	for _, c := range q.calls() {
		if c.url == qURL+"-p4" {
			looks++
		}
	}
	// The sweep, the take of two, the look that finds it empty, the first
	// look again (empty), the second (the lost one), and one that finds it
	// empty after: a few, not one a wait.
	if looks > 8 {
		t.Errorf("%d receives from the level, want a few", looks)
	}
}

// The looks again at an emptied level come after the first wait, then
// twice each wait before, while the wait is no longer than the sweep's
// (only the first cuts an idle worker's long poll short);
// a level that gives messages again starts over from the first wait, and
// one asked meanwhile (a hint) keeps the look it was waiting for.
func TestLooksAgainBackOffUntilTheSweep(t *testing.T) {
	var r recheck
	const u, first = "level", 21 * time.Second
	now := time.Unix(0, 0)
	if _, ok := r.emptied(u, now, first); ok {
		t.Fatal("a level that never gave is asked again")
	}
	r.gave(u)
	var waits []time.Duration
	for {
		at, ok := r.emptied(u, now, first)
		if !ok {
			break
		}
		waits = append(waits, at.Sub(now))
		// Only the first look again cuts an idle worker's long poll short.
		if _, cuts := r.next(first); cuts != (at.Sub(now) == first) {
			t.Fatalf("look after %v cuts the long poll short: %v", at.Sub(now), cuts)
		}
		if got := r.due(at.Add(-time.Millisecond)); len(got) != 0 {
			t.Fatalf("due early: %v", got)
		}
		now = at
		if got := r.due(now); len(got) != 1 {
			t.Fatalf("not due at %v: %v", now, got)
		}
	}
	want := []time.Duration{21 * time.Second, 42 * time.Second, 84 * time.Second, 168 * time.Second}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if _, ok := r.next(levelSweep); ok {
		t.Fatal("a look again is left after the last")
	}
	r.gave(u)
	at, _ := r.emptied(u, now, first)
	r.gave(u)
	if again, _ := r.emptied(u, now.Add(time.Second), first); again.Sub(now) != first+time.Second {
		t.Fatalf("a level that gave again waits %v, want the first wait from now", again.Sub(now))
	}
	at, _ = r.next(first)
	if _, ok := r.emptied(u, now.Add(2*time.Second), first); ok {
		t.Fatal("a level asked before its look again is rescheduled")
	}
	if next, _ := r.next(first); !next.Equal(at) {
		t.Fatalf("look again moved from %v to %v", at, next)
	}
}
