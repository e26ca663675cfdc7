// Package forkclient is the native twin of the Python step client
// dagster_taskiq_step: the command of a Dagster step task on a worker that
// runs a warm fork server (dagster_taskiq.forkserver). Its only job is to
// hand the step to that server and to stand for the forked child towards
// taskiq-go: it sends its argv, environment, working directory, process
// group and its stdin, stdout and stderr (as SCM_RIGHTS file descriptors)
// over the server's Unix socket, waits for the child's exit status and
// leaves with it. The child joins this process's group, so that the
// worker's kills of the task's group reach it; when it could not (another
// session), SIGTERM, SIGINT and SIGHUP are forwarded to it. If the server
// goes away before the child ends, the child is killed and the step fails
// with ExitServerLost. A Python interpreter doing the same costs about 70 ms
// of CPU a step; this process costs what the binary's start costs.
//
// When the socket is not set, not reachable, or the server answers "cold",
// the step starts cold: the process execs the Python client's cold path
// (python -m dagster_taskiq_step, the fork server's variable removed) with
// the interpreter named by PythonEnv, after one line on stderr that says
// why.
//
// The binary runs as this client when it is started under the name Name
// (dagster-taskiq worker start links that name to the binary in a directory
// first on its tasks' PATH).
package forkclient

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

const (
	// Name is the command name under which the binary runs as this client:
	// the Python client's console script's name, which the Dagster executor
	// puts first in every step task's argv.
	Name = "dagster-taskiq-step"
	// SocketEnv names the fork server's socket (as for the Python client).
	SocketEnv = "DAGSTER_TASKIQ_FORKSERVER"
	// PythonEnv names the Python interpreter (with dagster-taskiq
	// installed) that runs a step cold.
	PythonEnv = "DAGSTER_TASKIQ_PYTHON"
	// ColdModule is the module whose main runs a step cold once the fork
	// server's variable is gone.
	ColdModule = "dagster_taskiq_step"
	// ExitServerLost is the exit code when the fork server went away while
	// the step ran (the Python client's too).
	ExitServerLost = 70
	// ProbeArg, the only argument, makes the client print ProbeReply and
	// exit 0: how dagster-taskiq tells a binary that has this client from
	// one that has not before it links it.
	ProbeArg = "--taskiq-go-native-step-client"
	// ProbeReply is the line a probe prints.
	ProbeReply = "taskiq-go native step client"
)

// Named reports whether args[0] names this client.
func Named(args []string) bool {
	return len(args) > 0 && filepath.Base(args[0]) == Name
}

// request is what the fork server reads (dagster_taskiq_step.recv_request).
type request struct {
	Argv []string          `json:"argv"`
	Env  map[string]string `json:"env"`
	Cwd  string            `json:"cwd"`
	Pgid int               `json:"pgid"`
}

// reply is one line the fork server writes.
type reply struct {
	Cold    *string `json:"cold"`
	Pid     int     `json:"pid"`
	Grouped bool    `json:"grouped"`
	Exit    *int    `json:"exit"`
	Signal  *int    `json:"signal"`
}

// Client is one run of the client; its fields are the process's
// surroundings, injected by tests.
type Client struct {
	// Environ is the process's environment (KEY=VALUE).
	Environ []string
	// Stderr receives the client's own messages.
	Stderr io.Writer
	// Fds are the descriptors handed to the child as its 0, 1 and 2.
	Fds [3]int
	// Exec replaces the process with the cold path; it returns only on
	// failure.
	Exec func(argv0 string, argv, env []string) error
	// Kill signals a process (the child, or this process to leave like the
	// child did).
	Kill func(pid int, sig syscall.Signal) error
	// Signals receives the signals to forward; nil: none.
	Signals <-chan os.Signal
}

