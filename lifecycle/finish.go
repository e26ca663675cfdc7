package lifecycle

import (
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// Lease is an attempt's hold on its message, as its own worker knows it:
// the time its last successful extension runs out. Go's clock readings
// carry the monotonic clock, so a worker that was frozen (SIGSTOP, a long
// pause) and wakes past that time sees its lease as gone, whatever the wall
// clock did meanwhile.
type Lease struct {
	// Until is when the lease runs out unless extended again.
	Until time.Time
	// Margin is kept in hand before Until: a write started with less than
	// that left may land after another worker took over.
	Margin time.Duration
}

// Held reports whether the attempt may still act as the live one at now.
func (l Lease) Held(now time.Time) bool {
	return now.Before(l.Until.Add(-l.Margin))
}

// Ending is what an attempt that ran must record.
type Ending int

const (
	// Final: store the attempt's record when there were earlier attempts,
	// then the final result, and only then acknowledge the message.
	Final Ending = iota
	// Retry: store the attempt's record, remove its running marker and
	// make the message visible again after a backoff.
	Retry
	// Stale: the attempt's lease ran out before it ended. It stores its
	// own attempt record only: no final result, no message deletion, no
	// visibility change; another attempt may be live by now.
	Stale
)

// End decides how an attempt that ran ends. held is whether its lease was
// still held when it ended.
func End(res *plan.Result, t *plan.Task, held bool) Ending {
	switch {
	case !held:
		return Stale
	case (res.State == plan.StateFailed || res.State == plan.StateTimedOut) && res.Attempt < t.MaxAttempts:
		return Retry
	}
	return Final
}
