package commands

import (
	"context"
	"time"

	"github.com/urfave/cli/v2"
)

// waitFlags are the flags of commands that can wait for tasks to end.
func waitFlags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "wait", Aliases: []string{"w"}, Usage: "wait until " + what},
		&cli.DurationFlag{Name: "timeout", Usage: "with --wait, give up after `DURATION` (exit 75); 0 waits for ever"},
		&cli.DurationFlag{Name: "interval", Value: 500 * time.Millisecond, Usage: "with --wait, check every `DURATION`"},
	}
}

// waitUntil calls check until it reports done, the timeout passes
// (errWaitTimeout) or ctx is cancelled (errInterrupted). The interval grows
// slowly up to 5 s so that long waits do not hammer the store. A check runs
// on a context that ends with the timeout, so that a slow one (the SDK
// retrying through an outage) cannot carry the wait past it.
func waitUntil(ctx context.Context, timeout, interval time.Duration, check func(context.Context) (bool, error)) error {
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	var deadline <-chan time.Time
	checkCtx := ctx
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
		var cancel context.CancelFunc
		checkCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for {
		done, err := check(checkCtx)
		if err != nil {
			if ctx.Err() != nil {
				return errInterrupted
			}
			if checkCtx.Err() != nil {
				return errWaitTimeout
			}
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return errInterrupted
		case <-deadline:
			return errWaitTimeout
		case <-time.After(interval):
		}
		interval = min(interval*5/4, 5*time.Second)
	}
}
