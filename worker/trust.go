package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/forkclient"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// BaseEnv names the variables of the worker's own environment that every
// task gets: what a command needs to find programs, write temporary files
// and format text, and nothing that grants access. The worker's AWS
// credentials and taskiq-go's own settings reach a task only when named
// with --pass-env.
var BaseEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TERM"}

// TaskEnviron builds a task's environment: the BaseEnv variables and those
// matching a pass pattern (a name or a path.Match glob such as DAGSTER_*)
// from the worker's environment, then the task's own variables over them.
// It is sorted so that a task's environment does not depend on map order.
func TaskEnviron(workerEnv []string, pass []string, taskEnv map[string]string) []string {
	keep := map[string]string{}
	for _, kv := range workerEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if matchAny(k, BaseEnv) || matchAny(k, pass) {
			keep[k] = v
		}
	}
	for k, v := range taskEnv {
		keep[k] = v
	}
	out := make([]string, 0, len(keep))
	for k, v := range keep {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func matchAny(name string, patterns []string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// SteeringEnv names the variables a task may not set on a worker with an
// allowlist: they change which code an allowed command runs, so that an
// allowlist would allow anything. The dynamic loader's (LD_PRELOAD,
// LD_LIBRARY_PATH and the rest; DYLD_* on macOS) load a library of the
// task's choosing into any dynamically linked program, and the Dagster step
// client's own two pick the interpreter of a cold start and the fork server
// it hands the step to (worker start sets both on the worker).
var SteeringEnv = []string{"LD_*", "DYLD_*", forkclient.PythonEnv, forkclient.SocketEnv}

// CheckEnvAllowed refuses a task whose own variables or secrets set one of
// SteeringEnv. The worker checks it when it has an allowlist; without one
// every command may run anyway.
func CheckEnvAllowed(env, secrets map[string]string) error {
	var names []string
	for k := range env {
		names = append(names, k)
	}
	for k := range secrets {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if matchAny(k, SteeringEnv) {
			return fmt.Errorf("variable %s is not allowed on this worker: it changes what an allowed command runs", k)
		}
	}
	return nil
}

// ErrNotAllowed is returned for a command that the worker's allowlist does
// not name.
type ErrNotAllowed struct{ Command string }

func (e *ErrNotAllowed) Error() string {
	return fmt.Sprintf("command %s is not allowed on this worker", e.Command)
}

// CheckAllowed reports whether argv0 may run under the allowlist patterns
// (--allow): a pattern matches the command's name (its last path element),
// the command as written, or the path it resolves to in the task's PATH,
// as a path.Match glob. An empty allowlist allows every command. Resolving
// the path catches a task that names an allowed program's name in a
// directory of its own choosing: "/tmp/x/python" has the name "python", so
// a pattern that names a program must be a path (/usr/bin/python*) to rule
// that out; a name pattern is for fleets that trust their PATH.
//
// A command named by the Dagster step client's name (forkclient.Name) that
// resolves to a stand-in, the link that `dagster-taskiq worker start` puts
// in a directory first on the worker's PATH so that steps start through
// taskiq-go's native client, is matched as the command it shadows too: the
// next one of that name on the worker's PATH, the Python client it stands
// in for. A pattern naming that client's exact path then allows its steps
// with either client. See Allowlist.
func CheckAllowed(argv0 string, patterns []string, lookPath func(string) (string, error)) error {
	return Allowlist{Patterns: patterns, LookPath: lookPath, Path: os.Getenv("PATH"), StepClients: stepClients}.Check(argv0)
}

// Allowlist is the worker's --allow patterns with how it resolves a
// command; CheckAllowed uses the worker's own. Its fields are what a test
// sets to check the rule without the worker's PATH and binary.
type Allowlist struct {
	// Patterns are the --allow patterns; none allows every command.
	Patterns []string
	// LookPath resolves a command as the worker will start it
	// (exec.LookPath when nil).
	LookPath func(string) (string, error)
	// Path is the worker's search path, which a stand-in shadows.
	Path string
	// StepClients returns the real paths of the native step clients a
	// stand-in may link to: this binary and the taskiq-go-step beside it.
	// Nil: no command is a stand-in.
	StepClients func() []string
}

// Check reports whether argv0 may run (see CheckAllowed).
func (a Allowlist) Check(argv0 string) error {
	if len(a.Patterns) == 0 {
		return nil
	}
	candidates := []string{argv0, filepath.Base(argv0)}
	lookPath := a.LookPath
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	if p, err := lookPath(argv0); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, real)
			if shadowed := a.shadowed(argv0, p, real); shadowed != "" {
				candidates = append(candidates, shadowed)
			}
		}
		candidates = append(candidates, p)
	}
	for _, pat := range a.Patterns {
		isPath := strings.Contains(pat, "/")
		for _, c := range candidates {
			if isPath != strings.Contains(c, "/") {
				continue
			}
			if ok, _ := path.Match(pat, c); ok {
				return nil
			}
		}
	}
	return &ErrNotAllowed{Command: argv0}
}

