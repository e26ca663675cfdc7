package lifecycle_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func task(id string) *plan.Task {
	t := &plan.Task{ID: id, Argv: []string{"echo", id}, Group: "g"}
	t.Normalize()
	return t
}

func claimer(worker string, now time.Time) lifecycle.Claimer {
	w := plan.WorkerInfo{ID: worker, Host: "h", PID: 1}
	return lifecycle.Claimer{
		Worker: w,
		Marker: func(a int) plan.Running {
			return plan.Running{V: plan.Version, Attempt: a, Worker: w, StartedAt: now, HeartbeatAt: now, HeartbeatEvery: plan.Duration(time.Second)}
		},
		RunningHere: func(string) bool { return false },
		MaxLost:     3,
	}
}

// The markers a claimer writes carry the task id.
func claimFor(c lifecycle.Claimer, id string) lifecycle.Claimer {
	mk := c.Marker
	c.Marker = func(a int) plan.Running { m := mk(a); m.ID = id; return m }
	return c
}

func submit(t *testing.T, st *testbroker.Store, tk *plan.Task) {
	t.Helper()
	if send, created, err := lifecycle.Record(context.Background(), st, tk); err != nil || !send || !created {
		t.Fatalf("Record = %v, %v, %v", send, created, err)
	}
}

func TestClaimFirstAttemptIsOnePut(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	d, err := claimFor(claimer("w1", t0), "a").Claim(context.Background(), st, tk, t0)
	if err != nil || d.Verdict != lifecycle.Run || d.Attempt != 1 {
		t.Fatalf("Claim = %+v, %v; want Run 1", d, err)
	}
	if n := st.Calls("list") + st.Calls("get_result") + st.Calls("cancel_check"); n != 0 {
		t.Errorf("claim of a fresh task made %d reads, want 0", n)
	}
}

func TestClaimSeesLiveAttemptElsewhere(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	ctx := context.Background()
	if _, err := claimFor(claimer("w1", t0), "a").Claim(ctx, st, tk, t0); err != nil {
		t.Fatal(err)
	}
	d, err := claimFor(claimer("w2", t0), "a").Claim(ctx, st, tk, t0.Add(time.Second))
	if err != nil || d.Verdict != lifecycle.Elsewhere || d.Running == nil || d.Running.Worker.ID != "w1" {
		t.Fatalf("second Claim = %+v, %v; want Elsewhere on w1", d, err)
	}
	// Once w1's marker is stale, w2 takes attempt 2.
	d, err = claimFor(claimer("w2", t0), "a").Claim(ctx, st, tk, t0.Add(time.Minute))
	if err != nil || d.Verdict != lifecycle.Run || d.Attempt != 2 {
		t.Fatalf("Claim after stale = %+v, %v; want Run 2", d, err)
	}
}

func TestClaimLostTooOften(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	ctx := context.Background()
	now := t0
	for range 3 {
		d, err := claimFor(claimer("w", now), "a").Claim(ctx, st, tk, now)
		if err != nil || d.Verdict != lifecycle.Run {
			t.Fatalf("Claim = %+v, %v", d, err)
		}
		now = now.Add(time.Minute) // its worker died: the marker goes stale
	}
	d, err := claimFor(claimer("w", now), "a").Claim(ctx, st, tk, now)
	if err != nil || d.Verdict != lifecycle.EndUnstarted || d.Result.State != plan.StateFailed {
		t.Fatalf("Claim = %+v, %v; want EndUnstarted failed", d, err)
	}
}

