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

// Cancel asks for task id to be stopped. The cancel marker is written
// first, for a running attempt's worker to see at its next heartbeat. A
// task that no attempt holds has its next attempt claimed by cancel itself,
// with the same conditional put a worker uses: whichever of the two writes
// the claim first wins, so a task reported cancelled never starts, and one
// a worker took first is reported cancelling.
func Cancel(ctx context.Context, st Store, id, reason string, now time.Time) (Cancelled, error) {
	snap, err := Read(ctx, st, id)
	if err != nil {
		return Cancelled{ID: id}, err
	}
	if snap.Result != nil {
		return already(id, snap.Result.State), nil
	}
	if err := st.PutCancel(ctx, &plan.Cancel{V: plan.Version, ID: id, RequestedAt: now.UTC(), Reason: reason}); err != nil {
		return Cancelled{ID: id}, err
	}
	if snap, err = Read(ctx, st, id); err != nil {
		return Cancelled{ID: id}, err
	}
	switch {
	case snap.Result != nil:
		return already(id, snap.Result.State), nil
	case snap.Running != nil:
		return Cancelled{ID: id, Outcome: "cancelling", State: plan.StateRunning}, nil
	}
	last := snap.LastClaim()
	hold := plan.Running{V: plan.Version, ID: id, Group: snap.Group, Attempt: last + 1,
		Worker: plan.WorkerInfo{ID: CancelWorkerID}, StartedAt: now.UTC(), HeartbeatAt: now.UTC()}
	if err := st.Claim(ctx, &hold); errors.Is(err, plan.ErrExists) {
		return Cancelled{ID: id, Outcome: "cancelling", State: plan.StateRunning}, nil
	} else if err != nil {
		return Cancelled{ID: id}, err
	}
	var t *plan.Task
	if snap.Submitted {
		if got, err := st.GetTask(ctx, id); err == nil {
			t = got
		}
	}
	res := Unstarted(t, id, last, plan.StateCancelled, WhyCancelledUnstarted(reason), plan.WorkerInfo{}, now)
	err = st.PutResult(ctx, res)
	if errors.Is(err, plan.ErrExists) {
		if r, gerr := st.GetResult(ctx, id); gerr == nil {
			return already(id, r.State), nil
		}
	}
	if err != nil {
		return Cancelled{ID: id}, err
	}
	return Cancelled{ID: id, Outcome: "cancelled", State: plan.StateCancelled}, nil
}
