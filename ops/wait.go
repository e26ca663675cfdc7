package ops

import (
	"context"
	"errors"
	"time"
)

// ErrWaitTimeout is returned when a wait runs out of time.
var ErrWaitTimeout = errors.New("timed out waiting")

// ErrInterrupted is returned when a wait is interrupted.
var ErrInterrupted = errors.New("interrupted")

// WaitOptions bound a wait.
type WaitOptions struct {
	// Timeout gives up after that long (0: never).
	Timeout time.Duration
	// Interval is the first pause between checks (default 500 ms); it grows
	// slowly up to 5 s so that long waits do not hammer the store.
	Interval time.Duration
	// Ended, when set, counts the tasks the wait has seen end so far. A
	// check that saw more end than the one before starts the pauses again
	// from Interval: tasks are ending now, and the last of them is seen
	// within an Interval of its end, not up to 5 s later. A round costs a
	// request per task that ended since the last plus two (Poller.Round),
	// so the short pauses cost little while tasks end, and grow again
	// once they stop.
	Ended func() int
	// after is time.After, which tests replace to see the pauses.
	after func(time.Duration) <-chan time.Time
}

// Wait calls check until it reports done, the timeout passes
// (ErrWaitTimeout) or ctx is cancelled (ErrInterrupted). A check runs on a
// context that ends with the timeout, so that a slow one (the SDK retrying
// through an outage) cannot carry the wait past it.
func Wait(ctx context.Context, o WaitOptions, check func(context.Context) (bool, error)) error {
	interval := o.Interval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	var deadline <-chan time.Time
	checkCtx := ctx
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		deadline = t.C
		var cancel context.CancelFunc
		checkCtx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	after := o.after
	if after == nil {
		after = time.After
	}
	first, ended := interval, 0
	if o.Ended != nil {
		ended = o.Ended()
	}
	for {
		done, err := check(checkCtx)
		if err != nil {
			if ctx.Err() != nil {
				return ErrInterrupted
			}
			if checkCtx.Err() != nil {
				return ErrWaitTimeout
			}
			return err
		}
		if done {
			return nil
		}
		if o.Ended != nil {
			if n := o.Ended(); n > ended {
				interval, ended = first, n
			}
		}
		select {
		case <-ctx.Done():
			return ErrInterrupted
		case <-deadline:
			return ErrWaitTimeout
		case <-after(interval):
		}
		interval = min(interval*5/4, 5*time.Second)
	}
}
