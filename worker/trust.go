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
	"sort"
	"strings"

	"github.com/taskiq-go/taskiq-go/plan"
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
func CheckAllowed(argv0 string, patterns []string, lookPath func(string) (string, error)) error {
	if len(patterns) == 0 {
		return nil
	}
	candidates := []string{argv0, filepath.Base(argv0)}
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	if p, err := lookPath(argv0); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, real)
		}
		candidates = append(candidates, p)
	}
	for _, pat := range patterns {
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
// with, its secrets resolved. The error is the task's failure reason; it
// names a secret's reference but never a value.
func (w *Worker) startEnv(ctx context.Context, t *plan.Task) ([]string, error) {
	look := func(name string) (string, error) {
		if strings.Contains(name, "/") && !filepath.IsAbs(name) && t.Dir != "" {
			name = filepath.Join(t.Dir, name)
		}
		return exec.LookPath(name)
	}
	if err := CheckAllowed(t.Argv[0], w.cfg.Allow, look); err != nil {
		return nil, err
	}
	env := t.Env
	if len(t.Secrets) > 0 {
		if w.cfg.Secrets == nil {
			return nil, errors.New("the task has secrets and this worker cannot resolve them")
		}
		vals, err := w.cfg.Secrets.ResolveAll(ctx, t.Secrets)
		if err != nil {
			return nil, err
		}
		env = maps.Clone(t.Env)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, vals)
	}
	return TaskEnviron(os.Environ(), w.cfg.PassEnv, env), nil
}
