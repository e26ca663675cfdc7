package ops

import (
	"context"
	"time"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
)

// CancelOptions say which tasks to cancel and why.
type CancelOptions struct {
	IDs    []string
	Group  string
	Reason string
}

// Cancel asks for tasks to be stopped (lifecycle.Cancel), in order; it
// returns what happened to each task handled before an error, and the ids
// it was asked to cancel (a group's members), for a wait.
func Cancel(ctx context.Context, be *backend.Backend, o CancelOptions, now time.Time) ([]lifecycle.Cancelled, []string, error) {
	ids, err := TaskIDs(ctx, be, o.IDs, o.Group)
	if err != nil {
		return nil, nil, err
	}
	var out []lifecycle.Cancelled
	for _, id := range ids {
		c, err := lifecycle.Cancel(ctx, be.Store, id, o.Reason, now)
		if err != nil {
			return out, ids, err
		}
		out = append(out, c)
	}
	return out, ids, nil
}
