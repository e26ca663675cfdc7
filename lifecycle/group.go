package lifecycle

import (
	"context"
	"fmt"
	"sync"

	"github.com/taskiq-go/taskiq-go/plan"
)

// IndexEnd records r, a final result just stored, in its group's index, so
// that a listing of the group tells how the task ended without reading
// it. It must be called only once r is stored (the first result wins, and
// r is that one): the index may then lag behind the results (its writer
// stopped in between, and readers fall back on the task's records), never
// lead them, so a stale attempt, which stores no final result, can never
// make the index say a task ended. A task without a group costs nothing.
func IndexEnd(ctx context.Context, st Store, r *plan.Result) error {
	if r == nil || r.Group == "" {
		return nil
	}
	return st.PutGroupEnd(ctx, r)
}

// Group is a group's members as one listing of its index tells.
type Group struct {
	// Members are the ids of its tasks, in key order.
	Members []string
	// Ended are the final statuses of the members the index shows ended.
	Ended map[string]plan.Status
}

// ReadGroup lists a group's index (a LIST page per thousand members and
// per thousand ends, no object read) and derives the final status of each
// member it shows ended. A member whose error was too long for its end
// key, or with end keys that disagree, is confirmed by its result (one
// GET; without one it counts as not ended, and the caller reads it in
// full). known, when not nil, names members the caller already knows
// ended: they are not read again.
func ReadGroup(ctx context.Context, st Store, group string, known func(id string) bool) (*Group, error) {
	gi, err := st.GroupIndex(ctx, group)
	if err != nil {
		return nil, err
	}
	g := &Group{Members: gi.Members, Ended: map[string]plan.Status{}}
	var confirm []string
	for _, id := range gi.Members {
		ends := gi.Ends[id]
		switch {
		case len(ends) == 0 || known != nil && known(id):
		case len(ends) == 1 && !ends[0].ErrorOmitted:
			g.Ended[id] = ends[0].Status
		default:
			confirm = append(confirm, id)
		}
	}
	if len(confirm) == 0 {
		return g, nil
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make([]error, len(confirm))
	for i, id := range confirm {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := Ended(ctx, st, id)
			if err != nil || r == nil {
				errs[i] = err
				return
			}
			s := (&Snapshot{Result: r}).Status(id, r.FinishedAt)
			mu.Lock()
			g.Ended[id] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("task %s of group %s: %w", confirm[i], group, err)
		}
	}
	return g, nil
}
