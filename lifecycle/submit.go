package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// ErrConflict is returned when a task is submitted under an id that names a
// different task: a resubmit never changes what runs.
var ErrConflict = errors.New("was submitted before with a different task")

// Same reports whether two submissions describe the same task: everything
// but the submission time (and so the signature over it) must match.
func Same(a, b *plan.Task) bool {
	x, y := *a, *b
	x.SubmittedAt, y.SubmittedAt = time.Time{}, time.Time{}
	x.Sig, y.Sig = nil, nil
	x.Normalize()
	y.Normalize()
	// Compared as encoded, so that an empty map and no map are the same.
	bx, errx := json.Marshal(&x)
	by, erry := json.Marshal(&y)
	return errx == nil && erry == nil && bytes.Equal(bx, by)
}

// SubmitStore is the store Record writes to: the lifecycle's, and the
// removal of a group membership Record wrote for a task it then refused.
type SubmitStore interface {
	Store
	RemoveFromGroup(ctx context.Context, group, id string) error
}

// Record writes a submitted task's record and group membership, and says
// whether its message must be sent: always for a new task, and for a
// resubmitted identical task only while no attempt has been taken, since the
// first submit may have stopped between writing the record and sending (a
// duplicate message is harmless: one attempt runs once). A resubmit of a
// different task under the same id is refused with ErrConflict, and leaves
// nothing behind.
//
// The membership is written beside the record, not after it: a submit's
// latency is that of one write, not two. When the record is refused, or
// its write fails, the membership is taken back unless the task already
// recorded under that id belongs to the same group (an earlier submit
// wrote the same key) or cannot be read.
func Record(ctx context.Context, st SubmitStore, t *plan.Task) (send, created bool, err error) {
	var groupErr error
	joined := make(chan struct{})
	if t.Group != "" {
		go func() {
			defer close(joined)
			groupErr = st.AddToGroup(ctx, t.Group, t.ID)
		}()
	} else {
		close(joined)
	}
	send, created, err = record(ctx, st, t)
	<-joined
	if err == nil && groupErr != nil {
		return false, created, groupErr
	}
	if err != nil && t.Group != "" && groupErr == nil {
		prev, gerr := st.GetTask(context.WithoutCancel(ctx), t.ID)
		if errors.Is(gerr, plan.ErrTaskNotFound) || (gerr == nil && prev.Group != t.Group) {
			_ = st.RemoveFromGroup(context.WithoutCancel(ctx), t.Group, t.ID)
		}
	}
	return send, created, err
}

// record writes the task's record and decides whether to send its message.
// An id that decodes as generated may name a task recorded only in its
// submit call's index chunk: that is looked at first, so that an explicit
// resubmit of it is judged like any other.
func record(ctx context.Context, st Store, t *plan.Task) (send, created bool, err error) {
	if _, ok := plan.ParseGeneratedID(t.ID); ok {
		prev, err := st.GetIndexed(ctx, t.ID)
		if err == nil {
			send, err = resubmitted(ctx, st, prev, t)
			return send, false, err
		}
		if !errors.Is(err, plan.ErrTaskNotFound) {
			return false, false, err
		}
	}
	created, err = st.PutTask(ctx, t)
	if err != nil {
		return false, false, err
	}
	if !created {
		prev, err := st.GetTask(ctx, t.ID)
		if err != nil {
			return false, false, err
		}
		send, err = resubmitted(ctx, st, prev, t)
		return send, false, err
	}
	return true, created, nil
}

// resubmitted decides a resubmit of prev as t: refused when it differs,
// and its message sent again only while no attempt has been taken.
func resubmitted(ctx context.Context, st Store, prev, t *plan.Task) (send bool, err error) {
	if !Same(prev, t) {
		return false, fmt.Errorf("task %s %w", t.ID, ErrConflict)
	}
	snap, err := Read(ctx, st, t.ID)
	if err != nil {
		return false, err
	}
	return snap.Result == nil && snap.LastClaim() == 0, nil
}

// RecordIndexed is Record for a task whose record is the index chunk of
// its submit call (a generated id, inline in its message), written beside
// it by the caller: nobody can have submitted it before, since nobody knew
// its id, so only its group membership is written. It reports that the
// message must be sent, and that the task is new.
func RecordIndexed(ctx context.Context, st SubmitStore, t *plan.Task) (send, created bool, err error) {
	if t.Group != "" {
		if err := st.AddToGroup(ctx, t.Group, t.ID); err != nil {
			return false, false, err
		}
	}
	return true, true, nil
}
