package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// Verdict is what a worker must do with a delivered task.
type Verdict int

const (
	// Run: the attempt in Decision.Attempt is claimed; start the command.
	Run Verdict = iota
	// Done: the task has a final result already; acknowledge the message.
	Done
	// Elsewhere: another worker runs the task, or took this attempt first;
	// hide the message for a lease and look again.
	Elsewhere
	// EndUnstarted: the task ends without running (Decision.Result); store
	// the result, then acknowledge.
	EndUnstarted
)

// Decision is the outcome of Claim.
type Decision struct {
	Verdict Verdict
	// Attempt is the attempt claimed (Run) or the last one taken.
	Attempt int
	// Result is the result to store for EndUnstarted, and for Done the one
	// stored (the worker repairs its group's index from it).
	Result *plan.Result
	// Why says, for Done and Elsewhere, what was seen (for the log).
	Why string
	// Running is, for Elsewhere, the other worker's marker when known.
	Running *plan.Running
}

// Claimer holds what Claim needs to know about the worker claiming.
type Claimer struct {
	Worker plan.WorkerInfo
	// Marker builds the claim record of an attempt.
	Marker func(attempt int) plan.Running
	// RunningHere reports whether this worker runs the task already.
	RunningHere func(id string) bool
	// MaxLost bounds the attempts whose worker was lost before the task
	// ends failed.
	MaxLost int
}

// Claim takes the next attempt of t. The common case costs one
// conditional put: attempt 1 is claimed at once, since if nobody holds it
// the task never ran (and cancel of a queued task claims it first, so a
// cancelled task needs no other read). Only when that claim fails is the
// task's state read to find out why. An error leaves the message alone: the
// caller tries again later.
func (c Claimer) Claim(ctx context.Context, st Store, t *plan.Task, now time.Time) (Decision, error) {
	m := c.Marker(1)
	err := st.Claim(ctx, &m)
	if err == nil {
		return Decision{Verdict: Run, Attempt: 1}, nil
	}
	if !errors.Is(err, plan.ErrExists) {
		return Decision{}, fmt.Errorf("claim: %w", err)
	}
	snap, err := Read(ctx, st, t.ID)
	if err != nil {
		return Decision{}, fmt.Errorf("read the task's state: %w", err)
	}
	last := snap.LastClaim()
	if snap.Result != nil {
		return Decision{Verdict: Done, Attempt: last, Why: string(snap.Result.State), Result: snap.Result}, nil
	}
	if rm := snap.Running; rm != nil && (now.Sub(rm.HeartbeatAt) <= rm.StaleAfter() || c.RunningHere(t.ID)) {
		return Decision{Verdict: Elsewhere, Attempt: last, Running: rm, Why: "running elsewhere"}, nil
	}
	if snap.Cancel || snap.CancelHeld {
		return Decision{Verdict: EndUnstarted, Attempt: last,
			Result: Unstarted(t, t.ID, last, plan.StateCancelled, WhyCancelledUnstarted(""), c.Worker, now)}, nil
	}
	if lost := snap.Lost(); lost >= c.MaxLost {
		return Decision{Verdict: EndUnstarted, Attempt: last,
			Result: Unstarted(t, t.ID, last, plan.StateFailed, fmt.Sprintf("the worker running it was lost %d times", lost), c.Worker, now)}, nil
	}
	m = c.Marker(last + 1)
	if err := st.Claim(ctx, &m); err != nil {
		if errors.Is(err, plan.ErrExists) {
			return Decision{Verdict: Elsewhere, Attempt: last + 1, Why: "another worker took this attempt first"}, nil
		}
		return Decision{}, fmt.Errorf("claim: %w", err)
	}
	return Decision{Verdict: Run, Attempt: last + 1}, nil
}
