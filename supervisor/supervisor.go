// Package supervisor runs one task's command under a small watchdog
// process (see Main): the stand-alone Binary when it sits beside the
// worker's executable, else that executable re-executed in a hidden mode.
// The watchdog holds the task's lease deadline, stops the command's whole
// process tree by itself when the deadline passes without a renewal or when
// the worker that started it dies, and leaves nothing of the task behind
// when the command ends.
//
// The worker talks to its supervisor over two pipes: a control pipe it
// writes (the command to run, then renewals and stop requests, one JSON
// line each) and a status pipe it reads (the task's pid or why it could not
// start, then how it ended). The end of the control pipe, which the kernel
// closes when the worker dies however it dies, is itself a stop request.
// A supervisor can be started before its command is known (Prepare): it
// waits on the control pipe and, should the pipe end before the command
// comes, exits having run nothing.
//
// What holds where: on Linux the supervisor is a child subreaper
// (PR_SET_CHILD_SUBREAPER), so every process the task leaves behind,
// background children and setsid escapees included, is reparented to it and
// killed before it reports the exit; it is also told of its worker's death
// by PR_SET_PDEATHSIG. Elsewhere (macOS) it stops the task's process group
// only: descendants that left the group (setsid) are not found, and the
// worker's death is noticed by the control pipe's end alone.
package supervisor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Arg is the first argument that turns the binary into a supervisor: the
// command line checks for it before anything else (see Main).
const Arg = "__taskiq_go_supervise"

// Spec is the command a supervisor runs and the lease it holds.
type Spec struct {
	// Argv is the command and its arguments; Argv[0] is looked up in the
	// worker's PATH.
	Argv []string
	// Env is the command's whole environment.
	Env []string
	// Dir is the command's working directory ("": the worker's).
	Dir string
	// Stdout and Stderr receive the command's output (nil: /dev/null).
	Stdout, Stderr *os.File
	// Deadline is the moment by which the command's tree must be dead
	// unless Renew moves it: the supervisor sends SIGTERM Grace before it
	// and SIGKILL at it. The zero time means no deadline.
	Deadline time.Time
	// Grace is the time between SIGTERM and SIGKILL when the deadline
	// passes or the worker dies.
	Grace time.Duration
}

// StartError says why a command could not be started, with the exit code a
// shell would give (127: not found, 126: not runnable).
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

// Exit is how a supervised command ended.
type Exit struct {
	// Status is the command's wait status.
	Status syscall.WaitStatus
	// By says who stopped it: "" (it ended by itself), "stop" or "kill"
	// (asked by the worker), "deadline" (the lease deadline passed) or
	// "worker" (the worker died).
	By string
}

// control is one line on the control pipe.
type control struct {
	Op       string        `json:"op,omitempty"` // "" (the spec), "renew", "stop", "kill"
	Argv     []string      `json:"argv,omitempty"`
	Env      []string      `json:"env,omitempty"`
	Dir      string        `json:"dir,omitempty"`
	Deadline int64         `json:"deadline,omitempty"` // unix nanoseconds
	Grace    time.Duration `json:"grace,omitempty"`
}

