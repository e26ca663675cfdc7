package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

// indexChunk is how many tasks one index object names at most: a listing
// reads a few small objects, and a batch of a thousand tasks costs ten
// PUTs, not a thousand.
const indexChunk = 100

// writeIndex records the tasks of a submit call in the history index: one
// object per indexChunk tasks, whatever their number. It runs beside the
// records' writes, before anything is sent, so it names every task of the
// call, those submitted before included (a listing shows each id once, at
// its latest submit). It returns the names of the objects it wrote, for
// withdrawIndex.
func writeIndex(ctx context.Context, be *backend.Backend, tasks []*plan.Task, now time.Time) ([]string, error) {
	entries := make([]s3results.IndexEntry, 0, len(tasks))
	for _, t := range tasks {
		entries = append(entries, s3results.IndexEntry{ID: t.ID, Queue: t.Queue, Group: t.Group, Labels: t.Labels, SubmittedAt: t.SubmittedAt})
	}
	nonce := uuid.NewString()[:8]
	var written []string
	for c := 0; len(entries) > 0; c++ {
		n := min(len(entries), indexChunk)
		// Later chunks of one call sort first: newest first holds within
		// the call too.
		name := fmt.Sprintf("%s-%04d", nonce, 9999-c%10000)
		b := &s3results.IndexBatch{At: now.UTC(), Tasks: entries[:n]}
		if err := be.Store.PutIndex(ctx, b, name); err != nil {
			return written, fmt.Errorf("record the task history: %w", err)
		}
		written = append(written, name)
		entries = entries[n:]
	}
	return written, nil
}

// withdrawIndex removes the index objects of a submit call that sent
// nothing.
func withdrawIndex(ctx context.Context, be *backend.Backend, now time.Time, names []string) {
	for _, name := range names {
		_ = be.Store.DeleteIndex(ctx, now.UTC(), name)
	}
}

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
