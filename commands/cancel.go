package commands

import (
	"context"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/ops"
)

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "stop tasks, queued or running",
		ArgsUsage: "ID... | --group GROUP",
		Description: "A queued task is marked cancelled at once and never starts. A running one is stopped by\n" +
			"its worker within a heartbeat (a few seconds): its whole process group gets SIGTERM, then\n" +
			"SIGKILL after the worker's --kill-grace. Both end in the state cancelled. Prints one line\n" +
			"per task: id and what happened (cancelled, cancelling, or already <state>).",
		Flags: withConn(append(waitFlags("every cancelled task has stopped"),
			&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "cancel every task of `GROUP`"},
			&cli.StringFlag{Name: "reason", Usage: "`TEXT` kept with the cancel request"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per task"},
		)...),
		Action: func(cliContext *cli.Context) error {
			ids, group := cliContext.Args().Slice(), cliContext.String("group")
			if err := idsOrGroup("cancel", ids, group); err != nil {
				return err
			}
			if err := checkNames(ids, group); err != nil {
				return err
			}
			_, be, err := openStore(cliContext)
			if err != nil {
				return err
			}
			ctx, _, stop := commandContext(cliContext)
			defer stop()
			out, ids, err := ops.Cancel(ctx, be, ops.CancelOptions{IDs: ids, Group: group, Reason: cliContext.String("reason")}, time.Now())
			if cliContext.Bool("json") {
				for _, c := range out {
					_ = writeJSON(cliContext.App.Writer, c)
				}
			} else {
				t := newTable(cliContext.App.Writer, "ID", "OUTCOME")
				for _, c := range out {
					t.row(c.ID, c.Outcome)
				}
				t.flush()
			}
			if err != nil || !cliContext.Bool("wait") {
				return err
			}
			p := ops.NewPoller(be, ids)
			p.Peek, p.Group = true, group
			return waitUntil(ctx, cliContext.Duration("timeout"), cliContext.Duration("interval"), func(ctx context.Context) (bool, error) {
				sts, err := p.Poll(ctx)
				return err == nil && ops.AllFinal(sts), err
			})
		},
	}
}
