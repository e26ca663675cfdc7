package lifecycle_test

import (
	"context"
	"errors"
	"testing"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

// indexedTask is a task with a generated id whose record only its submit
// call's index chunk holds, as submit leaves one that fits a message.
func indexedTask(t *testing.T, st *testbroker.Store, pos int) *plan.Task {
	t.Helper()
	id, ok := plan.CallID(t0, 0x1234_5678_9abc, 0, pos)
	if !ok {
		t.Fatal("CallID")
	}
	tk := task(id)
	tk.Queue, tk.Labels, tk.SubmittedAt = "gpu", map[string]string{"k": "v"}, t0
	tk.Normalize()
	if send, created, err := lifecycle.RecordIndexed(context.Background(), st, tk); err != nil || !send || !created {
		t.Fatalf("RecordIndexed = %v %v %v", send, created, err)
	}
	st.PutIndexed(tk)
	return tk
}

// A queued task with no object of its own is found through its index
// chunk: queued with its group for one LIST and one GET, not finished for
// result; an id of the same shape that no chunk holds is not found.
func TestIndexedTaskReadsQueued(t *testing.T) {
	st := testbroker.NewStore()
	tk := indexedTask(t, st, 3)
	ctx := context.Background()
	snap, err := lifecycle.Peek(ctx, st, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s := snap.Status(tk.ID, t0); s.State != plan.StateQueued || s.Group != "g" {
		t.Fatalf("Peek status %+v, want queued in group g", s)
	}
	if l, g := st.Calls("list"), st.Calls("get_index"); l != 1 || g != 1 {
		t.Fatalf("Peek made %d LISTs and %d index GETs, want 1 and 1", l, g)
	}
	if s := state(t, st, tk.ID, t0); s.State != plan.StateQueued || s.Group != "g" {
		t.Fatalf("Read status %+v", s)
	}
	if _, err := lifecycle.Result(ctx, st, tk.ID); !errors.Is(err, plan.ErrNotFinished) {
		t.Fatalf("Result: %v, want not finished", err)
	}
	other, _ := plan.CallID(t0, 0x1234_5678_9abc, 0, 4)
	for _, id := range []string{other, "plain"} {
		if _, err := lifecycle.Read(ctx, st, id); !errors.Is(err, plan.ErrTaskNotFound) {
			t.Errorf("Read(%s): %v, want not found", id, err)
		}
		if _, err := lifecycle.Result(ctx, st, id); !errors.Is(err, plan.ErrTaskNotFound) {
			t.Errorf("Result(%s): %v, want not found", id, err)
		}
		if _, err := lifecycle.Cancel(ctx, st, id, "", t0); !errors.Is(err, plan.ErrTaskNotFound) {
			t.Errorf("Cancel(%s): %v, want not found", id, err)
		}
	}
	if st.HasStoredTask(tk.ID) {
		t.Fatal("a task.json was written")
	}
}

// Cancel of a queued indexed task claims attempt 1 and stores the result
// with the group, queue and labels of its index record; the worker that
// receives its message then does not run it.
func TestIndexedTaskCancelled(t *testing.T) {
	st := testbroker.NewStore()
	tk := indexedTask(t, st, 0)
	ctx := context.Background()
	c, err := lifecycle.Cancel(ctx, st, tk.ID, "no", t0)
	if err != nil || c.Outcome != "cancelled" {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	r := st.Result(tk.ID)
	if r == nil || r.State != plan.StateCancelled || r.Group != "g" || r.Queue != "gpu" || r.Labels["k"] != "v" || !r.SubmittedAt.Equal(t0) {
		t.Fatalf("result %+v", r)
	}
	d, err := claimFor(claimer("w1", t0), tk.ID).Claim(ctx, st, tk, t0)
	if err != nil || d.Verdict != lifecycle.Done {
		t.Fatalf("Claim after cancel = %+v, %v; want Done", d, err)
	}
}

// An explicit resubmit under a generated id is judged against the index
// record: the same task is sent again while unstarted and not once taken,
// another task is refused, and neither writes a task.json.
func TestIndexedTaskResubmitted(t *testing.T) {
	st := testbroker.NewStore()
	tk := indexedTask(t, st, 1)
	ctx := context.Background()
	again := *tk
	send, created, err := lifecycle.Record(ctx, st, &again)
	if err != nil || !send || created {
		t.Fatalf("identical resubmit: send %v created %v err %v; want send, not created", send, created, err)
	}
	diff := *tk
	diff.Argv = []string{"rm", "-rf", "/"}
	if _, _, err := lifecycle.Record(ctx, st, &diff); !errors.Is(err, lifecycle.ErrConflict) {
		t.Fatalf("different resubmit: %v, want ErrConflict", err)
	}
	if got := st.Members("g"); len(got) != 1 {
		t.Fatalf("group members %v, want the task once", got)
	}
	if _, err := claimFor(claimer("w1", t0), tk.ID).Claim(ctx, st, tk, t0); err != nil {
		t.Fatal(err)
	}
	if send, _, err := lifecycle.Record(ctx, st, &again); err != nil || send {
		t.Fatalf("resubmit once taken: send %v err %v; want no message", send, err)
	}
	if st.HasStoredTask(tk.ID) {
		t.Fatal("a task.json was written")
	}
}

// A dead letter of an indexed task is recorded, one of a forged task under
// its id is not, and one of an id nobody submitted neither.
func TestIndexedTaskDeadLettered(t *testing.T) {
	st := testbroker.NewStore()
	tk := indexedTask(t, st, 2)
	ctx := context.Background()
	forged := *tk
	forged.Argv = []string{"evil"}
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, &forged, s3results.DeadLettered{Reason: "x"}); err != nil || ok {
		t.Fatalf("forged: %v %v, want not recorded", ok, err)
	}
	unknownID, _ := plan.CallID(t0, 1, 0, 0)
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, task(unknownID), s3results.DeadLettered{Reason: "x"}); err != nil || ok {
		t.Fatalf("unknown: %v %v, want not recorded", ok, err)
	}
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, tk, s3results.DeadLettered{Reason: "x"}); err != nil || !ok {
		t.Fatalf("indexed: %v %v, want recorded", ok, err)
	}
	if s := state(t, st, tk.ID, t0); s.State != plan.StateDeadLetter {
		t.Fatalf("state %s, want dead_letter", s.State)
	}
}
