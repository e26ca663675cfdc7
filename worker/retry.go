package worker

import (
	"math/rand/v2"
	"time"
)

// MaxBackoff caps the delay before a failed task runs again.
const MaxBackoff = 10 * time.Minute

// Backoff is how long a task that failed its attempt-th attempt waits before
// the next: attempt^4 seconds plus up to 10% jitter, capped at MaxBackoff
// (the habit of Sidekiq, asynq and river), so that a failing dependency is
// not hammered and retries of many tasks spread out.
func Backoff(attempt int, jitter func() float64) time.Duration {
	if jitter == nil {
		jitter = rand.Float64
	}
	if attempt < 1 {
		attempt = 1
	}
	base := time.Duration(attempt*attempt*attempt*attempt) * time.Second
	if base > MaxBackoff || attempt > 30 {
		base = MaxBackoff
	}
	d := base + time.Duration(jitter()*0.1*float64(base))
	if d > MaxBackoff {
		d = MaxBackoff
	}
	return d
}