// Main runs the client for args (args[0] is Name) and returns its exit
// code; on the cold path it does not return.
func Main(args []string) int {
	if len(args) == 2 && args[1] == ProbeArg {
		fmt.Println(ProbeReply)
		return 0
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	c := &Client{
		Environ: os.Environ(),
		Stderr:  os.Stderr,
		Fds:     [3]int{0, 1, 2},
		Exec:    syscall.Exec,
		Kill:    syscall.Kill,
		Signals: sigs,
	}
	code, sig := c.Run(args[1:])
	if sig != 0 {
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
		return 128 + int(sig)
	}
	return code
}

func (c *Client) getenv(name string) string {
	for _, kv := range c.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func (c *Client) say(format string, a ...any) {
	fmt.Fprintf(c.Stderr, Name+": "+format+"\n", a...)
}

// Run hands the step with arguments args to the fork server and returns the
// exit code to leave with, or the signal that ended the child (the caller
// then ends itself with it). On the cold path it returns only when the
// exec failed.
func (c *Client) Run(args []string) (code int, sig syscall.Signal) {
	path := c.getenv(SocketEnv)
	if path == "" {
		return c.cold(args, ""), 0
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return c.cold(args, fmt.Sprintf("fork server %s unreachable (%s)", path, why(err))), 0
	}
	defer conn.Close()
	cwd, _ := os.Getwd()
	req := request{Argv: args, Env: map[string]string{}, Cwd: cwd, Pgid: syscall.Getpgrp()}
	for _, kv := range c.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			req.Env[k] = v
		}
	}
	if err := send(conn, req, c.Fds[:]); err != nil {
		return c.cold(args, fmt.Sprintf("fork server %s refused the step (%s)", path, why(err))), 0
	}
	replies := make(chan reply)
	go func() {
		defer close(replies)
		dec := json.NewDecoder(conn)
		for {
			var r reply
			if dec.Decode(&r) != nil {
				return
			}
			replies <- r
		}
	}()
	pid, grouped := 0, true
	for {
		select {
		case s := <-c.Signals:
			// In the child's group it got the signal too; else pass it on.
			if pid != 0 && !grouped {
				_ = c.Kill(pid, s.(syscall.Signal))
			}
		case r, ok := <-replies:
			switch {
			case !ok:
				// The server went away before the child ended: do not leave
				// the child behind.
				started := "not started"
				if pid != 0 {
					_ = c.Kill(pid, syscall.SIGKILL)
					started = fmt.Sprint(pid)
				}
				c.say("fork server %s went away while the step ran (child %s)", path, started)
				return ExitServerLost, 0
			case r.Cold != nil:
				conn.Close()
				return c.cold(args, fmt.Sprintf("fork server cannot run this step warm (%s)", *r.Cold)), 0
			case r.Signal != nil && *r.Signal != 0:
				return 1, syscall.Signal(*r.Signal)
			case r.Exit != nil:
				return *r.Exit, 0
			case r.Pid != 0:
				pid, grouped = r.Pid, r.Grouped
			}
		}
	}
}

// send writes the request as the Python client does: a 4-byte big-endian
// length, the JSON body, the descriptors attached to the first byte.
func send(conn *net.UnixConn, req request, fds []int) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	data := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	data = append(data, body...)
	first := min(len(data), 4096)
	n, _, err := conn.WriteMsgUnix(data[:first], syscall.UnixRights(fds...), nil)
	if err != nil || n == len(data) {
		return err
	}
	_, err = conn.Write(data[n:])
	return err
}

// cold execs the Python client's cold path; it returns only when that
// failed, with the exit code a shell would give.
func (c *Client) cold(args []string, reason string) int {
	if reason != "" {
		c.say("%s: starting the step cold", reason)
	}
	python := c.getenv(PythonEnv)
	if python == "" {
		python = "python3"
	}
	exe := python
	if !strings.Contains(python, "/") {
		found, err := lookPath(python, c.getenv("PATH"))
		if err != nil {
			c.say("cannot start the step cold: %s not found in PATH (set %s)", python, PythonEnv)
			return 127
		}
		exe = found
	}
	env := make([]string, 0, len(c.Environ))
	for _, kv := range c.Environ {
		if !strings.HasPrefix(kv, SocketEnv+"=") {
			env = append(env, kv)
		}
	}
	err := c.Exec(exe, append([]string{python, "-m", ColdModule}, args...), env)
	c.say("cannot start the step cold with %s: %s", exe, why(err))
	if errors.Is(err, syscall.ENOENT) {
		return 127
	}
	return 126
}

// lookPath finds an executable name in a PATH value (the process's own,
// which exec.LookPath would read, may differ from the one it was given).
func lookPath(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

// why is an error's innermost message (no "dial unix PATH:" prefix).
func why(err error) string {
	var se syscall.Errno
	if errors.As(err, &se) {
		return se.Error()
	}
	if err == nil {
		return "no error"
	}
	return err.Error()
}
