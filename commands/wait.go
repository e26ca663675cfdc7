package commands

import (
	"context"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/ops"
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
// (errWaitTimeout) or ctx is cancelled (errInterrupted): ops.Wait.
func waitUntil(ctx context.Context, timeout, interval time.Duration, check func(context.Context) (bool, error)) error {
	return ops.Wait(ctx, ops.WaitOptions{Timeout: timeout, Interval: interval}, check)
}