// shadowed is the command that the stand-in found at p (real: where its
// links lead) hides: the next argv0 on the search path after p's
// directory. "" when argv0 is not the step client's bare name, when p is
// not a link to a native step client, or when nothing is hidden.
func (a Allowlist) shadowed(argv0, p, real string) string {
	if argv0 != forkclient.Name || a.StepClients == nil || real == p {
		return ""
	}
	if !slices.Contains(a.StepClients(), real) {
		return ""
	}
	past := false
	for _, dir := range filepath.SplitList(a.Path) {
		if !filepath.IsAbs(dir) {
			continue // exec.LookPath refuses a command found relative to "." too
		}
		candidate := filepath.Join(dir, argv0)
		if !past {
			past = candidate == p
			continue
		}
		if found, err := exec.LookPath(candidate); err == nil {
			return found
		}
	}
	return ""
}

// stepClients returns the real paths of this binary and of the small
// native step client (cmd/taskiq-go-step) installed beside it.
func stepClients() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range []string{exe, filepath.Join(filepath.Dir(exe), StepClientBinary)} {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			out = append(out, real)
		}
	}
	return out
}

// StepClientBinary is the name of the native step client alone
// (cmd/taskiq-go-step), installed beside taskiq-go.
const StepClientBinary = "taskiq-go-step"

// verify applies the worker's signature rule to a decoded task: nil when
// the worker verifies nothing or the signature holds. A task that fails
// is never run; the caller moves its message to the dead-letter queue.
func (w *Worker) verify(t *plan.Task) error {
	if w.cfg.Verifier == nil {
		return nil
	}
	if err := w.cfg.Verifier.Verify(t); err != nil {
		return fmt.Errorf("refused: %w", err)
	}
	return nil
}

// startEnv checks the allowlist and builds the environment a task starts
// with, its secrets resolved; it also returns the secret values, to be
// masked in the stored output. The error is the task's failure reason; it
// names a secret's reference but never a value.
func (w *Worker) startEnv(ctx context.Context, t *plan.Task) ([]string, []string, error) {
	look := func(name string) (string, error) {
		if strings.Contains(name, "/") && !filepath.IsAbs(name) && t.Dir != "" {
			name = filepath.Join(t.Dir, name)
		}
		return exec.LookPath(name)
	}
	if err := CheckAllowed(t.Argv[0], w.cfg.Allow, look); err != nil {
		return nil, nil, err
	}
	if len(w.cfg.Allow) > 0 {
		if err := CheckEnvAllowed(t.Env, t.Secrets); err != nil {
			return nil, nil, err
		}
	}
	env := t.Env
	var masks []string
	if len(t.Secrets) > 0 {
		if w.cfg.Secrets == nil {
			return nil, nil, errors.New("the task has secrets and this worker cannot resolve them")
		}
		vals, err := w.cfg.Secrets.ResolveAll(ctx, t.Secrets)
		if err != nil {
			return nil, nil, err
		}
		env = maps.Clone(t.Env)
		if env == nil {
			env = map[string]string{}
		}
		for k, v := range vals {
			env[k] = v
			masks = append(masks, v)
		}
	}
	return TaskEnviron(os.Environ(), w.cfg.PassEnv, env), masks, nil
}

