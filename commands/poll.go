package commands

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/ops"
	"github.com/taskiq-go/taskiq-go/plan"
)

func pollCommand() *cli.Command {
	return &cli.Command{
		Name:      "poll",
		Usage:     "print the state of tasks",
		ArgsUsage: "ID... | --group GROUP",
		Description: "Prints one line per task: id, state, exit code and the worker that ran it. States:\n" +
			"queued, running, succeeded, failed, cancelled, timed_out, and lost (its worker stopped\n" +
			"heartbeating; it runs again once its lease runs out). With --wait it returns when every\n" +
			"task has ended, exiting 0 if all succeeded and 1 otherwise.",
		Flags: withConn(append(waitFlags("every task has ended"),
			&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "poll every task of `GROUP`"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per task"},
		)...),
		Action: func(cliContext *cli.Context) error {
			ids, group := cliContext.Args().Slice(), cliContext.String("group")
			if err := idsOrGroup("poll", ids, group); err != nil {
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
			var sts []plan.Status
			prog := newProgress(cliContext.App.ErrWriter, cliContext.Bool("wait"))
			poller := ops.NewPoller(be, ids)
			if group != "" {
				poller = ops.NewGroupPoller(be, group)
			}
			// While waiting one LIST per unfinished task is enough; the
			// statuses printed are read in full.
			poller.Peek = cliContext.Bool("wait")
			check := func(ctx context.Context) (bool, error) {
				sts, err = poller.Poll(ctx)
				if err != nil {
					return false, err // the last statuses read are kept
				}
				done := !cliContext.Bool("wait") || ops.AllFinal(sts)
				if !done {
					prog.show(summary(sts))
				}
				return done, nil
			}
			werr := ops.Wait(ctx, ops.WaitOptions{Timeout: cliContext.Duration("timeout"),
				Interval: cliContext.Duration("interval"), Ended: poller.Ended}, check)
			prog.clear()
			if poller.Peek && sts != nil && !ops.AllFinal(sts) {
				// Cut short: read the unfinished tasks in full for the print.
				poller.Peek = false
				if full, err := poller.Poll(context.WithoutCancel(ctx)); err == nil {
					sts = full
				}
			}
			if sts != nil {
				printStatuses(cliContext.App.Writer, sts, cliContext.Bool("json"))
			}
			if werr != nil {
				return werr
			}
			if cliContext.Bool("wait") {
				for _, st := range sts {
					if st.State != plan.StateSucceeded {
						return exitCode(ExitNotAllSucceeded)
					}
				}
			}
			return nil
		},
	}
}

// checkNames refuses ids and groups that cannot exist, before any call.
func checkNames(ids []string, group string) error {
	for _, id := range ids {
		if err := plan.ValidName(id); err != nil {
			return usagef("task id %v", err)
		}
	}
	if group != "" {
		if err := plan.ValidName(group); err != nil {
			return usagef("group %v", err)
		}
	}
	return nil
}

// openStore resolves settings and opens the backend for commands that only
// read and write the store.
func openStore(cliContext *cli.Context) (*Settings, *backend.Backend, error) {
	s, err := resolveSettings(cliContext)
	if err != nil {
		return nil, nil, err
	}
	if err := s.needBucket(); err != nil {
		return nil, nil, err
	}
	be, err := s.open(cliContext.Context, 0)
	if err != nil {
		return nil, nil, err
	}
	return s, be, nil
}

// summary counts tasks by state, in the order of a task's life: "3
// succeeded, 1 failed, 2 running, 4 queued (10 tasks)".
func summary(sts []plan.Status) string {
	counts := map[plan.State]int{}
	for _, st := range sts {
		counts[st.State]++
	}
	var parts []string
	for _, s := range []plan.State{plan.StateSucceeded, plan.StateFailed, plan.StateTimedOut, plan.StateCancelled,
		plan.StateRunning, plan.StateLost, plan.StateQueued} {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return fmt.Sprintf("%s (%d tasks)", strings.Join(parts, ", "), len(sts))
}

// progress is the live one-line summary of a wait, drawn on stderr only
// when stderr is a terminal: a pipe or a file gets nothing extra, and
// stdout only ever gets the results.
type progress struct {
	w  io.Writer
	on bool
	n  int // width of the line drawn, to clear it
}

// isTerminal is replaced in tests.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

func newProgress(w io.Writer, waiting bool) *progress {
	return &progress{w: w, on: waiting && isTerminal(w)}
}

func (p *progress) show(line string) {
	if !p.on {
		return
	}
	pad := max(p.n-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.n = len(line)
}

func (p *progress) clear() {
	if p.on && p.n > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.n))
		p.n = 0
	}
}

func printStatuses(w io.Writer, sts []plan.Status, asJSON bool) {
	if asJSON {
		for _, st := range sts {
			_ = writeJSON(w, st)
		}
		return
	}
	t := newTable(w, "ID", "STATE", "EXIT", "WORKER")
	for _, st := range sts {
		code := ""
		if st.ExitCode != nil {
			code = fmt.Sprint(*st.ExitCode)
		}
		t.row(st.ID, string(st.State), code, st.Worker.String())
	}
	t.flush()
}
