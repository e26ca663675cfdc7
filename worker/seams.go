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

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Queue is the part of the SQS client the worker uses.
type Queue interface {
	Receive(ctx context.Context, queueURL string, max int, wait, visibility time.Duration) ([]sqs.Message, error)
	SetVisibility(ctx context.Context, queueURL, receipt string, d time.Duration) error
	DeleteBatch(ctx context.Context, queueURL string, receipts []string) ([]error, error)
	Send(ctx context.Context, queueURL string, e sqs.Entry) (string, error)
}

// Store is the part of the S3 store the worker uses.
type Store interface {
	GetTask(ctx context.Context, id string) (*plan.Task, error)
	Snapshot(ctx context.Context, id string) (*s3results.Snapshot, error)
	Claim(ctx context.Context, r *plan.Running) error
	Unclaim(ctx context.Context, id string, attempt int) error
	PutRunning(ctx context.Context, r *plan.Running) error
	DeleteRunning(ctx context.Context, id string) error
	CancelRequested(ctx context.Context, id string) (bool, error)
	PutResult(ctx context.Context, r *plan.Result) error
	PutAttempt(ctx context.Context, r *plan.Result) error
	PutLog(ctx context.Context, id string, attempt int, stream string, body io.ReadSeeker, size int64) (string, error)
	PutWorker(ctx context.Context, workerID string, v any) error
	DeleteWorker(ctx context.Context, workerID string) error
	WorkerStop(ctx context.Context, workerID string) (*s3results.WorkerStopRequest, error)
	DeleteWorkerStop(ctx context.Context, workerID string) error
}

var (
	_ Queue = (*sqs.Client)(nil)
	_ Store = (*s3results.Store)(nil)
)