// recordRefusal stores why the task's message is refused, so that poll
// says dead_letter instead of queued, but only for the task the message
// really is: when the stored record is another task (a forged message
// reusing a queued task's id), nothing is written, so that a forger cannot
// change what poll says of somebody else's task.
func (w *Worker) recordRefusal(ctx context.Context, log zerolog.Logger, t *plan.Task, reason error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	prev, err := w.store.GetTask(cctx, t.ID)
	switch {
	case errors.Is(err, plan.ErrTaskNotFound):
	case err != nil:
		log.Warn().Err(err).Msg("cannot read the refused task's record; its state is not updated")
		return
	case !lifecycle.Same(prev, t):
		log.Warn().Msg("refused message differs from the stored task of that id; the stored task is left alone")
		return
	}
	d := &s3results.DeadLettered{ID: t.ID, Reason: reason.Error(), Worker: w.cfg.Info, At: w.cfg.Now().UTC()}
	if err := w.store.PutDeadLetter(cctx, d); err != nil {
		log.Warn().Err(err).Msg("cannot record the refusal; poll keeps saying queued")
	}
}

// bind ties a verified task to where it was received and to when it was
// submitted, on a worker that verifies: a signature proves who made a
// task, not that this message is the one its submitter sent. A task signed
// for another queue is refused (a copy sent to a queue of more trusted
// workers), one whose message claims another priority than the signed one
// or that sits in a level above it too, and one submitted longer ago than MaxTaskAge (a body replayed after
// the task's objects expired, when its claims no longer stop it). A replay
// within that age is a duplicate delivery, which the task's claims make
// harmless. Nothing is written for a refused message.
//
// The stored record is not read: that would cost a request per task. A
// holder of a signing key can therefore send a task under the id of a
// queued task it did not submit, a task it could also cancel.
func (w *Worker) bind(q QueueRef, m sqs.Message, t *plan.Task) error {
	if w.cfg.Verifier == nil {
		return nil
	}
	if t.Queue != q.Name {
		return fmt.Errorf("refused: task is signed for queue %s but was received from queue %s", t.Queue, q.Name)
	}
	// The priority attribute decides the level a message is parked in;
	// the task's own priority is signed. A message claiming another one
	// (a copy sent to jump the queue) is refused. A copy without the
	// attribute is parked by the priority in its body, which is the
	// signed one, or, for a pointer, which has none, at 0: never higher.
	if p, ok := m.Attributes[plan.AttrPriority]; ok && p != strconv.Itoa(t.Priority) {
		return fmt.Errorf("refused: task is signed with priority %d but its message says %s", t.Priority, p)
	}
	// A message read from a level got there straight from its submit or
	// parked by a worker, both at the level of its signed priority (a
	// pointer without the attribute is parked at 0: lower, never higher).
	// One found above it was sent there to jump the queue.
	if q.Level && q.Min > plan.LevelFor(t.Priority).Min {
		return fmt.Errorf("refused: task is signed with priority %d but was received from level %s", t.Priority, q.Band)
	}
	if max := w.cfg.MaxTaskAge; max > 0 {
		if t.SubmittedAt.IsZero() {
			return errors.New("refused: task has no submission time, so its age cannot be checked")
		}
		if age := w.cfg.Now().Sub(t.SubmittedAt); age > max {
			return fmt.Errorf("refused: task was submitted %s ago, more than this worker's --max-task-age %s (a replay after its objects expired)",
				roughly(age), roughly(max))
		}
	}
	return nil
}

// roughly writes a task age as people do: whole days from two days on
// (30d), else hours, minutes and seconds (5h0m0s).
func roughly(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return d.Round(time.Second).String()
}
