package commands

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/ops"
	"github.com/taskiq-go/taskiq-go/plan"
)

func submitCommand() *cli.Command {
	return &cli.Command{
		Name:      "submit",
		Usage:     "put a task on the queue and print its id",
		ArgsUsage: "[--] CMD [ARG...]",
		Description: "The command is executed directly by a worker, never through a shell. Put -- before it\n" +
			"so that its own flags are not read as taskiq-go's:\n\n" +
			"   taskiq-go submit --group run-42 --timeout 10m -- python -m mypkg.step --date 2026-11-29\n\n" +
			"--spec FILE (or - for stdin) reads one task as JSON instead, with the fields argv, env, dir,\n" +
			"timeout, max_attempts, queue, priority, group, labels and id (only argv is required);\n" +
			"flags given beside it override its fields. --batch FILE reads one such task per line and\n" +
			"sends them in batches. A task larger than the queue allows is carried through S3.\n" +
			"Submitting the same task again with the same --id does not create a second task; a\n" +
			"different task under an id already used is refused (exit 65) and nothing is sent. A batch\n" +
			"that fails part way prints the ids of the tasks sent and exits 73.",
		Flags: append(withConn(
			&cli.StringFlag{Name: "spec", Usage: "read the task as JSON from `FILE` (- for stdin)"},
			&cli.StringFlag{Name: "batch", Usage: "read tasks as JSON lines from `FILE` (- for stdin)"},
			&cli.StringFlag{Name: "id", Usage: "task `ID` (default: a new time-ordered UUID); resubmitting an id with the same task is a no-op"},
			&cli.StringFlag{Name: "queue", Aliases: []string{"q"}, Usage: "logical queue `NAME`", Value: ""},
			&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "`GROUP` to poll or cancel tasks together (e.g. a Dagster run id)"},
			&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "label `KEY=VALUE`, repeatable"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "environment variable `KEY=VALUE` for the command, repeatable"},
			&cli.StringSliceFlag{Name: "secret", Usage: "environment variable `NAME=REF` whose value the worker resolves at start from REF: env:VAR, ssm:/path or secretsmanager:ID (the value never travels), repeatable"},
			&cli.StringFlag{Name: "dir", Usage: "working `DIR` on the worker"},
			&cli.DurationFlag{Name: "timeout", Usage: "stop an attempt after `DURATION` (e.g. 90s, 1h); 0 = no limit"},
			&cli.IntFlag{Name: "max-attempts", DefaultText: "1", Usage: "run at most `N` times when it fails"},
			&cli.IntFlag{Name: "priority", Usage: "`N` from -1000 to 1000; higher runs first (levels: 0 to 10 each its own, above 10 as 10, one below 0)"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON object per task: id, queue, group, created"},
			&cli.BoolFlag{Name: "packs", EnvVars: []string{"TASKIQ_GO_PACKS"}, Usage: "send a level's ten or more tasks up to ten to a message (upgrade every worker first)"},
		), signingFlags()...),
		Action: func(cliContext *cli.Context) error {
			tasks, err := submitInput(cliContext)
			if err != nil {
				return err
			}
			s, err := resolveQueueAndBucket(cliContext)
			if err != nil {
				return err
			}
			signer, err := resolveSigningKey(cliContext)
			if err != nil {
				return err
			}
			be, err := s.open(cliContext.Context, 0)
			if err != nil {
				return err
			}
			out, err := ops.Submit(cliContext.Context, be, ops.SubmitOptions{Tasks: tasks, InboxURL: s.InboxURL, Now: time.Now(), Signer: signer, Packs: cliContext.Bool("packs")})
			for _, o := range out {
				if o.ID == "" {
					continue
				}
				if cliContext.Bool("json") {
					_ = writeJSON(cliContext.App.Writer, o)
				} else {
					fmt.Fprintln(cliContext.App.Writer, o.ID)
				}
			}
			return err
		},
	}
}

