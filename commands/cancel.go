package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/plan"
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
			if (len(ids) == 0) == (group == "") {
				return usagef("cancel needs task ids or --group, not both")
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
			if ids, err = taskIDs(ctx, be, ids, group); err != nil {
				return err
			}
			out, err := Cancel(ctx, be, ids, cliContext.String("reason"), time.Now())
			for _, c := range out {
				if cliContext.Bool("json") {
					_ = writeJSON(cliContext.App.Writer, c)
				} else {
					fmt.Fprintf(cliContext.App.Writer, "%s\t%s\n", c.ID, c.Outcome)
				}
			}
			if err != nil || !cliContext.Bool("wait") {
				return err
			}
			return waitUntil(ctx, cliContext.Duration("timeout"), cliContext.Duration("interval"), func(ctx context.Context) (bool, error) {
				sts, err := Poll(ctx, be, ids, "")
				return err == nil && allFinal(sts), err
			})
		},
	}
}

// Cancelled is what cancel reports for one task.
type Cancelled struct {
	ID string `json:"id"`
	// Outcome is "cancelled" (it will never start), "cancelling" (its
	// worker will stop it) or "already STATE" (it had ended).
	Outcome string     `json:"outcome"`
	State   plan.State `json:"state"`
}

// Cancel asks for tasks to be stopped. The cancel marker is written first
// and the task's state read after it; the worker writes its claim first and
// reads the marker after it, so one of the two always sees the other and a
// queued task never starts.
func Cancel(ctx context.Context, be *backend.Backend, ids []string, reason string, now time.Time) ([]Cancelled, error) {
	var out []Cancelled
	for _, id := range ids {
		snap, err := be.Store.Snapshot(ctx, id)
		if err != nil {
			return out, err
		}
		if snap.Result != nil {
			out = append(out, Cancelled{ID: id, Outcome: "already " + string(snap.Result.State), State: snap.Result.State})
			continue
		}
		if err := be.Store.PutCancel(ctx, &plan.Cancel{V: plan.Version, ID: id, RequestedAt: now.UTC(), Reason: reason}); err != nil {
			return out, err
		}
		if snap, err = be.Store.Snapshot(ctx, id); err != nil {
			return out, err
		}
		switch {
		case snap.Result != nil:
			out = append(out, Cancelled{ID: id, Outcome: "already " + string(snap.Result.State), State: snap.Result.State})
		case snap.Running != nil:
			out = append(out, Cancelled{ID: id, Outcome: "cancelling", State: plan.StateRunning})
		default:
			why := "cancelled before it started"
			if reason != "" {
				why += ": " + reason
			}
			res := &plan.Result{V: plan.Version, ID: id, State: plan.StateCancelled, Attempt: snap.LastClaim,
				Error: why, FinishedAt: now.UTC()}
			if t, err := be.Store.GetTask(ctx, id); err == nil {
				res.Group, res.Queue, res.Labels, res.SubmittedAt = t.Group, t.Queue, t.Labels, t.SubmittedAt
			}
			err := be.Store.PutResult(ctx, res)
			if errors.Is(err, plan.ErrExists) {
				if r, gerr := be.Store.GetResult(ctx, id); gerr == nil {
					out = append(out, Cancelled{ID: id, Outcome: "already " + string(r.State), State: r.State})
					continue
				}
			}
			if err != nil {
				return out, err
			}
			out = append(out, Cancelled{ID: id, Outcome: "cancelled", State: plan.StateCancelled})
		}
	}
	return out, nil
}
