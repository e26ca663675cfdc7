// Package worker is the consumer loop behind `taskiq-go work` and
// `taskiq-go dev --workers`: it receives only as many tasks as it has free
// slots, runs each as a subprocess in its own process group, keeps the
// queue lease and the running marker alive, and stores the result before it
// acknowledges the message.
package worker

import (
	"context"
	"io"
	"time"

	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Queue is the part of the SQS client the worker uses.
type Queue interface {
	Receive(ctx context.Context, queueURL string, max int, wait, visibility time.Duration) ([]sqs.Message, error)
	SetVisibility(ctx context.Context, queueURL, receipt string, d time.Duration) error
	ChangeVisibilities(ctx context.Context, queueURL string, changes []sqs.VisibilityChange) ([]error, error)
	DeleteBatch(ctx context.Context, queueURL string, receipts []string) ([]error, error)
	Send(ctx context.Context, queueURL string, e sqs.Entry) (string, error)
	// SendBatch sends up to ten messages in one call; errs has one entry
	// per message (nil when it was sent).
	SendBatch(ctx context.Context, queueURL string, entries []sqs.Entry) ([]error, error)
	// MaxReceiveCount is the queue's redrive limit (0: none).
	MaxReceiveCount(ctx context.Context, queueURL string) (int, error)
	// Stats is the queue's approximate depth, for the dead-letter check.
	Stats(ctx context.Context, queueURL string) (sqs.Stats, error)
}

// Store is the part of the S3 store the worker uses: what the lifecycle
// reads and writes, and the worker's own records.
type Store interface {
	lifecycle.Store
	// GetStoredTask reads the task.json a pointer names (the claim-check
	// payload), without looking in an index chunk first.
	GetStoredTask(ctx context.Context, id string) (*plan.Task, error)
	Unclaim(ctx context.Context, id string, attempt int) error
	PutRunning(ctx context.Context, r *plan.Running) error
	DeleteRunning(ctx context.Context, id string, attempt int) error
	CancelRequested(ctx context.Context, id string) (bool, error)
	// RecentCancels names the tasks cancelled since a time, with one LIST
	// per thousand cancels (s3results.Store.RecentCancels).
	RecentCancels(ctx context.Context, since time.Time, maxKeys int) (map[string]bool, bool, error)
	PutAttempt(ctx context.Context, r *plan.Result) error
	PutDeadLetter(ctx context.Context, d *s3results.DeadLettered) error
	CreateDeadLetter(ctx context.Context, d *s3results.DeadLettered) error
	PutLog(ctx context.Context, id string, attempt int, stream string, body io.ReadSeeker, size int64) (string, error)
	PutWorker(ctx context.Context, workerID string, v any) error
	DeleteWorker(ctx context.Context, workerID string) error
	// Check tells whether the store can be reached, to probe it while down.
	Check(ctx context.Context) error
	WorkerStop(ctx context.Context, workerID string) (*s3results.WorkerStopRequest, error)
	DeleteWorkerStop(ctx context.Context, workerID string) error
}

var (
	_ Queue = (*sqs.Client)(nil)
	_ Store = (*s3results.Store)(nil)
)

// SecretResolver turns a task's secret references into values when it
// starts (the secrets package).
type SecretResolver interface {
	ResolveAll(ctx context.Context, refs map[string]string) (map[string]string, error)
}
