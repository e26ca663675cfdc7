package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
)

var t0 = time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)

// groupOf submits n tasks of group g with lifecycle.Record, as submit does.
func groupOf(t *testing.T, st *testbroker.Store, g string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%04d", g, i)
		tk := &plan.Task{ID: id, Argv: []string{"true"}, Group: g, Queue: "default", SubmittedAt: t0}
		tk.Normalize()
		if _, _, err := lifecycle.Record(context.Background(), st, tk); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// finish stores a final result as a worker does: the result, then its
// group's end key (unless indexed is false: its worker stopped between).
func finish(t *testing.T, st *testbroker.Store, id, g string, state plan.State, code int, why string, indexed bool) {
	t.Helper()
	r := &plan.Result{V: plan.Version, ID: id, Group: g, State: state, ExitCode: plan.IntPtr(code), Attempt: 1, Error: why,
		Worker: plan.WorkerInfo{Host: "h", PID: 7, ID: "w1"}, FinishedAt: t0.Add(time.Minute)}
	if err := st.PutResult(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if indexed {
		if err := lifecycle.IndexEnd(context.Background(), st, r); err != nil {
			t.Fatal(err)
		}
	}
}

func taskReads(st *testbroker.Store) int {
	return st.Calls("list") + st.Calls("get_result") + st.Calls("get_task") + st.Calls("get_running") + st.Calls("get_claim")
}

func asJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// A poll of a group whose tasks have ended is one listing of its index,
// and prints what a poll of each id prints.
func TestGroupPollOfEndedTasksReadsNoTask(t *testing.T) {
	st := testbroker.NewStore()
	ids := groupOf(t, st, "run", 50)
	for i, id := range ids {
		switch i % 3 {
		case 0:
			finish(t, st, id, "run", plan.StateSucceeded, 0, "", true)
		case 1:
			finish(t, st, id, "run", plan.StateFailed, 2, "", true)
		default:
			finish(t, st, id, "run", plan.StateTimedOut, 137, "timed out after 1s, then, killed", true)
		}
	}
	before := taskReads(st)
	got, err := newGroupPoller(st, "run").Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := taskReads(st) - before; n != 0 || st.Calls("group_index") != 1 {
		t.Errorf("%d task reads and %d index listings, want 0 and 1", n, st.Calls("group_index"))
	}
	want, errs := lifecycle.Statuses(context.Background(), st, ids, t0)
	if err := firstErr(errs); err != nil {
		t.Fatal(err)
	}
	if asJSON(got) != asJSON(want) {
		t.Errorf("from the index:\n%s\nfrom the tasks:\n%s", asJSON(got), asJSON(want))
	}
}

// The index is confirmed by the tasks where it cannot tell: a member whose
// worker stopped before its end key is read in full, one whose error did
// not fit in the key, or whose end keys disagree, by its result; a queued
// one in full.
func TestGroupPollFallsBackOnTheTasks(t *testing.T) {
	st := testbroker.NewStore()
	ids := groupOf(t, st, "run", 5)
	finish(t, st, ids[0], "run", plan.StateSucceeded, 0, "", true)
	finish(t, st, ids[1], "run", plan.StateSucceeded, 0, "", false)                     // lagging index
	finish(t, st, ids[2], "run", plan.StateFailed, 1, string(make([]byte, 1500)), true) // error omitted
	finish(t, st, ids[3], "run", plan.StateFailed, 1, "", true)
	// A forged or stray end key beside the real one: the result decides.
	st.PutGroupEndKey("run", "group-ends/run/"+ids[3]+"/1,succeeded,0,1,7,h,w1,,")
	got, err := newGroupPoller(st, "run").Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := lifecycle.Statuses(context.Background(), st, ids, t0)
	if asJSON(got) != asJSON(want) {
		t.Errorf("from the index:\n%s\nfrom the tasks:\n%s", asJSON(got), asJSON(want))
	}
	if got[3].State != plan.StateFailed || got[4].State != plan.StateQueued {
		t.Errorf("states %s %s, want failed queued", got[3].State, got[4].State)
	}
	// ids[2] and ids[3] by their result (one GET each), ids[1] and ids[4]
	// in full (a LIST, and a GET of the result or of the task record).
	if n := st.Calls("get_result"); n < 3 {
		t.Errorf("%d result GETs", n)
	}
}

// A wait on a group reads a task that has ended never again: each round is
// one listing of the index and a look at the oldest task still running.
func TestGroupWaitNeverRereadsAnEndedTask(t *testing.T) {
	st := testbroker.NewStore()
	ids := groupOf(t, st, "run", 20)
	p := newGroupPoller(st, "run")
	p.Peek = true
	ctx := context.Background()
	round := func() ([]plan.Status, int) {
		t.Helper()
		before := taskReads(st)
		sts, err := p.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return sts, taskReads(st) - before
	}
	if _, n := round(); n != 1 {
		t.Errorf("first round: %d task reads, want 1", n)
	}
	for _, id := range ids[:15] {
		finish(t, st, id, "run", plan.StateSucceeded, 0, "", true)
	}
	finish(t, st, ids[15], "run", plan.StateSucceeded, 0, "", false) // found by the look
	sts, n := round()
	// The look at ids[15] (LIST, GET), sweeping on to ids[16] (GET: none,
	// then its LIST).
	if n != 4 {
		t.Errorf("round after 16 ended: %d task reads, want 4", n)
	}
	for i, s := range sts {
		if (i < 16) != s.State.Final() {
			t.Errorf("%s: %s", s.ID, s.State)
		}
	}
	for _, id := range ids[16:] {
		finish(t, st, id, "run", plan.StateSucceeded, 0, "", true)
	}
	before := st.Calls("get_result")
	sts, n = round()
	if !AllFinal(sts) || n != 0 || st.Calls("get_result") != before {
		t.Errorf("last round: all final %v, %d task reads", AllFinal(sts), n)
	}
	// Members submitted meanwhile join the wait.
	more := groupOf(t, st, "run", 21)[20]
	sts, _ = round()
	if len(sts) != 21 || sts[20].ID != more || AllFinal(sts) {
		t.Errorf("a new member is not waited for: %d statuses", len(sts))
	}
}

func TestGroupPollOfNoTasksIsUnknown(t *testing.T) {
	st := testbroker.NewStore()
	if _, err := newGroupPoller(st, "none").Poll(context.Background()); !errors.Is(err, plan.ErrTaskNotFound) {
		t.Fatalf("Poll = %v, want task not found", err)
	}
	if _, _, err := cancel(context.Background(), st, CancelOptions{Group: "none"}, t0); !errors.Is(err, plan.ErrTaskNotFound) {
		t.Fatalf("cancel = %v, want task not found", err)
	}
}

// Cancel of a group skips the members its index shows ended, claims every
// queued one (no worker may start it once cancel returns), leaves a running
// one to its worker, and indexes what it ended, so that the poll after it
// reads no task.
func TestGroupCancel(t *testing.T) {
	st := testbroker.NewStore()
	ids := groupOf(t, st, "run", 200)
	ctx := context.Background()
	finish(t, st, ids[0], "run", plan.StateSucceeded, 0, "", true)
	now := time.Now()
	if err := st.Claim(ctx, &plan.Running{V: plan.Version, ID: ids[1], Group: "run", Attempt: 1,
		Worker: plan.WorkerInfo{ID: "w1", Host: "h", PID: 3}, StartedAt: now, HeartbeatAt: now,
		HeartbeatEvery: plan.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	out, got, err := cancel(ctx, st, CancelOptions{Group: "run", Reason: "run terminated"}, t0)
	if err != nil || len(out) != len(ids) || len(got) != len(ids) {
		t.Fatalf("cancel = %d outcomes, %d ids, %v", len(out), len(got), err)
	}
	if out[0].Outcome != "already succeeded" || out[1].Outcome != "cancelling" {
		t.Errorf("outcomes %+v %+v", out[0], out[1])
	}
	// The ended member is not read; the queued ones cost no marker (their
	// claim is enough), the running one does, for its worker.
	if st.Calls("get_result") != 0 || st.Calls("get_task") != len(ids)-1 || st.Calls("put_cancel") != 1 {
		t.Errorf("%d result GETs, %d record GETs, %d markers", st.Calls("get_result"), st.Calls("get_task"), st.Calls("put_cancel"))
	}
	worker := lifecycle.Claimer{Worker: plan.WorkerInfo{ID: "w2"}, RunningHere: func(string) bool { return false }, MaxLost: 3}
	for i, id := range ids[2:] {
		if c := out[i+2]; c.ID != id || c.Outcome != "cancelled" {
			t.Fatalf("%s: %+v", id, c)
		}
		if r := st.Result(id); r == nil || r.State != plan.StateCancelled || r.Error != "cancelled before it started: run terminated" || r.Queue != "default" {
			t.Fatalf("%s: result %+v", id, r)
		}
		tk, _ := st.GetTask(ctx, id)
		w := worker
		w.Marker = func(a int) plan.Running { return plan.Running{V: plan.Version, ID: id, Attempt: a, Worker: w.Worker} }
		if d, err := w.Claim(ctx, st, tk, time.Now()); err != nil || d.Verdict != lifecycle.Done {
			t.Fatalf("%s: a worker's claim after cancel = %+v, %v", id, d, err)
		}
	}
	before := taskReads(st)
	sts, err := newGroupPoller(st, "run").Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Only the running member is read.
	if n := taskReads(st) - before; n != 2 {
		t.Errorf("poll after cancel: %d task reads, want 2 (the running one)", n)
	}
	if sts[1].State != plan.StateRunning || sts[2].State != plan.StateCancelled {
		t.Errorf("states %s %s", sts[1].State, sts[2].State)
	}
}

// The submit role may not write results: cancel still claims the attempt,
// reports the task cancelled, and the worker that receives it ends it so.
func TestGroupCancelWithoutResultWrites(t *testing.T) {
	st := testbroker.NewStore()
	ids := groupOf(t, st, "run", 3)
	ctx := context.Background()
	st.FailNext("put_result", plan.ErrAccessDenied, plan.ErrAccessDenied, plan.ErrAccessDenied)
	out, _, err := cancel(ctx, st, CancelOptions{Group: "run"}, t0)
	if err != nil || len(out) != 3 {
		t.Fatalf("cancel = %+v, %v", out, err)
	}
	for _, c := range out {
		if c.Outcome != "cancelled" || st.Result(c.ID) != nil {
			t.Errorf("%+v, result %+v", c, st.Result(c.ID))
		}
	}
	if n := len(st.GroupEnds("run")); n != 0 {
		t.Errorf("%d end keys without results", n)
	}
	tk, _ := st.GetTask(ctx, ids[0])
	w := lifecycle.Claimer{Worker: plan.WorkerInfo{ID: "w2"}, RunningHere: func(string) bool { return false }, MaxLost: 3,
		Marker: func(a int) plan.Running { return plan.Running{V: plan.Version, ID: ids[0], Attempt: a} }}
	if d, err := w.Claim(ctx, st, tk, time.Now()); err != nil || d.Verdict != lifecycle.EndUnstarted || d.Result.State != plan.StateCancelled {
		t.Fatalf("a worker's claim = %+v, %v; want EndUnstarted cancelled", d, err)
	}
}

// With the store failing, cancel stops sending calls and says so.
func TestGroupCancelStopsOnAnError(t *testing.T) {
	st := testbroker.NewStore()
	groupOf(t, st, "run", 500)
	st.FailNext("get_task", plan.ErrUnreachable)
	before := st.Calls("get_task")
	_, _, err := cancel(context.Background(), st, CancelOptions{Group: "run"}, t0)
	if !errors.Is(err, plan.ErrUnreachable) {
		t.Fatalf("cancel = %v", err)
	}
	if n := st.Calls("get_task") - before; n >= 500 {
		t.Errorf("%d tasks tried after the store failed", n)
	}
}
