package commands

import (
	"fmt"
	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/ops"
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
			res, err := ops.Result(ctx, be, ops.ResultOptions{ID: id, Wait: cliContext.Bool("wait"),
				WaitOptions: ops.WaitOptions{Timeout: cliContext.Duration("timeout"), Interval: cliContext.Duration("interval")}})
			if err != nil {
				return err
			}
			if cliContext.Bool("json") {
				return writeJSON(cliContext.App.Writer, res)
			}
			if err := ops.CopyOutput(ctx, be, res.Stdout, cliContext.App.Writer); err != nil {
				return err
			}
			if err := ops.CopyOutput(ctx, be, res.Stderr, cliContext.App.ErrWriter); err != nil {
				return err
			}
			if res.State == plan.StateFailed && res.Error != "" && res.Stdout.Size == 0 && res.Stderr.Size == 0 {
				// The command never ran (not found, not allowed, a
				// secret that did not resolve): say why, as a shell would.
				fmt.Fprintf(cliContext.App.ErrWriter, "taskiq-go: task %s: %s\n", res.ID, res.Error)
			}
			if code := ops.ResultExitCode(res); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
}

// ResultExitCode is the code `result` exits with for a task (ops.ResultExitCode).
func ResultExitCode(r *plan.Result) int { return ops.ResultExitCode(r) }
