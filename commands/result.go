package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/plan"
)

func resultCommand() *cli.Command {
	return &cli.Command{
		Name:      "result",
		Usage:     "print a finished task's output and exit with its exit code",
		ArgsUsage: "ID",
		Description: "Writes the task's captured stdout to stdout and its stderr to stderr, byte for byte, and\n" +
			"exits with the task's own exit code (128+N when a signal N killed it, 124 when it timed\n" +
			"out without one, 130 when it was cancelled before it started), so that\n" +
			"`taskiq-go result --wait ID` behaves in a shell like the command itself. --json prints\n" +
			"the result record instead and exits 0.",
		Flags: withConn(append(waitFlags("the task has ended"),
			&cli.BoolFlag{Name: "json", Usage: "print the result record as JSON"},
		)...),
		Action: func(cliContext *cli.Context) error {
			if cliContext.NArg() != 1 {
				return usagef("result needs exactly one task id")
			}
			id := cliContext.Args().First()
			if err := checkNames([]string{id}, ""); err != nil {
				return err
			}
			_, be, err := openStore(cliContext)
			if err != nil {
				return err
			}
			ctx, _, stop := commandContext(cliContext)
			defer stop()
			var res *plan.Result
			check := func(ctx context.Context) (bool, error) {
				res, err = be.Store.GetResult(ctx, id)
				if errors.Is(err, plan.ErrNotFinished) && cliContext.Bool("wait") {
					return false, nil
				}
				return err == nil, err
			}
			if err := waitUntil(ctx, cliContext.Duration("timeout"), cliContext.Duration("interval"), check); err != nil {
				if errors.Is(err, plan.ErrNotFinished) {
					return fmt.Errorf("%w (use --wait to wait for it)", err)
				}
				return err
			}
			if cliContext.Bool("json") {
				return writeJSON(cliContext.App.Writer, res)
			}
			if err := copyOutput(ctx, be, res.Stdout, cliContext.App.Writer); err != nil {
				return err
			}
			if err := copyOutput(ctx, be, res.Stderr, cliContext.App.ErrWriter); err != nil {
				return err
			}
			if code := ResultExitCode(res); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}

// copyOutput writes one captured stream: inline data, or the log object.
func copyOutput(ctx context.Context, be *backend.Backend, o plan.Output, w io.Writer) error {
	if o.Key == "" {
		_, err := io.Copy(w, strings.NewReader(o.Data))
		return err
	}
	body, err := be.Store.OpenLog(ctx, o.Key)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = io.Copy(w, body)
	return err
}

// ResultExitCode is the code `result` exits with for a task: its own exit
// code when it ran, else one that says why it did not.
func ResultExitCode(r *plan.Result) int {
	if r.ExitCode != nil {
		return *r.ExitCode & 0xff
	}
	switch r.State {
	case plan.StateSucceeded:
		return 0
	case plan.StateTimedOut:
		return 124
	case plan.StateCancelled:
		return 130
	}
	return 125
}
