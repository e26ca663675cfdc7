package commands

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/ops"
	"github.com/taskiq-go/taskiq-go/plan"
)

// defaultTasksLimit is how many tasks `tasks` lists unless told.
const defaultTasksLimit = 50

// taskStates are the states --state takes.
var taskStates = []plan.State{plan.StateQueued, plan.StateRunning, plan.StateSucceeded, plan.StateFailed,
	plan.StateCancelled, plan.StateTimedOut, plan.StateLost, plan.StateDeadLetter}

func tasksCommand() *cli.Command {
	return &cli.Command{
		Name:  "tasks",
		Usage: "list recent tasks, newest first",
		Description: "Lists the tasks submitted to the bucket, newest first, with their state, exit code, group,\n" +
			"queue, submit time and labels. Each submit call records its tasks in a small index in the\n" +
			"bucket (one object per hundred tasks), so a listing is a LIST of that index and a few reads,\n" +
			"not a scan of every task. --group, --label and --since filter on the index; --state filters\n" +
			"on the states read, which may read more tasks than --limit. Tasks submitted by a version\n" +
			"without the index, and tasks whose records expired, are not listed.\n\n" +
			"   taskiq-go tasks                              # the last 50\n" +
			"   taskiq-go tasks --state failed --since 24h\n" +
			"   taskiq-go tasks --group run-42 --label team=data --json",
		Flags: withConn(
			&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "only tasks of `GROUP`"},
			&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "only tasks with label `KEY=VALUE`, repeatable (all must match)"},
			&cli.StringFlag{Name: "state", Usage: "only tasks in `STATE`: " + strings.Join(stateNames(), ", ")},
			&cli.DurationFlag{Name: "since", DefaultText: "no limit", Usage: "only tasks submitted in the last `DURATION` (such as 30m or 24h)"},
			&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: defaultTasksLimit, Usage: "list at most `N` tasks"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per task"},
		),
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("tasks takes no arguments (did you mean --group?)")
			}
			o := ops.TasksOptions{Group: cliContext.String("group"), Limit: cliContext.Int("limit"), Now: time.Now()}
			if cliContext.IsSet("group") && o.Group == "" {
				return usagef("--group is empty")
			}
			if err := checkNames(nil, o.Group); err != nil {
				return err
			}
			if o.Limit < 1 {
				return usagef("--limit must be 1 or more, not %d", o.Limit)
			}
			if st := cliContext.String("state"); st != "" || cliContext.IsSet("state") {
				if !slices.Contains(taskStates, plan.State(st)) {
					return usagef("--state must be one of %s, not %q", strings.Join(stateNames(), ", "), st)
				}
				o.State = plan.State(st)
			}
			if cliContext.IsSet("since") {
				d := cliContext.Duration("since")
				if d <= 0 {
					return usagef("--since must be a positive duration such as 30m or 24h, not %s", d)
				}
				o.Since = o.Now.Add(-d)
			}
			labels, err := keyValues("label", cliContext.StringSlice("label"))
			if err != nil {
				return err
			}
			o.Labels = labels
			_, be, err := openStore(cliContext)
			if err != nil {
				return err
			}
			ctx, _, stop := commandContext(cliContext)
			defer stop()
			rows, err := ops.Tasks(ctx, be, o)
			printTasks(cliContext, rows)
			return err
		},
	}
}

func stateNames() []string {
	out := make([]string, len(taskStates))
	for i, s := range taskStates {
		out[i] = string(s)
	}
	return out
}

// printTasks prints the history as a table or as JSON lines.
func printTasks(cliContext *cli.Context, rows []ops.TaskRow) {
	w := cliContext.App.Writer
	if cliContext.Bool("json") {
		for _, r := range rows {
			_ = writeJSON(w, r)
		}
		return
	}
	t := newTable(w, "ID", "STATE", "EXIT", "GROUP", "QUEUE", "SUBMITTED", "LABELS")
	for _, r := range rows {
		code := ""
		if r.ExitCode != nil {
			code = fmt.Sprint(*r.ExitCode)
		}
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
			labels = append(labels, k+"="+r.Labels[k])
		}
		t.row(r.ID, string(r.State), code, r.Group, r.Queue, r.SubmittedAt.UTC().Format(time.RFC3339), strings.Join(labels, ","))
	}
	t.flush()
}
