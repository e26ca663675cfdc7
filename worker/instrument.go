package worker

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// countedQueue and countedStore count every failed call, so that metrics see
// all SQS and S3 errors without each call site having to report them.
type countedQueue struct {
	q Queue
	m Metrics
}

func (c countedQueue) note(op string, err error) error {
	if err != nil {
		c.m.BackendError("sqs", op)
	}
	return err
}

func (c countedQueue) Receive(ctx context.Context, queueURL string, max int, wait, visibility time.Duration) ([]sqs.Message, error) {
	msgs, err := c.q.Receive(ctx, queueURL, max, wait, visibility)
	if ctx.Err() == nil {
		err = c.note("receive", err)
	}
	return msgs, err
}

func (c countedQueue) SetVisibility(ctx context.Context, queueURL, receipt string, d time.Duration) error {
	return c.note("change_visibility", c.q.SetVisibility(ctx, queueURL, receipt, d))
}

func (c countedQueue) ChangeVisibilities(ctx context.Context, queueURL string, changes []sqs.VisibilityChange) ([]error, error) {
	errs, err := c.q.ChangeVisibilities(ctx, queueURL, changes)
	for _, e := range errs {
		c.note("change_visibility", e)
	}
	return errs, c.note("change_visibility", err)
}

func (c countedQueue) DeleteBatch(ctx context.Context, queueURL string, receipts []string) ([]error, error) {
	errs, err := c.q.DeleteBatch(ctx, queueURL, receipts)
	return errs, c.note("delete", err)
}

func (c countedQueue) MaxReceiveCount(ctx context.Context, queueURL string) (int, error) {
	n, err := c.q.MaxReceiveCount(ctx, queueURL)
	return n, c.note("get_queue_attributes", err)
}

func (c countedQueue) Stats(ctx context.Context, queueURL string) (sqs.Stats, error) {
	st, err := c.q.Stats(ctx, queueURL)
	return st, c.note("get_queue_attributes", err)
}

func (c countedQueue) Send(ctx context.Context, queueURL string, e sqs.Entry) (string, error) {
	id, err := c.q.Send(ctx, queueURL, e)
	return id, c.note("send", err)
}

func (c countedQueue) SendBatch(ctx context.Context, queueURL string, entries []sqs.Entry) ([]error, error) {
	errs, err := c.q.SendBatch(ctx, queueURL, entries)
	return errs, c.note("send", err)
}

type countedStore struct {
	s Store
	m Metrics
}

func (c countedStore) note(op string, err error) error {
	if err != nil {
		c.m.BackendError("s3", op)
	}
	return err
}

func (c countedStore) GetTask(ctx context.Context, id string) (*plan.Task, error) {
	t, err := c.s.GetTask(ctx, id)
	return t, c.note("get_task", err)
}

func (c countedStore) GetIndexed(ctx context.Context, id string) (*plan.Task, error) {
	t, err := c.s.GetIndexed(ctx, id)
	return t, c.note("get_index", err)
}

func (c countedStore) GetStoredTask(ctx context.Context, id string) (*plan.Task, error) {
	t, err := c.s.GetStoredTask(ctx, id)
	return t, c.note("get_task", err)
}

func (c countedStore) List(ctx context.Context, id string) (*s3results.Objects, error) {
	o, err := c.s.List(ctx, id)
	return o, c.note("list", err)
}

func (c countedStore) PutTask(ctx context.Context, t *plan.Task) (bool, error) {
	ok, err := c.s.PutTask(ctx, t)
	return ok, c.note("put_task", err)
}

func (c countedStore) AddToGroup(ctx context.Context, group, id string) error {
	return c.note("add_to_group", c.s.AddToGroup(ctx, group, id))
}

func (c countedStore) GroupIndex(ctx context.Context, group string) (*s3results.GroupIndex, error) {
	gi, err := c.s.GroupIndex(ctx, group)
	return gi, c.note("group_index", err)
}

func (c countedStore) PutGroupEnd(ctx context.Context, r *plan.Result) error {
	return c.note("put_group_end", c.s.PutGroupEnd(ctx, r))
}

func (c countedStore) GetResult(ctx context.Context, id string) (*plan.Result, error) {
	r, err := c.s.GetResult(ctx, id)
	if err == nil || errors.Is(err, s3results.ErrNoObject) {
		return r, err
	}
	return r, c.note("get_result", err)
}

