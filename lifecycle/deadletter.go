package lifecycle

import (
	"context"
	"errors"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

// ReasonRedrive is the reason recorded for a task whose message SQS itself
// moved to the dead-letter queue: every receive it allowed ended without a
// worker finishing the task (receivers that died or froze before they
// claimed it).
const ReasonRedrive = "exceeded maxReceiveCount: SQS moved the message to the dead-letter queue"

// DeadLetterStore is what recording a dead letter writes beyond Store.
type DeadLetterStore interface {
	Store
	CreateDeadLetter(ctx context.Context, d *s3results.DeadLettered) error
	PutDeadLetter(ctx context.Context, d *s3results.DeadLettered) error
}

// RecordDeadLetter notes that task t's message lies in the dead-letter
// queue, so that poll derives dead_letter for it rather than queued for
// ever. Nothing is written for a task that has ended, one that was never
// submitted, or one whose stored record is another task (a forged message
// must not change what poll says of somebody else's task). The record
// carries the last attempt taken, so that a later claim (the message
// redriven, by `dlq redrive` or by hand) makes it void without a delete.
// Workers finding the same dead letter agree on one record: it is created
// with a conditional put, and only a record made void by a later claim is
// replaced. It reports whether the task is now recorded as dead-lettered.
func RecordDeadLetter(ctx context.Context, st DeadLetterStore, t *plan.Task, d s3results.DeadLettered) (bool, error) {
	o, err := st.List(ctx, t.ID)
	if err != nil {
		return false, err
	}
	if o.Result {
		return false, nil
	}
	var stored *plan.Task
	if !o.Submitted {
		// No task.json: a generated id's record is in its index chunk.
		stored, err = st.GetIndexed(ctx, t.ID)
		if errors.Is(err, plan.ErrTaskNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	d.ID, d.Attempt = t.ID, o.LastClaim()
	if o.DeadLetter {
		prev, err := st.GetDeadLetter(ctx, t.ID)
		if err == nil && prev.Attempt >= d.Attempt {
			return true, nil
		}
		if err != nil && !errors.Is(err, s3results.ErrNoObject) {
			return false, err
		}
	}
	if stored == nil {
		if stored, err = st.GetTask(ctx, t.ID); err != nil {
			return false, err
		}
	}
	if !Same(stored, t) {
		return false, nil
	}
	if o.DeadLetter {
		return true, st.PutDeadLetter(ctx, &d)
	}
	if err := st.CreateDeadLetter(ctx, &d); err != nil && !errors.Is(err, plan.ErrExists) {
		return false, err
	}
	return true, nil
}

// Redriven withdraws the dead-letter record of a task whose message was put
// back on its queue, so that poll says queued again at once (a claim would
// make the record void anyway, but only once a worker takes the task).
func Redriven(ctx context.Context, st interface {
	DeleteDeadLetter(ctx context.Context, id string) error
}, id string) error {
	return st.DeleteDeadLetter(ctx, id)
}
