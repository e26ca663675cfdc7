// Package lifecycle holds the rules of a task's life, written once: how an
// attempt is claimed, how cancel and claim are ordered so that one always
// sees the other, when an attempt still holds its lease (fencing), how an
// attempt ends (final result, retry, or only its own record), and how a
// task's state is derived from what is stored. The worker and the
// operations (submit, poll, cancel, result) use it; the store below it only
// knows keys and typed objects.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

// Store is the part of the object store the lifecycle reads and writes.
type Store interface {
	List(ctx context.Context, id string) (*s3results.Objects, error)
	// GetTask reads a task's record: for a generated id, from its submit
	// call's index chunk first (s3results.Store.GetTask).
	GetTask(ctx context.Context, id string) (*plan.Task, error)
	// GetIndexed reads a generated id's record from its index chunk
	// alone: one GET, none for an id that does not decode, and
	// plan.ErrTaskNotFound when the chunk does not hold it.
	GetIndexed(ctx context.Context, id string) (*plan.Task, error)
	PutTask(ctx context.Context, t *plan.Task) (created bool, err error)
	AddToGroup(ctx context.Context, group, id string) error
	// GroupIndex lists a group's members and their end keys; PutGroupEnd
	// writes the end key of a grouped task's stored final result.
	GroupIndex(ctx context.Context, group string) (*s3results.GroupIndex, error)
	PutGroupEnd(ctx context.Context, r *plan.Result) error
	GetResult(ctx context.Context, id string) (*plan.Result, error)
	PutResult(ctx context.Context, r *plan.Result) error
	GetRunning(ctx context.Context, id string, attempt int) (*plan.Running, error)
	GetClaim(ctx context.Context, id string, attempt int) (*plan.Running, error)
	Claim(ctx context.Context, r *plan.Running) error
	PutCancel(ctx context.Context, c *plan.Cancel) error
	GetDeadLetter(ctx context.Context, id string) (*s3results.DeadLettered, error)
}

var _ Store = (*s3results.Store)(nil)

// CancelWorkerID is the worker id in a claim that cancel wrote: the attempt
// was taken so that no worker may start it.
const CancelWorkerID = "cancel"

// Snapshot is what exists for one task, read with one LIST and at most one
// GET.
type Snapshot struct {
	s3results.Objects
	// Group is the task's group when known without another read.
	Group  string
	Result *plan.Result
	// Running is the marker of the attempt in progress: its running marker
	// when the worker has refreshed it, else the claim it wrote on start.
	Running *plan.Running
	// claimed is set by Peek for a task an attempt holds: running, as far
	// as a LIST tells (it may be lost).
	claimed bool
	// CancelHeld is set by Read when cancel took the last attempt: the
	// task is cancelled, whether or not cancel got to store its result.
	CancelHeld bool
	// Refused says why the task's message went to the dead-letter queue (a
	// worker refused it, or SQS moved it there), when it did and no attempt
	// was taken since.
	Refused *s3results.DeadLettered
	// Indexed is the task's record as its index chunk holds it, when
	// nothing exists under its own prefix yet (a queued task with a
	// generated id).
	Indexed *plan.Task
}

// Peek is Read for a wait: one LIST, and a GET only for a result. A task an
// attempt holds shows as running, without its worker (it may be lost), and
// the group is not read.
func Peek(ctx context.Context, st Store, id string) (*Snapshot, error) {
	snap, err := readEnd(ctx, st, id)
	if err != nil || snap.Result != nil || snap.Refused != nil {
		return snap, err
	}
	last := snap.LastClaim()
	snap.claimed = last > 0 && !slices.Contains(snap.Attempts, last)
	return snap, nil
}

// readEnd lists what exists for task id and reads how it ended, if it did:
// its result, or why its message went to the dead-letter queue (and no
// attempt was taken since).
func readEnd(ctx context.Context, st Store, id string) (*Snapshot, error) {
	o, err := st.List(ctx, id)
	if err != nil {
		return nil, err
	}
	if !o.Any {
		// A task with a generated id has no object of its own until a
		// worker or cancel takes it: its record is in its index chunk.
		t, err := st.GetIndexed(ctx, id)
		if err != nil {
			return nil, err
		}
		snap := &Snapshot{Objects: *o, Indexed: t, Group: t.Group}
		snap.Any = true
		return snap, nil
	}
	snap := &Snapshot{Objects: *o}
	if o.Result {
		r, err := st.GetResult(ctx, id)
		if err != nil {
			return nil, err
		}
		snap.Result, snap.Group = r, r.Group
		return snap, nil
	}
	if o.DeadLetter {
		if d, err := st.GetDeadLetter(ctx, id); err == nil && d.Attempt >= o.LastClaim() {
			snap.Refused = d
		}
	}
	return snap, nil
}

// Lost counts the attempts taken that never recorded how they ended (their
// worker died or lost its lease), the one in progress included.
func (s *Snapshot) Lost() int {
	n := 0
	for _, c := range s.Claims {
		if !slices.Contains(s.Attempts, c) {
			n++
		}
	}
	return n
}

// Read takes a snapshot of task id; plan.ErrTaskNotFound when nothing
// exists for it.
func Read(ctx context.Context, st Store, id string) (*Snapshot, error) {
	return read(ctx, st, id, true)
}

