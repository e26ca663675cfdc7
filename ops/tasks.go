package ops

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

// TasksOptions choose which tasks of the history Tasks lists.
type TasksOptions struct {
	// Group, when set, keeps the tasks of that group only.
	Group string
	// Labels keeps the tasks that carry every one of these labels.
	Labels map[string]string
	// State, when set, keeps the tasks in that state (read from each
	// task's records, after the other filters).
	State plan.State
	// Since, when set, keeps the tasks submitted at or after it.
	Since time.Time
	// Limit is the most tasks listed (at least one).
	Limit int
	Now   time.Time
}

// TaskRow is one task of the history: its state as poll reports it, and
// what it was submitted with.
type TaskRow struct {
	plan.Status
	Queue       string            `json:"queue,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	SubmittedAt time.Time         `json:"submitted_at"`
}

// Tasks lists the history, newest first: one LIST page of the index per
// thousand submit calls, one GET per index object read, and the states of
// the tasks that pass the filters, read in batches no larger than what is
// left to list (so --limit bounds the reads when no --state is given).
// Tasks whose records have expired or were withdrawn are left out.
func Tasks(ctx context.Context, be *backend.Backend, o TasksOptions) ([]TaskRow, error) {
	limit := max(o.Limit, 1)
	var out []TaskRow
	var pending []s3results.IndexEntry
	seen := map[string]bool{}
	// states reads the pending tasks' states until limit rows are listed.
	states := func() error {
		for len(pending) > 0 && len(out) < limit {
			n := min(len(pending), limit-len(out))
			chunk := pending[:n]
			pending = pending[n:]
			ids := make([]string, n)
			for i, e := range chunk {
				ids[i] = e.ID
			}
			sts, errs := lifecycle.Statuses(ctx, be.Store, ids, o.Now)
			for i, st := range sts {
				if errors.Is(errs[i], plan.ErrTaskNotFound) {
					continue
				}
				if errs[i] != nil {
					return errs[i]
				}
				if o.State != "" && st.State != o.State {
					continue
				}
				e := chunk[i]
				if st.Group == "" {
					st.Group = e.Group
				}
				out = append(out, TaskRow{Status: st, Queue: e.Queue, Labels: e.Labels, SubmittedAt: e.SubmittedAt})
			}
		}
		return nil
	}
	err := be.Store.IndexKeys(ctx, o.Since, func(k s3results.IndexKey) (bool, error) {
		b, err := be.Store.GetIndex(ctx, k.Key)
		if errors.Is(err, s3results.ErrNoObject) {
			return true, nil // expired since the LIST
		}
		if err != nil {
			return false, err
		}
		sort.SliceStable(b.Tasks, func(i, j int) bool { return newer(b.Tasks[i], b.Tasks[j]) })
		for _, e := range b.Tasks {
			if seen[e.ID] || !matches(e, o) {
				continue
			}
			seen[e.ID] = true
			pending = append(pending, e)
		}
		if len(pending) >= limit-len(out) {
			if err := states(); err != nil {
				return false, err
			}
		}
		return len(out) < limit, nil
	})
	if err != nil {
		return out, err
	}
	if err := states(); err != nil {
		return out, err
	}
	return out, nil
}

func newer(a, b s3results.IndexEntry) bool {
	if !a.SubmittedAt.Equal(b.SubmittedAt) {
		return a.SubmittedAt.After(b.SubmittedAt)
	}
	return a.ID > b.ID
}

// matches reports whether an index entry passes the filters the index
// alone can answer.
func matches(e s3results.IndexEntry, o TasksOptions) bool {
	if o.Group != "" && e.Group != o.Group {
		return false
	}
	if !o.Since.IsZero() && e.SubmittedAt.Before(o.Since) {
		return false
	}
	for k, v := range o.Labels {
		if got, ok := e.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