func TestCancelQueuedWinsOverClaim(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	ctx := context.Background()
	c, err := lifecycle.Cancel(ctx, st, "a", "no longer needed", t0)
	if err != nil || c.Outcome != "cancelled" {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	r := st.Result("a")
	if r == nil || r.State != plan.StateCancelled || r.Error != "cancelled before it started: no longer needed" || r.Group != "g" {
		t.Fatalf("result = %+v", r)
	}
	d, err := claimFor(claimer("w1", t0), "a").Claim(ctx, st, tk, t0)
	if err != nil || d.Verdict != lifecycle.Done {
		t.Fatalf("Claim after cancel = %+v, %v; want Done", d, err)
	}
	c, _ = lifecycle.Cancel(ctx, st, "a", "", t0)
	if c.Outcome != "already cancelled" {
		t.Errorf("second Cancel = %+v", c)
	}
}

func TestCancelAfterClaimIsCancelling(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	ctx := context.Background()
	if _, err := claimFor(claimer("w1", t0), "a").Claim(ctx, st, tk, t0); err != nil {
		t.Fatal(err)
	}
	c, err := lifecycle.Cancel(ctx, st, "a", "", t0)
	if err != nil || c.Outcome != "cancelling" {
		t.Fatalf("Cancel = %+v, %v; want cancelling", c, err)
	}
	if st.Result("a") != nil {
		t.Error("cancel of a running task wrote a result")
	}
	if ok, _ := st.CancelRequested(ctx, "a"); !ok {
		t.Error("no cancel marker for the worker's heartbeat")
	}
}

// A cancel that stopped after claiming the attempt, before its result:
// the next worker ends the task cancelled.
func TestCancelClaimWithoutResultIsFinishedByWorker(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	ctx := context.Background()
	st.FailNext("put_result", errors.New("cancel died"))
	if _, err := lifecycle.Cancel(ctx, st, "a", "", t0); err == nil {
		t.Fatal("Cancel succeeded despite the failed result")
	}
	snap, err := lifecycle.Read(ctx, st, "a")
	if err != nil {
		t.Fatal(err)
	}
	if st := snap.Status("a", t0); st.State != plan.StateQueued {
		t.Errorf("state = %s, want queued", st.State)
	}
	d, err := claimFor(claimer("w1", t0), "a").Claim(ctx, st, tk, t0)
	if err != nil || d.Verdict != lifecycle.EndUnstarted || d.Result.State != plan.StateCancelled {
		t.Fatalf("Claim = %+v, %v; want EndUnstarted cancelled", d, err)
	}
}

func TestClaimStoreDownIsAnError(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	st.SetDown(true)
	if _, err := claimFor(claimer("w1", t0), "a").Claim(context.Background(), st, tk, t0); !errors.Is(err, plan.ErrUnreachable) {
		t.Fatalf("Claim with the store down = %v, want unreachable", err)
	}
}

func TestRecordRefusesADifferentTask(t *testing.T) {
	st := testbroker.NewStore()
	ctx := context.Background()
	submit(t, st, task("a"))
	same := task("a")
	same.SubmittedAt = t0.Add(time.Hour)
	if send, created, err := lifecycle.Record(ctx, st, same); err != nil || created || !send {
		t.Errorf("identical resubmit = %v, %v, %v; want send, not created", send, created, err)
	}
	other := task("a")
	other.Argv = []string{"echo", "second"}
	if _, _, err := lifecycle.Record(ctx, st, other); !errors.Is(err, lifecycle.ErrConflict) {
		t.Errorf("different resubmit = %v, want ErrConflict", err)
	}
	prio := task("a")
	prio.Priority = 10
	if _, _, err := lifecycle.Record(ctx, st, prio); !errors.Is(err, lifecycle.ErrConflict) {
		t.Errorf("resubmit with another priority = %v, want ErrConflict", err)
	}
	got, _ := st.GetTask(ctx, "a")
	if got.Argv[1] != "a" {
		t.Errorf("stored task changed to %v", got.Argv)
	}
}

func TestEnd(t *testing.T) {
	tk := task("a")
	tk.MaxAttempts = 2
	failed := &plan.Result{State: plan.StateFailed, Attempt: 1}
	ok := &plan.Result{State: plan.StateSucceeded, Attempt: 1}
	for _, tc := range []struct {
		name string
		res  *plan.Result
		held bool
		want lifecycle.Ending
	}{
		{"succeeded", ok, true, lifecycle.Final},
		{"failed with attempts left", failed, true, lifecycle.Retry},
		{"failed on the last attempt", &plan.Result{State: plan.StateFailed, Attempt: 2}, true, lifecycle.Final},
		{"cancelled", &plan.Result{State: plan.StateCancelled, Attempt: 1}, true, lifecycle.Final},
		{"succeeded past the lease", ok, false, lifecycle.Stale},
		{"failed past the lease", failed, false, lifecycle.Stale},
	} {
		if got := lifecycle.End(tc.res, tk, tc.held); got != tc.want {
			t.Errorf("%s: End = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLeaseHeldByMonotonicClock(t *testing.T) {
	start := time.Now() // carries a monotonic reading
	l := lifecycle.Lease{Until: start.Add(3 * time.Second), Margin: time.Second}
	if !l.Held(start.Add(time.Second)) {
		t.Error("lease not held with 2 s left")
	}
	if l.Held(start.Add(2500 * time.Millisecond)) {
		t.Error("lease held inside the margin")
	}
	if l.Held(start.Add(time.Hour)) {
		t.Error("lease held by a worker that woke an hour later")
	}
}

func TestStatuses(t *testing.T) {
	st := testbroker.NewStore()
	ctx := context.Background()
	for _, id := range []string{"q", "r", "d"} {
		submit(t, st, task(id))
	}
	if _, err := claimFor(claimer("w1", t0), "r").Claim(ctx, st, task("r"), t0); err != nil {
		t.Fatal(err)
	}
	_ = st.PutResult(ctx, &plan.Result{V: plan.Version, ID: "d", State: plan.StateSucceeded, ExitCode: plan.IntPtr(0), Attempt: 1})
	sts, errs := lifecycle.Statuses(ctx, st, []string{"q", "r", "d", "none"}, t0.Add(time.Second))
	want := []plan.State{plan.StateQueued, plan.StateRunning, plan.StateSucceeded}
	for i, w := range want {
		if errs[i] != nil || sts[i].State != w {
			t.Errorf("%s: %s, %v; want %s", sts[i].ID, sts[i].State, errs[i], w)
		}
	}
	if !errors.Is(errs[3], plan.ErrTaskNotFound) {
		t.Errorf("unknown task: %v", errs[3])
	}
	sts, _ = lifecycle.Statuses(ctx, st, []string{"r"}, t0.Add(time.Minute))
	if sts[0].State != plan.StateLost {
		t.Errorf("stale marker: %s, want lost", sts[0].State)
	}
	if _, err := lifecycle.Result(ctx, st, "q"); !errors.Is(err, plan.ErrNotFinished) {
		t.Errorf("Result of a queued task = %v", err)
	}
	if _, err := lifecycle.Result(ctx, st, "none"); !errors.Is(err, plan.ErrTaskNotFound) {
		t.Errorf("Result of no task = %v", err)
	}
}

func TestPeekReadsOnlyTheList(t *testing.T) {
	st := testbroker.NewStore()
	ctx := context.Background()
	submit(t, st, task("r"))
	submit(t, st, task("q"))
	if _, err := claimFor(claimer("w1", t0), "r").Claim(ctx, st, task("r"), t0); err != nil {
		t.Fatal(err)
	}
	sts, errs := lifecycle.PeekStatuses(ctx, st, []string{"r", "q"}, t0)
	if errs[0] != nil || sts[0].State != plan.StateRunning || errs[1] != nil || sts[1].State != plan.StateQueued {
		t.Fatalf("PeekStatuses = %+v, %v", sts, errs)
	}
	if n := st.Calls("get_claim") + st.Calls("get_running") + st.Calls("get_task"); n != 0 {
		t.Errorf("Peek made %d GETs for unfinished tasks, want 0", n)
	}
}