func (c countedStore) GetRunning(ctx context.Context, id string, attempt int) (*plan.Running, error) {
	r, err := c.s.GetRunning(ctx, id, attempt)
	if err == nil || errors.Is(err, s3results.ErrNoObject) {
		return r, err
	}
	return r, c.note("get_running", err)
}

func (c countedStore) GetClaim(ctx context.Context, id string, attempt int) (*plan.Running, error) {
	r, err := c.s.GetClaim(ctx, id, attempt)
	if err == nil || errors.Is(err, s3results.ErrNoObject) {
		return r, err
	}
	return r, c.note("get_claim", err)
}

func (c countedStore) PutDeadLetter(ctx context.Context, d *s3results.DeadLettered) error {
	return c.note("put_dead_letter", c.s.PutDeadLetter(ctx, d))
}

func (c countedStore) CreateDeadLetter(ctx context.Context, d *s3results.DeadLettered) error {
	err := c.s.CreateDeadLetter(ctx, d)
	if errors.Is(err, plan.ErrExists) {
		return err
	}
	return c.note("put_dead_letter", err)
}

func (c countedStore) GetDeadLetter(ctx context.Context, id string) (*s3results.DeadLettered, error) {
	d, err := c.s.GetDeadLetter(ctx, id)
	if err == nil || errors.Is(err, s3results.ErrNoObject) {
		return d, err
	}
	return d, c.note("get_dead_letter", err)
}

func (c countedStore) PutCancel(ctx context.Context, x *plan.Cancel) error {
	return c.note("put_cancel", c.s.PutCancel(ctx, x))
}

func (c countedStore) RecentCancels(ctx context.Context, since time.Time, maxKeys int) (map[string]bool, bool, error) {
	ids, complete, err := c.s.RecentCancels(ctx, since, maxKeys)
	return ids, complete, c.note("cancel_check", err)
}

func (c countedStore) Claim(ctx context.Context, r *plan.Running) error {
	err := c.s.Claim(ctx, r)
	if err == nil || isExists(err) {
		return err // losing a claim is the protocol working, not an error
	}
	return c.note("claim", err)
}

func (c countedStore) Unclaim(ctx context.Context, id string, attempt int) error {
	return c.note("unclaim", c.s.Unclaim(ctx, id, attempt))
}

func (c countedStore) PutRunning(ctx context.Context, r *plan.Running) error {
	return c.note("put_running", c.s.PutRunning(ctx, r))
}

func (c countedStore) DeleteRunning(ctx context.Context, id string, attempt int) error {
	return c.note("delete_running", c.s.DeleteRunning(ctx, id, attempt))
}

func (c countedStore) CancelRequested(ctx context.Context, id string) (bool, error) {
	ok, err := c.s.CancelRequested(ctx, id)
	return ok, c.note("cancel_check", err)
}

func (c countedStore) PutResult(ctx context.Context, r *plan.Result) error {
	err := c.s.PutResult(ctx, r)
	if err == nil || isExists(err) {
		return err
	}
	return c.note("put_result", err)
}

func (c countedStore) PutAttempt(ctx context.Context, r *plan.Result) error {
	return c.note("put_attempt", c.s.PutAttempt(ctx, r))
}

func (c countedStore) PutLog(ctx context.Context, id string, attempt int, stream string, body io.ReadSeeker, size int64) (string, error) {
	k, err := c.s.PutLog(ctx, id, attempt, stream, body, size)
	return k, c.note("put_log", err)
}

func (c countedStore) PutWorker(ctx context.Context, workerID string, v any) error {
	return c.note("put_worker", c.s.PutWorker(ctx, workerID, v))
}

func (c countedStore) DeleteWorker(ctx context.Context, workerID string) error {
	return c.note("delete_worker", c.s.DeleteWorker(ctx, workerID))
}

func (c countedStore) WorkerStop(ctx context.Context, workerID string) (*s3results.WorkerStopRequest, error) {
	req, err := c.s.WorkerStop(ctx, workerID)
	return req, c.note("get_worker_stop", err)
}

func (c countedStore) DeleteWorkerStop(ctx context.Context, workerID string) error {
	return c.note("delete_worker_stop", c.s.DeleteWorkerStop(ctx, workerID))
}

func isExists(err error) bool { return errors.Is(err, plan.ErrExists) }

func (c countedStore) Check(ctx context.Context) error {
	return c.note("check", c.s.Check(ctx))
}
