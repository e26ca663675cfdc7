package ops

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

func submitted(t *testing.T, st *testbroker.Store, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("t%02d", i)
		tk := &plan.Task{ID: id, Argv: []string{"true"}}
		tk.Normalize()
		if _, err := st.PutTask(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func succeed(st *testbroker.Store, id string) {
	_ = st.PutResult(context.Background(), &plan.Result{V: plan.Version, ID: id, State: plan.StateSucceeded, ExitCode: plan.IntPtr(0), Attempt: 1})
}

func reads(st *testbroker.Store) int { return st.Calls("list") + st.Calls("get_result") }

// A round of a wait reads the oldest unfinished task only while it runs,
// and once it has ended sweeps on by one GET of a result per task (1, 2,
// 4... at once), to the first task without one: a wait costs about a
// request per task plus a few a round, never a re-read of every id.
func TestWaitRoundsReadLittle(t *testing.T) {
	st := testbroker.NewStore()
	ids := submitted(t, st, 10)
	p := &Poller{Peek: true, st: st, ids: ids, final: map[int]plan.Status{}, last: map[int]plan.Status{}}
	ctx := context.Background()
	round := func() []plan.Status {
		t.Helper()
		before := reads(st)
		sts, err := p.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round: %d reads", reads(st)-before)
		return sts
	}
	round()
	if n := reads(st); n != 1 {
		t.Fatalf("first round with nothing ended: %d reads, want 1 (a LIST of the oldest)", n)
	}
	for i := range 6 {
		succeed(st, ids[i])
	}
	succeed(st, ids[8]) // out of order: seen once the sweep reaches it
	before := reads(st)
	sts := round()
	// LIST+GET of t00, GETs of t01, t02..t03, t04..t07 (t06 and t07
	// without one), t06's LIST.
	if n := reads(st) - before; n != 2+1+2+4+1 {
		t.Errorf("sweep: %d reads, want 10", n)
	}
	for i, st := range sts {
		want := plan.StateQueued
		if i < 6 {
			want = plan.StateSucceeded
		}
		if st.State != want {
			t.Errorf("%s: %s, want %s", st.ID, st.State, want)
		}
	}
	for _, i := range []int{6, 7, 9} {
		succeed(st, ids[i])
	}
	sts = round()
	if !AllFinal(sts) {
		t.Fatalf("not all final: %+v", sts)
	}
	before = reads(st)
	round()
	if n := reads(st) - before; n != 0 {
		t.Errorf("a round after all ended read %d times", n)
	}
	// Every task that ended was read by its result once, and t06 and t07
	// once more, read before they ended by the sweep that stopped at t06.
	if n := st.Calls("get_result"); n != len(ids)+2 {
		t.Errorf("%d result GETs for %d tasks, want %d", n, len(ids), len(ids)+2)
	}
}

// A task that does not exist is reported once the wait reaches it.
func TestWaitUnknownTask(t *testing.T) {
	st := testbroker.NewStore()
	ids := append(submitted(t, st, 2), "nope")
	succeed(st, ids[0])
	succeed(st, ids[1])
	p := &Poller{Peek: true, st: st, ids: ids, final: map[int]plan.Status{}, last: map[int]plan.Status{}}
	if _, err := p.Poll(context.Background()); !errors.Is(err, plan.ErrTaskNotFound) {
		t.Fatalf("Poll = %v, want task not found", err)
	}
}

// A task whose message went to the dead-letter queue ends a wait as
// dead_letter, wherever it is in the order, and is not read again.
func TestWaitEndsAtDeadLetter(t *testing.T) {
	st := testbroker.NewStore()
	ids := submitted(t, st, 3)
	succeed(st, ids[0])
	_ = st.PutDeadLetter(context.Background(), &s3results.DeadLettered{ID: ids[1], Reason: "exceeded maxReceiveCount"})
	succeed(st, ids[2])
	p := &Poller{st: st, ids: ids, final: map[int]plan.Status{}, last: map[int]plan.Status{}}
	sts, err := p.Round(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !AllFinal(sts) || sts[1].State != plan.StateDeadLetter || sts[1].Error != "exceeded maxReceiveCount" {
		t.Fatalf("statuses %+v, want all final and %s dead_letter", sts, ids[1])
	}
	before := reads(st) + st.Calls("get_dead_letter")
	if _, err := p.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := reads(st) + st.Calls("get_dead_letter") - before; n != 0 {
		t.Errorf("a round after all ended read %d times", n)
	}
}
