package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// Main is the supervisor process: the command line calls it, before
// anything else, when its first argument is Arg. It reads the spec from
// fd 3, reports on fd 4, and returns the process's exit code.
func Main() int {
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	ctl, st := os.NewFile(3, "control"), os.NewFile(4, "status")
	// A terminal's ^C and hang-up are the worker's to handle: it decides
	// how its tasks stop.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	parent := os.Getppid()
	becomeSubreaper()

	report := json.NewEncoder(st)
	dec := json.NewDecoder(ctl)
	var spec control
	if err := dec.Decode(&spec); err != nil {
		return 2
	}
	if len(spec.Argv) == 0 {
		_ = report.Encode(status{Event: "failed", Code: 126, Error: "no command"})
		return 0
	}
	if code, why := checkDir(spec.Dir); code != 0 {
		_ = report.Encode(status{Event: "failed", Code: code, Error: fmt.Sprintf("cannot start %q: %s", spec.Argv[0], why)})
		return 0
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env, cmd.Dir = spec.Env, spec.Dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = taskAttr()
	if err := cmd.Start(); err != nil {
		code, why := startFailure(spec.Argv[0], err)
		_ = report.Encode(status{Event: "failed", Code: code, Error: fmt.Sprintf("cannot start %q: %s", spec.Argv[0], why)})
		return 0
	}
	s := &super{pid: cmd.Process.Pid, grace: spec.Grace}
	if spec.Deadline != 0 {
		s.deadline = time.Unix(0, spec.Deadline)
	}
	_ = report.Encode(status{Event: "started", Pid: s.pid})

	exited := make(chan syscall.WaitStatus, 1)
	go reap(s.pid, exited)
	ops := make(chan control)
	go func() {
		defer close(ops)
		for {
			var c control
			if dec.Decode(&c) != nil {
				return
			}
			ops <- c
		}
	}()

	for {
		var timer <-chan time.Time
		var t *time.Timer
		if at := s.next(); !at.IsZero() {
			t = time.NewTimer(time.Until(at))
			timer = t.C
		}
		select {
		case ws := <-exited:
			// The command is gone: so must be everything it left behind,
			// before the exit is told.
			sweep(s.pid)
			_ = report.Encode(status{Event: "exited", Status: int(ws), By: s.by})
			return 0
		case c, ok := <-ops:
			if !ok {
				ops = nil
				s.stop(s.grace, "worker")
				continue
			}
			switch c.Op {
			case "renew":
				if s.by == "" {
					s.deadline = time.Unix(0, c.Deadline)
				}
			case "stop":
				s.stop(c.Grace, "stop")
			case "kill":
				s.kill("kill")
			}
		case <-term:
			// PR_SET_PDEATHSIG also fires when the thread that started us
			// ends, while the worker lives on: only a new parent means the
			// worker is gone.
			if os.Getppid() != parent {
				s.stop(s.grace, "worker")
			}
		case <-timer:
			s.tick()
		}
		if t != nil {
			t.Stop()
		}
	}
}

// super is the supervisor's state: the lease deadline, and once a stop has
// begun, when SIGKILL follows.
type super struct {
	pid      int
	grace    time.Duration
	deadline time.Time
	by       string
	killAt   time.Time
	killed   bool
}

// next is when the supervisor must act next (zero: only on an event).
func (s *super) next() time.Time {
	switch {
	case s.killed:
		return time.Time{}
	case s.by != "":
		return s.killAt
	case !s.deadline.IsZero():
		return s.deadline.Add(-s.grace)
	}
	return time.Time{}
}

func (s *super) tick() {
	now := time.Now()
	switch {
	case s.killed:
	case s.by != "" && !now.Before(s.killAt):
		s.kill(s.by)
	case s.by == "" && !s.deadline.IsZero() && !now.Before(s.deadline.Add(-s.grace)):
		s.stop(s.deadline.Sub(now), "deadline")
	}
}

// stop sends SIGTERM to the tree and schedules SIGKILL grace later, never
// later than the deadline; a second stop can only bring SIGKILL closer.
func (s *super) stop(grace time.Duration, by string) {
	if s.killed {
		return
	}
	at := time.Now().Add(max(grace, 0))
	if !s.deadline.IsZero() && s.deadline.Before(at) {
		at = s.deadline
	}
	if s.by == "" {
		s.by = by
		signalTree(s.pid, syscall.SIGTERM)
		s.killAt = at
	} else if at.Before(s.killAt) {
		s.killAt = at
	}
	if !time.Now().Before(s.killAt) {
		s.kill(s.by)
	}
}

func (s *super) kill(by string) {
	if s.by == "" {
		s.by = by
	}
	s.killed = true
	signalTree(s.pid, syscall.SIGKILL)
}

// reap collects every child of the supervisor (the command and, being a
// subreaper, any orphan of its tree) and hands over the command's status.
func reap(pid int, exited chan<- syscall.WaitStatus) {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
		case err != nil:
			time.Sleep(20 * time.Millisecond)
		case got == pid:
			exited <- ws
		}
	}
}

// sweep kills whatever is left of the command's tree until nothing is.
func sweep(pid int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		if noChildren() {
			// Every descendant has a live child of ours among its
			// ancestors (orphans are reparented to us): none is left.
			return
		}
		left := descendants()
		if len(left) == 0 {
			return
		}
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noChildren reports whether the supervisor has no child left, live or
// zombie (one reaped here is one the reaper would have reaped): the common
// end of a task, which then needs no look through /proc.
func noChildren() bool {
	var ws syscall.WaitStatus
	_, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
	return errors.Is(err, syscall.ECHILD)
}

// signalTree signals the command's process group and every other live
// descendant of the supervisor.
func signalTree(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
	for _, p := range descendants() {
		_ = syscall.Kill(p, sig)
	}
}

// checkDir says why a command cannot run in dir, with the code a shell
// would give, or 0 when it can. Without this check a missing directory
// fails the exec with ENOENT, which reads as the program being missing.
func checkDir(dir string) (int, string) {
	if dir == "" {
		return 0, ""
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 126, fmt.Sprintf("its directory %s does not exist on this worker", dir)
	case errors.Is(err, os.ErrPermission):
		return 126, fmt.Sprintf("its directory %s cannot be entered (permission denied)", dir)
	case err != nil:
		return 126, fmt.Sprintf("its directory %s cannot be read: %v", dir, unwrapPath(err))
	case !fi.IsDir():
		return 126, fmt.Sprintf("its directory %s is not a directory", dir)
	}
	return 0, ""
}

// startFailure turns an exec error into a shell's exit code and a reason
// in plain words: 127 when the program is not there, 126 when it is there
// but cannot be run.
func startFailure(name string, err error) (int, string) {
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return 127, "no such program in PATH"
	case errors.Is(err, os.ErrNotExist):
		// A path that names nothing, or a script whose interpreter
		// (its #! line) is missing.
		return 127, fmt.Sprintf("%s does not exist (or its #! interpreter does not)", name)
	case errors.Is(err, os.ErrPermission):
		return 126, "permission denied (is it executable?)"
	case errors.Is(err, syscall.ENOEXEC):
		return 126, "not an executable format (a script needs a #! line)"
	}
	return 126, unwrapPath(err).Error()
}

// unwrapPath drops Go's "fork/exec PATH: " or "stat PATH: " from an error.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