// read is Read; withGroup false skips the GET of the task record that a
// queued task's group takes.
func read(ctx context.Context, st Store, id string, withGroup bool) (*Snapshot, error) {
	snap, err := readEnd(ctx, st, id)
	if err != nil || snap.Result != nil || snap.Refused != nil {
		return snap, err
	}
	o := &snap.Objects
	last := o.LastClaim()
	if last == 0 || slices.Contains(o.Attempts, last) {
		// Queued, or waiting to be retried: the task record has the group
		// (in task.json, or in the index chunk a generated id names).
		if _, generated := plan.ParseGeneratedID(id); withGroup && snap.Indexed == nil && (o.Submitted || generated) {
			if t, err := st.GetTask(ctx, id); err == nil {
				snap.Group = t.Group
			}
		}
		return snap, nil
	}
	var r *plan.Running
	if slices.Contains(o.Running, last) {
		r, err = st.GetRunning(ctx, id, last)
	} else {
		r, err = st.GetClaim(ctx, id, last)
	}
	if errors.Is(err, s3results.ErrNoObject) {
		return snap, nil // finished or released between the LIST and now
	}
	if err != nil {
		return nil, err
	}
	if r.Worker.ID == CancelWorkerID {
		snap.CancelHeld = true // its result follows, or the next worker stores it
		return snap, nil
	}
	snap.Running, snap.Group = r, r.Group
	return snap, nil
}

// Status derives a task's state from its snapshot. A running marker whose
// heartbeat is older than its StaleAfter makes the task lost.
func (s *Snapshot) Status(id string, now time.Time) plan.Status {
	st := plan.Status{ID: id, State: plan.StateQueued, Group: s.Group}
	switch {
	case s.Result != nil:
		r := s.Result
		st.State, st.ExitCode, st.Worker, st.Attempt = r.State, r.ExitCode, r.Worker, r.Attempt
		st.Group, st.Error, st.FinishedAt = r.Group, r.Error, r.FinishedAt
	case s.Running != nil:
		r := s.Running
		st.State, st.Worker, st.Attempt, st.HeartbeatAt = plan.StateRunning, r.Worker, r.Attempt, r.HeartbeatAt
		if now.Sub(r.HeartbeatAt) > r.StaleAfter() {
			st.State = plan.StateLost
		}
	case s.claimed:
		st.State = plan.StateRunning
	case s.Refused != nil:
		st.State, st.Error, st.Worker = plan.StateDeadLetter, s.Refused.Reason, s.Refused.Worker
	}
	return st
}

// Statuses reports many tasks' states, reading up to 16 at once.
func Statuses(ctx context.Context, st Store, ids []string, now time.Time) ([]plan.Status, []error) {
	return statuses(ctx, st, ids, now, Read)
}

// PeekStatuses is Statuses with Peek: the cheap read of a wait.
func PeekStatuses(ctx context.Context, st Store, ids []string, now time.Time) ([]plan.Status, []error) {
	return statuses(ctx, st, ids, now, Peek)
}

func statuses(ctx context.Context, st Store, ids []string, now time.Time,
	read func(context.Context, Store, string) (*Snapshot, error)) ([]plan.Status, []error) {
	out := make([]plan.Status, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			snap, err := read(ctx, st, id)
			if err != nil {
				out[i], errs[i] = plan.Status{ID: id}, err
				return
			}
			out[i] = snap.Status(id, now)
		}()
	}
	wg.Wait()
	return out, errs
}

// Ended reads a task's final result with one GET, and nil when it has none
// (yet, or at all): the cheapest read that tells a task has ended.
func Ended(ctx context.Context, st Store, id string) (*plan.Result, error) {
	r, err := st.GetResult(ctx, id)
	if errors.Is(err, s3results.ErrNoObject) {
		return nil, nil
	}
	return r, err
}

// Result reads a task's final result: plan.ErrNotFinished when it has none
// yet, plan.ErrTaskNotFound when the task does not exist at all.
func Result(ctx context.Context, st Store, id string) (*plan.Result, error) {
	r, err := st.GetResult(ctx, id)
	if errors.Is(err, s3results.ErrNoObject) {
		o, lerr := st.List(ctx, id)
		if lerr != nil {
			return nil, lerr
		}
		if !o.Any {
			if _, err := st.GetIndexed(ctx, id); err != nil {
				return nil, err // plan.ErrTaskNotFound when not there either
			}
		}
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrNotFinished)
	}
	return r, err
}

// Unstarted is the final result of a task that ended without its command
// running (cancelled before it started, lost too often): the one place that
// builds it. attempt is the last attempt taken (0 for none).
func Unstarted(t *plan.Task, id string, attempt int, state plan.State, why string, w plan.WorkerInfo, now time.Time) *plan.Result {
	res := &plan.Result{V: plan.Version, ID: id, State: state, Attempt: attempt, Worker: w,
		Error: why, FinishedAt: now.UTC()}
	if t != nil {
		res.Group, res.Queue, res.Labels, res.SubmittedAt = t.Group, t.Queue, t.Labels, t.SubmittedAt
	}
	return res
}

// WhyCancelledUnstarted is the error of a task cancelled before it started.
func WhyCancelledUnstarted(reason string) string {
	why := "cancelled before it started"
	if reason != "" {
		why += ": " + reason
	}
	return why
}
