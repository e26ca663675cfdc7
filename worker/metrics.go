package worker

import (
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// Metrics receives what a worker does, for monitoring. The worker calls it
// from many goroutines; implementations must be safe for that.
type Metrics interface {
	// TaskStarted: a command was started.
	TaskStarted(queue string)
	// TaskEnded: an attempt ended in state after running for took.
	TaskEnded(queue string, state plan.State, took time.Duration)
	// Received: one receive call returned n messages after took.
	Received(queue string, n int, took time.Duration)
	// BackendError: a call to "sqs" or "s3" failed.
	BackendError(service, op string)
}

type noMetrics struct{}

func (noMetrics) TaskStarted(string)                          {}
func (noMetrics) TaskEnded(string, plan.State, time.Duration) {}
func (noMetrics) Received(string, int, time.Duration)         {}
func (noMetrics) BackendError(string, string)                 {}