// status is one line on the status pipe.
type status struct {
	Event  string `json:"event"` // "started", "failed", "exited"
	Pid    int    `json:"pid,omitempty"`
	Code   int    `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
	Status int    `json:"status,omitempty"`
	By     string `json:"by,omitempty"`
}

// Proc is a command running under its supervisor.
type Proc struct {
	cmd *exec.Cmd
	pid int

	mu     sync.Mutex
	ctl    *os.File
	enc    *json.Encoder
	closed bool // Wait closed ctl: the command has ended

	st *bufio.Reader
	sf *os.File
	// standalone is set when the process is Binary, not this executable.
	standalone bool
}

// nestedEnv marks a supervisor's own environment (never a command's, which
// is Spec.Env), so that a binary that fails to enter the supervisor mode
// cannot start supervisors without end.
const nestedEnv = "TASKIQ_GO_SUPERVISOR_CHILD"

// Binary is the file name of the supervisor alone (cmd/taskiq-go-supervise),
// a binary of the standard library only: it starts for a fraction of the CPU
// the whole taskiq-go takes (its package initialization, the AWS SDK's, is
// most of a start). Supervisors are started from it when it sits beside the
// executable that starts them; otherwise that executable runs itself with
// Arg.
const Binary = "taskiq-go-supervise"

// standalone is the path of Binary beside this executable, or "" when there
// is none; looked up once.
var standalone = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return beside(exe)
})

// standaloneBroken is set once Binary was found not to be a supervisor: it
// started, then exited by itself without a word (a foreign or broken file,
// a script that exits 1), so it ran nothing. Supervisors are started from
// this executable from then on.
var standaloneBroken atomic.Bool

// errSilent is a standalone supervisor's exit, by itself, before it said
// anything: it was no supervisor, and it started no command (a supervisor
// reports whether the command started before anything else).
var errSilent = errors.New("the supervisor binary exited without a word: it is not one")

// beside is the path of Binary in exe's directory when an executable file is
// there, else "".
func beside(exe string) string {
	p := filepath.Join(filepath.Dir(exe), Binary)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return ""
	}
	return p
}

// Pending is a supervisor started before its command is known, so that its
// start overlaps whatever must come first (the worker's claim of the task).
// It runs nothing until Run hands it the command; when Discard ends it
// instead, or its starter dies, it exits having run nothing. A Pending is
// used by one goroutine: Run or Discard, once (Discard after Run does
// nothing).
type Pending struct {
	p              *Proc
	done           bool
	stdout, stderr *os.File
}

// Prepare starts a supervisor whose command will write to stdout and stderr
// (nil: /dev/null). It returns as soon as the process is started, without
// waiting for it to be up.
func Prepare(stdout, stderr *os.File) (*Pending, error) {
	p, err := launch(stdout, stderr)
	if err != nil {
		return nil, err
	}
	return &Pending{p: p, stdout: stdout, stderr: stderr}, nil
}

// Run hands the supervisor its command (spec's Stdout and Stderr are those
// given to Prepare) and returns once the command runs, or with a
// *StartError when it could not be started. A supervisor found gone before
// it read the command, which therefore ran nothing, is replaced by a fresh
// one.
func (pe *Pending) Run(spec Spec) (*Proc, error) {
	if pe.done {
		return nil, errors.New("supervisor: already used")
	}
	pe.done = true
	if len(spec.Argv) == 0 {
		pe.p.discard()
		return nil, &StartError{Code: 126, Msg: "no command"}
	}
	p := pe.p
	for try := 0; ; try++ {
		if err := p.begin(spec); err != nil {
			// The write failed, so the supervisor did not read the whole
			// command: it is gone without having started anything.
			p.abandon()
			p.silent()
			if try > 0 {
				return nil, fmt.Errorf("cannot talk to the supervisor: %w", err)
			}
		} else {
			q, err := p.started()
			if !errors.Is(err, errSilent) || try > 0 {
				return q, err
			}
		}
		// Once more on a fresh supervisor: from this executable when the
		// first was a broken Binary.
		var err error
		if p, err = launch(pe.stdout, pe.stderr); err != nil {
			return nil, err
		}
	}
}

// silent reports, once p has been reaped, whether it was a standalone
// supervisor that exited by itself before it said anything, and if so
// passes Binary over from now on.
func (p *Proc) silent() bool {
	ps := p.cmd.ProcessState
	if !p.standalone || ps == nil || !ps.Exited() {
		return false
	}
	standaloneBroken.Store(true)
	return true
}

// Discard ends a supervisor that was never handed a command, and reaps it.
func (pe *Pending) Discard() {
	if pe == nil || pe.done {
		return
	}
	pe.done = true
	pe.p.discard()
}

// Start starts a supervisor for spec and returns once the command runs, or
// with a *StartError when it could not be started.
func Start(spec Spec) (*Proc, error) {
	if len(spec.Argv) == 0 {
		return nil, &StartError{Code: 126, Msg: "no command"}
	}
	pe, err := Prepare(spec.Stdout, spec.Stderr)
	if err != nil {
		return nil, err
	}
	return pe.Run(spec)
}

// launch starts a supervisor process, waiting for its command on the
// control pipe: Binary when it is beside this executable, else this
// executable itself, which is also the fallback when Binary fails to start.
func launch(stdout, stderr *os.File) (*Proc, error) {
	if os.Getenv(nestedEnv) != "" {
		// This process was started as a supervisor but did not enter the
		// supervisor mode (a binary whose main does not call Main): were
		// it to start another, each would start the next.
		return nil, errors.New("supervisor: this binary does not run the supervisor mode (its main must call supervisor.Main for the hidden argument)")
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("supervisor pipe: %w", err)
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, fmt.Errorf("supervisor pipe: %w", err)
	}
	env := append(os.Environ(), nestedEnv+"=1")
	var cmd *exec.Cmd
	alone := standalone()
	if standaloneBroken.Load() {
		alone = ""
	}
	for _, path := range []string{alone, selfPath()} {
		if path == "" {
			continue
		}
		arg0 := path
		if path == selfPath() {
			arg0 = os.Args[0]
		}
		cmd = &exec.Cmd{
			Path:        path,
			Args:        []string{arg0, Arg},
			Env:         env,
			Stdout:      stdout,
			Stderr:      stderr,
			ExtraFiles:  []*os.File{ctlR, stW},
			SysProcAttr: supervisorAttr(),
		}
		if err = cmd.Start(); err == nil {
			break
		}
	}
	ctlR.Close()
	stW.Close()
	if err != nil {
		ctlW.Close()
		stR.Close()
		return nil, fmt.Errorf("cannot start the supervisor: %w", err)
	}
	return &Proc{cmd: cmd, ctl: ctlW, enc: json.NewEncoder(ctlW), st: bufio.NewReader(stR), sf: stR, standalone: cmd.Path == alone}, nil
}

// begin writes the command on the control pipe.
func (p *Proc) begin(spec Spec) error {
	first := control{Argv: spec.Argv, Env: spec.Env, Dir: spec.Dir, Grace: spec.Grace}
	if !spec.Deadline.IsZero() {
		first.Deadline = spec.Deadline.UnixNano()
	}
	return p.send(first)
}

// started reads whether the command the supervisor was handed runs.
func (p *Proc) started() (*Proc, error) {
	s, err := p.read()
	if err != nil {
		p.abandon()
		if p.silent() {
			return nil, fmt.Errorf("supervisor: %w (%v)", errSilent, err)
		}
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	switch s.Event {
	case "started":
		p.pid = s.Pid
		return p, nil
	case "failed":
		p.abandon()
		return nil, &StartError{Code: s.Code, Msg: s.Error}
	}
	p.abandon()
	return nil, fmt.Errorf("supervisor: unexpected %q", s.Event)
}

// Pid is the command's process id (its process group's too).
func (p *Proc) Pid() int { return p.pid }

// Renew moves the deadline by which the command must be dead.
func (p *Proc) Renew(deadline time.Time) error {
	return p.send(control{Op: "renew", Deadline: deadline.UnixNano()})
}

// Stop sends the command's tree SIGTERM, then SIGKILL after grace (or at
// the deadline, whichever comes first).
func (p *Proc) Stop(grace time.Duration) error {
	return p.send(control{Op: "stop", Grace: max(grace, 0)})
}

// Kill sends the command's tree SIGKILL at once.
func (p *Proc) Kill() error { return p.send(control{Op: "kill"}) }

// Wait waits until the command and everything it left behind are gone, and
// returns how the command ended. When the supervisor itself is lost (killed
// from outside), the command's process group is killed and an error
// returned.
func (p *Proc) Wait() (Exit, error) {
	s, err := p.read()
	p.mu.Lock()
	p.ctl.Close()
	p.closed = true
	p.mu.Unlock()
	p.sf.Close()
	werr := p.cmd.Wait()
	if err == nil && s.Event != "exited" {
		err = fmt.Errorf("unexpected %q", s.Event)
	}
	if err != nil {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		if werr != nil {
			err = fmt.Errorf("%w (%v)", err, werr)
		}
		return Exit{}, fmt.Errorf("supervisor lost: %w", err)
	}
	return Exit{Status: syscall.WaitStatus(s.Status), By: s.By}, nil
}

func (p *Proc) send(c control) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrEnded
	}
	return p.enc.Encode(c)
}

// ErrEnded is what Renew, Stop and Kill return once Wait has returned: the
// command has ended, so there is nothing to renew or stop. A heartbeat
// racing a task's end gets it and has nothing to report.
var ErrEnded = errors.New("the task's command has ended")

func (p *Proc) read() (status, error) {
	var s status
	line, err := p.st.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("it ended without a word")
		}
		return s, err
	}
	if err := json.Unmarshal(line, &s); err != nil {
		return s, fmt.Errorf("bad status line: %w", err)
	}
	return s, nil
}

// discard ends a supervisor that was handed no command: it has nothing to
// stop, so it is killed rather than waited for while it starts.
func (p *Proc) discard() {
	_ = p.cmd.Process.Kill()
	p.abandon()
}

// abandon ends a supervisor that did not start its command.
func (p *Proc) abandon() {
	p.ctl.Close()
	p.sf.Close()
	_ = p.cmd.Wait()
}
