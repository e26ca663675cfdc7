package worker

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

func sendGrouped(t *testing.T, q *testbroker.Queue, st *testbroker.Store, group, id string, argv ...string) {
	t.Helper()
	tk := &plan.Task{ID: id, Argv: argv, Group: group}
	tk.Normalize()
	if _, err := st.PutTask(context.Background(), tk); err != nil {
		t.Fatal(err)
	}
	if err := st.AddToGroup(context.Background(), group, id); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(tk)
	if _, err := q.Send(context.Background(), qURL, sqs.Entry{Body: string(body), Attributes: map[string]string{"taskiq_id": id}}); err != nil {
		t.Fatal(err)
	}
}

func groupEnds(t *testing.T, st *testbroker.Store, group string) []s3results.GroupEnd {
	t.Helper()
	var out []s3results.GroupEnd
	for _, k := range st.GroupEnds(group) {
		e, ok := s3results.Keys{}.ParseGroupEnd(group, k)
		if !ok {
			t.Fatalf("unreadable end key %q", k)
		}
		out = append(out, e)
	}
	return out
}

// A grouped task's final result is followed by its group's end key, which
// says what the result says; an ungrouped task costs no extra request.
func TestWorkerIndexesAGroupedResult(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	sendGrouped(t, q, st, "g", "g1", "sh", "-c", "exit 3")
	send(t, q, st, "u1", "true")
	w := newTestWorker(t, q, st, func(c *Config) { c.Heartbeat = time.Hour })
	runUntil(t, w, func() bool { return q.Len(qURL) == 0 })
	ends := groupEnds(t, st, "g")
	if len(ends) != 1 {
		t.Fatalf("end keys = %+v, want one", ends)
	}
	r, e := st.Result("g1"), ends[0].Status
	if r == nil || e.ID != "g1" || e.State != r.State || *e.ExitCode != 3 || e.Attempt != 1 || e.Worker != r.Worker ||
		!e.FinishedAt.Equal(r.FinishedAt) {
		t.Errorf("end %+v does not say what result %+v says", e, r)
	}
	if n := st.Calls("put_group_end"); n != 1 {
		t.Errorf("%d end key writes for one grouped and one ungrouped task, want 1", n)
	}
}

// A stale attempt of a grouped task (its lease ran out while it ran)
// stores no final result, so the group's index cannot say it ended.
func TestWorkerPastItsLeaseIndexesNothing(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	sendGrouped(t, q, st, "g", "t1", "true")
	var jump atomic.Int64
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Heartbeat = time.Hour
		c.Now = func() time.Time { return time.Now().Add(time.Duration(jump.Load())) }
	})
	go func() {
		for st.Calls("claim") == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		jump.Store(int64(time.Minute))
	}()
	runUntil(t, w, func() bool { return st.Attempt("t1", 1) != nil })
	if r := st.Result("t1"); r != nil {
		t.Fatalf("a stale attempt wrote the final result %+v", r)
	}
	if ends := st.GroupEnds("g"); len(ends) != 0 || st.Calls("put_group_end") != 0 {
		t.Errorf("a stale attempt indexed its end: %v", ends)
	}
}

// The worker that stored a result stopped before its end key: the message
// comes back, and its next receiver writes the end key from the stored
// result before it acknowledges.
func TestWorkerRepairsAMissingEndKey(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	sendGrouped(t, q, st, "g", "t1", "true")
	ctx := context.Background()
	stored := &plan.Result{V: plan.Version, ID: "t1", Group: "g", State: plan.StateFailed, ExitCode: plan.IntPtr(7), Attempt: 1,
		Worker: plan.WorkerInfo{ID: "gone", Host: "h2", PID: 9}, FinishedAt: time.Now().UTC()}
	_ = st.Claim(ctx, &plan.Running{V: plan.Version, ID: "t1", Attempt: 1})
	_ = st.PutResult(ctx, stored)
	w := newTestWorker(t, q, st, nil)
	runUntil(t, w, func() bool { return q.Len(qURL) == 0 })
	ends := groupEnds(t, st, "g")
	if len(ends) != 1 || ends[0].Status.State != plan.StateFailed || ends[0].Status.Worker.ID != "gone" {
		t.Fatalf("end keys = %+v, want the stored result's", ends)
	}
	if st.Calls("put_result") != 1 {
		t.Error("result written again")
	}
}
