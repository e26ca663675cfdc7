// Package ops holds the operations the commands perform: submit, poll,
// cancel, result, and waiting for tasks to end. Each takes parsed options
// and returns values; the commands package only parses flags, calls one of
// these and prints what it returns. The rules of a task's life come from
// package lifecycle.
package ops

import (
	"context"
	"fmt"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/plan"
)

// TaskIDs is ids, or the ids of group's tasks when a group is given; a group
// with no tasks is an unknown one.
func TaskIDs(ctx context.Context, be *backend.Backend, ids []string, group string) ([]string, error) {
	if group == "" {
		return ids, nil
	}
	ids, err := be.Store.GroupIDs(ctx, group)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("group %s has no tasks: %w", group, plan.ErrTaskNotFound)
	}
	return ids, nil
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
