package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/sqs"
)

// deleteQueue is a Queue whose DeleteBatch answers from a script and
// counts its calls; the other methods are not used by the acknowledger.
type deleteQueue struct {
	Queue
	mu     sync.Mutex
	calls  int
	answer func(receipt string) error
}

func (q *deleteQueue) DeleteBatch(_ context.Context, _ string, receipts []string) ([]error, error) {
	q.mu.Lock()
	q.calls++
	q.mu.Unlock()
	errs := make([]error, len(receipts))
	for i, r := range receipts {
		errs[i] = q.answer(r)
	}
	return errs, nil
}

// A receipt that SQS refuses for good is not retried: the flush ends after
// one call, where a transient failure is retried until it succeeds.
func TestAckerDoesNotRetryPermanentErrors(t *testing.T) {
	failures := 0
	q := &deleteQueue{answer: func(r string) error {
		switch r {
		case "stale":
			return sqs.ErrPermanent
		case "flaky":
			if failures < 1 {
				failures++
				return errors.New("InternalError")
			}
		}
		return nil
	}}
	a := newAcker(q, zerolog.Nop())
	start := time.Now()
	a.ack("q", "stale")
	a.close()
	if q.calls != 1 {
		t.Fatalf("stale receipt: %d delete calls, want 1", q.calls)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stale receipt: flush took %s", d)
	}
	q.calls = 0
	a = newAcker(q, zerolog.Nop())
	a.ack("q", "flaky")
	a.close()
	if q.calls != 2 {
		t.Fatalf("flaky receipt: %d delete calls, want 2", q.calls)
	}
}
