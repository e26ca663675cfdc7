package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

func state(t *testing.T, st *testbroker.Store, id string, now time.Time) plan.Status {
	t.Helper()
	snap, err := lifecycle.Read(context.Background(), st, id)
	if err != nil {
		t.Fatal(err)
	}
	peek, err := lifecycle.Peek(context.Background(), st, id)
	if err != nil {
		t.Fatal(err)
	}
	// Peek does not tell running from lost; the states of an end agree.
	s, p := snap.Status(id, now), peek.Status(id, now)
	if (s.State == plan.StateDeadLetter || p.State == plan.StateDeadLetter) && s.State != p.State {
		t.Fatalf("Read says %s, Peek says %s", s.State, p.State)
	}
	return s
}

// A task whose message SQS moved to the dead-letter queue after a worker
// claimed it and died reads dead_letter once recorded, not lost or queued;
// a claim after the record (the message redriven) makes it void.
func TestDeadLetterRecordedAfterLostClaim(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	ctx := context.Background()
	if _, err := claimFor(claimer("w1", t0), "a").Claim(ctx, st, tk, t0); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute) // w1 died: its marker is stale
	if s := state(t, st, "a", now); s.State != plan.StateLost {
		t.Fatalf("before the record: %s, want lost", s.State)
	}
	d := s3results.DeadLettered{Reason: lifecycle.ReasonRedrive, Worker: plan.WorkerInfo{ID: "w2"}, At: now}
	ok, err := lifecycle.RecordDeadLetter(ctx, st, tk, d)
	if err != nil || !ok {
		t.Fatalf("RecordDeadLetter = %v, %v", ok, err)
	}
	s := state(t, st, "a", now)
	if s.State != plan.StateDeadLetter || s.Error != lifecycle.ReasonRedrive || !s.State.Final() {
		t.Fatalf("after the record: %+v, want final dead_letter with the reason", s)
	}
	// A second worker finding it agrees, and writes nothing.
	before := st.Calls("create_dead_letter") + st.Calls("put_dead_letter")
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, tk, d); err != nil || !ok {
		t.Fatalf("second RecordDeadLetter = %v, %v", ok, err)
	}
	if n := st.Calls("create_dead_letter") + st.Calls("put_dead_letter") - before; n != 0 {
		t.Errorf("second worker wrote %d times, want 0", n)
	}
	// Redriven by hand (no record withdrawn): a worker's claim voids it.
	later := now.Add(time.Second)
	if dec, err := claimFor(claimer("w3", later), "a").Claim(ctx, st, tk, later); err != nil || dec.Verdict != lifecycle.Run {
		t.Fatalf("Claim after redrive = %+v, %v", dec, err)
	}
	if s := state(t, st, "a", later); s.State != plan.StateRunning {
		t.Fatalf("after a new claim: %s, want running", s.State)
	}
	// Dead-lettered again: the void record is replaced.
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, tk, d); err != nil || !ok {
		t.Fatalf("RecordDeadLetter again = %v, %v", ok, err)
	}
	if s := state(t, st, "a", later); s.State != plan.StateDeadLetter {
		t.Fatalf("dead-lettered again: %s, want dead_letter", s.State)
	}
}

// `dlq redrive` withdraws the record: the task reads queued at once.
func TestRedrivenIsQueuedAgain(t *testing.T) {
	st := testbroker.NewStore()
	tk := task("a")
	submit(t, st, tk)
	ctx := context.Background()
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, tk, s3results.DeadLettered{Reason: lifecycle.ReasonRedrive}); err != nil || !ok {
		t.Fatalf("RecordDeadLetter = %v, %v", ok, err)
	}
	if s := state(t, st, "a", t0); s.State != plan.StateDeadLetter {
		t.Fatalf("%s, want dead_letter", s.State)
	}
	if err := lifecycle.Redriven(ctx, st, "a"); err != nil {
		t.Fatal(err)
	}
	if s := state(t, st, "a", t0); s.State != plan.StateQueued {
		t.Fatalf("after redrive: %s, want queued", s.State)
	}
}

// Nothing is recorded for a task that ended, for one never submitted, or
// from a message that is not the stored task (a forged id).
func TestDeadLetterNotRecorded(t *testing.T) {
	st := testbroker.NewStore()
	ctx := context.Background()
	d := s3results.DeadLettered{Reason: lifecycle.ReasonRedrive}
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, task("nobody"), d); err != nil || ok {
		t.Fatalf("unknown task: %v, %v", ok, err)
	}
	done := task("done")
	submit(t, st, done)
	if err := st.PutResult(ctx, &plan.Result{ID: "done", State: plan.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, done, d); err != nil || ok {
		t.Fatalf("ended task: %v, %v", ok, err)
	}
	real := task("real")
	submit(t, st, real)
	forged := task("real")
	forged.Argv = []string{"rm", "-rf", "/"}
	if ok, err := lifecycle.RecordDeadLetter(ctx, st, forged, d); err != nil || ok {
		t.Fatalf("forged message: %v, %v", ok, err)
	}
	if s := state(t, st, "real", t0); s.State != plan.StateQueued {
		t.Fatalf("forged message changed the state to %s", s.State)
	}
}

// Cancel of a running task leaves a notice that RecentCancels names: what
// a worker running several tasks lists.
func TestCancelNoticeOfRunningTask(t *testing.T) {
	st := testbroker.NewStore()
	ctx := context.Background()
	running := task("r")
	submit(t, st, running)
	if _, err := claimFor(claimer("w1", t0), "r").Claim(ctx, st, running, t0); err != nil {
		t.Fatal(err)
	}
	if c, err := lifecycle.Cancel(ctx, st, "r", "", t0.Add(time.Second)); err != nil || c.Outcome != "cancelling" {
		t.Fatalf("Cancel(r) = %+v, %v", c, err)
	}
	ids, complete, err := st.RecentCancels(ctx, t0, 10)
	if err != nil || !complete || !ids["r"] || len(ids) != 1 {
		t.Fatalf("RecentCancels = %v, %v, %v; want r alone", ids, complete, err)
	}
	if ids, _, _ := st.RecentCancels(ctx, t0.Add(time.Minute), 10); len(ids) != 0 {
		t.Fatalf("RecentCancels since after the cancel = %v, want none", ids)
	}
}
