package commands

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/ops"
)

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a task's output, also while it runs",
		ArgsUsage: "ID",
		Description: "Writes the stdout of the task's latest attempt (or of --attempt N) to stdout and its stderr\n" +
			"to stderr. A finished attempt's output comes from its record, whole; a running one's from the\n" +
			"tail its worker stores at each heartbeat when there is new output (the last 64 KiB of each\n" +
			"stream, secrets masked), so it lags by up to one heartbeat. With -f it keeps printing what\n" +
			"is new until the task has ended (through its retries), then the rest from the final result,\n" +
			"and exits 0 whatever the task's exit code: `taskiq-go result` gives that. Notes (an attempt\n" +
			"that starts, output a follower missed) go to stderr prefixed with taskiq-go:.\n\n" +
			"   taskiq-go logs \"$id\"\n" +
			"   taskiq-go logs -f \"$id\" && taskiq-go result --json \"$id\"\n" +
			"   taskiq-go logs --attempt 1 \"$id\"           # the first attempt of a retried task",
		Flags: withConn(
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing until the task has ended"},
			&cli.IntFlag{Name: "attempt", DefaultText: "the latest", Usage: "print attempt `N`"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "with -f, read every `DURATION`"},
		),
		Action: func(cliContext *cli.Context) error {
			if cliContext.NArg() != 1 {
				return usagef("logs needs exactly one task id")
			}
			id := cliContext.Args().First()
			if err := checkNames([]string{id}, ""); err != nil {
				return err
			}
			n := cliContext.Int("attempt")
			if cliContext.IsSet("attempt") && n < 1 {
				return usagef("--attempt must be 1 or more, not %d", n)
			}
			if d := cliContext.Duration("interval"); d <= 0 {
				return usagef("--interval must be a positive duration such as 1s, not %s", d)
			}
			_, be, err := openStore(cliContext)
			if err != nil {
				return err
			}
			ctx, _, stop := commandContext(cliContext)
			defer stop()
			errw := cliContext.App.ErrWriter
			return ops.Logs(ctx, be, ops.LogsOptions{ID: id, Attempt: n, Follow: cliContext.Bool("follow"),
				Interval: cliContext.Duration("interval"), Stdout: cliContext.App.Writer, Stderr: errw,
				Note: func(msg string) { fmt.Fprintf(errw, "taskiq-go: %s\n", msg) }})
		},
	}
}
