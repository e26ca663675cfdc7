package lifecycle_test

import (
	"context"
	"testing"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
)

// Cancel of a queued task is its record, the claim of attempt 1, its
// result and its group's end key: no marker, no listing.
func TestCancelQueuedCostsFourRequests(t *testing.T) {
	st := testbroker.NewStore()
	submit(t, st, task("a"))
	c, err := lifecycle.CancelUnended(context.Background(), st, "a", "why", t0)
	if err != nil || c.Outcome != "cancelled" {
		t.Fatalf("CancelUnended = %+v, %v", c, err)
	}
	for op, want := range map[string]int{"get_task": 1, "claim": 1, "put_result": 1, "put_group_end": 1, "put_cancel": 0, "list": 0} {
		if n := st.Calls(op); n != want {
			t.Errorf("%s: %d calls, want %d", op, n, want)
		}
	}
	if ends := st.GroupEnds("g"); len(ends) != 1 {
		t.Errorf("end keys %v", ends)
	}
}

// Cancel's claim alone cancels: a worker that finds it, with no result and
// no marker (cancel stopped, or may not write results), ends the task
// cancelled without running it.
func TestCancelsClaimAloneEndsTheTask(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	ctx := context.Background()
	st.FailNext("put_result", plan.ErrAccessDenied)
	if c, err := lifecycle.CancelUnended(ctx, st, "a", "", t0); err != nil || c.Outcome != "cancelled" {
		t.Fatalf("CancelUnended = %+v, %v", c, err)
	}
	if st.Result("a") != nil || st.Calls("put_cancel") != 0 || len(st.GroupEnds("g")) != 0 {
		t.Fatal("a result, a marker or an end key was written")
	}
	d, err := claimFor(claimer("w1", t0), "a").Claim(ctx, st, tk, t0)
	if err != nil || d.Verdict != lifecycle.EndUnstarted || d.Result.State != plan.StateCancelled {
		t.Fatalf("Claim = %+v, %v; want EndUnstarted cancelled", d, err)
	}
}

// An ungrouped task costs the index nothing.
func TestIndexEndWithoutGroup(t *testing.T) {
	st := testbroker.NewStore()
	if err := lifecycle.IndexEnd(context.Background(), st, &plan.Result{ID: "a", State: plan.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	if n := st.Calls("put_group_end"); n != 0 {
		t.Errorf("%d end key writes for an ungrouped task", n)
	}
}
