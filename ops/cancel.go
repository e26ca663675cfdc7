package ops

import (
	"context"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
)

// CancelOptions say which tasks to cancel and why.
type CancelOptions struct {
	IDs    []string
	Group  string
	Reason string
}

// cancelsInFlight bounds the tasks cancelled at once: each is a few
// sequential requests, so a thousand take seconds, not minutes, and every
// one of them is claimed (no worker may start it) by the time Cancel
// returns.
const cancelsInFlight = 32

// Cancel asks for tasks to be stopped (lifecycle.Cancel), many at once. Of
// a group, the members its index shows ended are reported "already STATE"
// without a request, the others are cancelled with lifecycle.CancelUnended.
// It returns, in the order of the ids, what happened to each task handled
// (on an error, those done before it stopped), and the ids it was asked to
// cancel (a group's members), for a wait.
func Cancel(ctx context.Context, be *backend.Backend, o CancelOptions, now time.Time) ([]lifecycle.Cancelled, []string, error) {
	return cancel(ctx, be.Store, o, now)
}

func cancel(ctx context.Context, st lifecycle.Store, o CancelOptions, now time.Time) ([]lifecycle.Cancelled, []string, error) {
	ids := o.IDs
	var ended map[string]plan.Status
	if o.Group != "" {
		g, err := readGroup(ctx, st, o.Group, nil)
		if err != nil {
			return nil, nil, err
		}
		ids, ended = g.Members, g.Ended
	}
	out := make([]lifecycle.Cancelled, len(ids))
	done := make([]bool, len(ids))
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	sem := make(chan struct{}, cancelsInFlight)
	for i, id := range ids {
		if s, ok := ended[id]; ok {
			out[i], done[i] = lifecycle.Cancelled{ID: id, Outcome: "already " + string(s.State), State: s.State}, true
			continue
		}
		sem <- struct{}{}
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			<-sem
			break // the store fails: do not send it a thousand more calls
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var c lifecycle.Cancelled
			var err error
			if o.Group != "" {
				c, err = lifecycle.CancelUnended(ctx, st, id, o.Reason, now)
			} else {
				c, err = lifecycle.Cancel(ctx, st, id, o.Reason, now)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				return
			}
			out[i], done[i] = c, true
		}()
	}
	wg.Wait()
	var handled []lifecycle.Cancelled
	for i := range out {
		if done[i] {
			handled = append(handled, out[i])
		}
	}
	return handled, ids, first
}
