package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// Cancelled is what cancel reports for one task.
type Cancelled struct {
	ID string `json:"id"`
	// Outcome is "cancelled" (it will never start), "cancelling" (its
	// worker will stop it) or "already STATE" (it had ended).
	Outcome string     `json:"outcome"`
	State   plan.State `json:"state"`
}

func already(id string, s plan.State) Cancelled {
	return Cancelled{ID: id, Outcome: "already " + string(s), State: s}
}

// Cancel asks for task id to be stopped. A task that no attempt holds has
// its next attempt claimed by cancel itself, with the same conditional put
// a worker uses: whichever of the two writes the claim first wins, so a
// task reported cancelled never starts, and one a worker took first is
// reported cancelling, with the cancel marker written for its worker to
// see at its next heartbeat.
func Cancel(ctx context.Context, st Store, id, reason string, now time.Time) (Cancelled, error) {
	snap, err := readEnd(ctx, st, id)
	if err != nil {
		return Cancelled{ID: id}, err
	}
	if snap.Result != nil {
		return already(id, snap.Result.State), nil
	}
	return CancelUnended(ctx, st, id, reason, now)
}

// CancelUnended is Cancel of a task its caller has seen not ended (its
// group's index shows no end): the read before is skipped, and while
// attempt 1 is free to claim, the cancel marker and the read after it too,
// so a queued task costs a GET of its record, a claim, its result and its
// group's end key. A task that ended meanwhile is still reported "already
// STATE" (its marker, written for nothing, is never read).
func CancelUnended(ctx context.Context, st Store, id, reason string, now time.Time) (Cancelled, error) {
	// The record first: a task that does not exist gets no claim.
	t, err := st.GetTask(ctx, id)
	if err != nil {
		return Cancelled{ID: id}, err
	}
	hold := func(attempt int) error {
		return st.Claim(ctx, &plan.Running{V: plan.Version, ID: id, Group: t.Group, Attempt: attempt,
			Worker: plan.WorkerInfo{ID: CancelWorkerID}, StartedAt: now.UTC(), HeartbeatAt: now.UTC()})
	}
	// As a worker does: attempt 1 first, since if nobody holds it the task
	// never ran, and only when that claim fails is the task read to find
	// out why. The claim alone ends the task cancelled: no worker may
	// start attempt 1, and one that receives the message finds the claim
	// cancel's (Claimer.Claim) should the result below not be stored.
	last := 0
	err = hold(1)
	if errors.Is(err, plan.ErrExists) {
		// Taken: the marker, for a running attempt's worker to see at its
		// next heartbeat, then a look at who holds the task.
		if err := st.PutCancel(ctx, &plan.Cancel{V: plan.Version, ID: id, RequestedAt: now.UTC(), Reason: reason}); err != nil {
			return Cancelled{ID: id}, err
		}
		snap, err := read(ctx, st, id, false)
		if err != nil {
			return Cancelled{ID: id}, err
		}
		switch {
		case snap.Result != nil:
			return already(id, snap.Result.State), nil
		case snap.Running != nil:
			return Cancelled{ID: id, Outcome: "cancelling", State: plan.StateRunning}, nil
		}
		last = snap.LastClaim()
		err = hold(last + 1)
	}
	if errors.Is(err, plan.ErrExists) {
		return Cancelled{ID: id, Outcome: "cancelling", State: plan.StateRunning}, nil
	} else if err != nil {
		return Cancelled{ID: id}, err
	}
	res := Unstarted(t, id, last, plan.StateCancelled, WhyCancelledUnstarted(reason), plan.WorkerInfo{}, now)
	err = st.PutResult(ctx, res)
	switch {
	case errors.Is(err, plan.ErrExists):
		if r, gerr := st.GetResult(ctx, id); gerr == nil {
			return already(id, r.State), nil
		}
		return Cancelled{ID: id}, err
	case errors.Is(err, plan.ErrAccessDenied):
		// The submit role may not write results: the attempt is held, so
		// the task never starts, and the worker that next receives its
		// message finds cancel's claim and stores the result.
		return Cancelled{ID: id, Outcome: "cancelled", State: plan.StateCancelled}, nil
	case err != nil:
		return Cancelled{ID: id}, err
	}
	// Best effort: while the end key is missing, readers of the group
	// read the task itself, and the worker that receives its message
	// writes it.
	_ = IndexEnd(ctx, st, res)
	return Cancelled{ID: id, Outcome: "cancelled", State: plan.StateCancelled}, nil
}