// submitInput builds the tasks from --spec, --batch or the arguments, with
// flags applied on top.
func submitInput(cliContext *cli.Context) ([]*plan.Task, error) {
	spec, batch := cliContext.String("spec"), cliContext.String("batch")
	args := cliContext.Args().Slice()
	var tasks []*plan.Task
	switch {
	case spec != "" && batch != "":
		return nil, usagef("--spec and --batch cannot be used together")
	case (spec != "" || batch != "") && len(args) > 0:
		return nil, usagef("give the command either after -- or in --spec/--batch, not both")
	case spec != "":
		data, err := readInput(cliContext, spec)
		if err != nil {
			return nil, err
		}
		t, err := plan.DecodeTask(bytes.TrimSpace(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", inputName(spec), err)
		}
		tasks = append(tasks, t)
	case batch != "":
		data, err := readInput(cliContext, batch)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 64<<20)
		for line := 1; sc.Scan(); line++ {
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			t, err := plan.DecodeTask(b)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", inputName(batch), line, err)
			}
			tasks = append(tasks, t)
		}
		if err := sc.Err(); err != nil {
			return nil, &inputError{fmt.Errorf("read %s: %w", inputName(batch), err)}
		}
		if len(tasks) == 0 {
			return nil, &plan.DecodeError{Err: fmt.Errorf("%s holds no task", inputName(batch))}
		}
		if cliContext.IsSet("id") {
			return nil, usagef("--id names one task; with --batch put ids in the lines")
		}
	default:
		if len(args) == 0 {
			return nil, usagef("submit needs a command: taskiq-go submit [flags] -- CMD [ARG...] (or --spec FILE)")
		}
		t := &plan.Task{Argv: args}
		t.Normalize()
		tasks = append(tasks, t)
	}
	for _, t := range tasks {
		if err := applySubmitFlags(cliContext, t); err != nil {
			return nil, err
		}
		if err := t.Validate(); err != nil {
			return nil, flagBlame(cliContext, err)
		}
	}
	return tasks, nil
}

// flagFields names the flag that sets each task field.
var flagFields = map[string]string{
	"id": "id", "queue": "queue", "group": "group", "dir": "dir", "timeout": "timeout",
	"max_attempts": "max-attempts", "priority": "priority", "env": "env", "labels": "label", "secrets": "secret",
}

// flagBlame turns a validation error about a field that a flag set into a
// usage error naming the flag: the mistake is in the command line, not in a
// task document.
func flagBlame(cliContext *cli.Context, err error) error {
	var ve *plan.ValidationError
	if errors.As(err, &ve) {
		if flag, ok := flagFields[ve.Field]; ok && cliContext.IsSet(flag) {
			return usagef("--%s %s", flag, ve.Reason)
		}
	}
	return err
}

func inputName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

func readInput(cliContext *cli.Context, name string) ([]byte, error) {
	if name == "-" {
		data, err := io.ReadAll(cliContext.App.Reader)
		if err != nil {
			return nil, &inputError{fmt.Errorf("read stdin: %w", err)}
		}
		return data, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, &inputError{fmt.Errorf("cannot read %s: %w", name, errors.Unwrap(err))}
	}
	return data, nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func keyValues(flag string, items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q is not KEY=VALUE", flag, it)
		}
		if (flag == "env" || flag == "secret") && !envName.MatchString(k) {
			return nil, usagef("--%s %q: %q is not a variable name (letters, digits and _, not starting with a digit)", flag, it, k)
		}
		m[k] = v
	}
	return m, nil
}

func applySubmitFlags(cliContext *cli.Context, t *plan.Task) error {
	set := cliContext.IsSet
	if set("id") {
		t.ID = cliContext.String("id")
		if t.ID == "" {
			// An unset variable in a script must not silently turn an
			// idempotent submit into a new task.
			return usagef("--id is empty (leave it out for a new id)")
		}
	}
	if set("queue") {
		t.Queue = cliContext.String("queue")
	}
	if set("group") {
		t.Group = cliContext.String("group")
		if t.Group == "" {
			// As with --id: an unset variable must not drop the task
			// out of the group its caller polls and cancels.
			return usagef("--group is empty (leave it out for no group)")
		}
	}
	if set("dir") {
		t.Dir = cliContext.String("dir")
		if t.Dir == "" {
			return usagef("--dir is empty (leave it out for the worker's own directory)")
		}
	}
	if set("timeout") {
		t.Timeout = plan.Duration(cliContext.Duration("timeout"))
	}
	if set("max-attempts") {
		t.MaxAttempts = cliContext.Int("max-attempts")
	}
	if set("priority") {
		t.Priority = cliContext.Int("priority")
	}
	labels, err := keyValues("label", cliContext.StringSlice("label"))
	if err != nil {
		return err
	}
	env, err := keyValues("env", cliContext.StringSlice("env"))
	if err != nil {
		return err
	}
	secrets, err := keyValues("secret", cliContext.StringSlice("secret"))
	if err != nil {
		return err
	}
	t.Labels = merge(t.Labels, labels)
	t.Env = merge(t.Env, env)
	t.Secrets = merge(t.Secrets, secrets)
	return nil
}

func merge(a, b map[string]string) map[string]string {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = make(map[string]string, len(b))
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}
