package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary be its own supervisor, as the taskiq-go
// binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		os.Exit(Main())
	}
	if f := os.Getenv(starterEnv); f != "" {
		starter(f)
	}
	os.Exit(m.Run())
}

func start(t *testing.T, spec Spec) *Proc {
	t.Helper()
	spec.Env = append(os.Environ(), spec.Env...)
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gone reports whether pid has ended (or is a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && strings.HasPrefix(string(b[i+1:]), " Z")
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// The command's exit status comes back, and what it left behind (a
// background child, a child in a session of its own) is dead by then.
func TestExitAndLeftovers(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	dir := t.TempDir()
	bg, ss := filepath.Join(dir, "bg"), filepath.Join(dir, "ss")
	p := start(t, Spec{Argv: []string{"sh", "-c", "sleep 300 & echo $! >" + bg + "; setsid sleep 300 & echo $! >" + ss + "; exit 3"}})
	e, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if e.Status.ExitStatus() != 3 || e.By != "" {
		t.Fatalf("exit %d by %q, want 3 by nobody", e.Status.ExitStatus(), e.By)
	}
	for _, f := range []string{bg, ss} {
		if pid := readPid(t, f); !gone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("%s: process %d outlived the task", filepath.Base(f), pid)
		}
	}
}

// With no renewal, the deadline stops the command: SIGTERM first.
func TestDeadline(t *testing.T) {
	start0 := time.Now()
	p := start(t, Spec{Argv: []string{"sleep", "300"}, Deadline: time.Now().Add(300 * time.Millisecond), Grace: 100 * time.Millisecond})
	e, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if e.By != "deadline" || !e.Status.Signaled() || e.Status.Signal() != syscall.SIGTERM {
		t.Fatalf("by %q, status %v, want SIGTERM at the deadline", e.By, e.Status)
	}
	if d := time.Since(start0); d > 5*time.Second {
		t.Fatalf("stopped after %s", d)
	}
}

// A command that ignores SIGTERM is killed at the deadline itself.
func TestDeadlineKills(t *testing.T) {
	p := start(t, Spec{Argv: []string{"sh", "-c", "trap '' TERM; sleep 300 & wait; sleep 300"}, Deadline: time.Now().Add(400 * time.Millisecond), Grace: 200 * time.Millisecond})
	e, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if e.By != "deadline" || !e.Status.Signaled() || e.Status.Signal() != syscall.SIGKILL {
		t.Fatalf("by %q, status %v, want SIGKILL at the deadline", e.By, e.Status)
	}
}

// Renewals keep the command alive past its first deadline; Stop ends it.
func TestRenewAndStop(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "alive")
	p := start(t, Spec{Argv: []string{"sh", "-c", "while :; do touch " + mark + "; sleep 0.05; done"}, Deadline: time.Now().Add(300 * time.Millisecond), Grace: 100 * time.Millisecond})
	done := make(chan struct{})
	var e Exit
	var err error
	go func() { e, err = p.Wait(); close(done) }()
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := p.Renew(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
			t.Fatalf("ended while renewed: by %q, %v", e.By, err)
		default:
		}
	}
	if err := p.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	<-done
	if err != nil || e.By != "stop" {
		t.Fatalf("by %q, %v, want stopped", e.By, err)
	}
	// A heartbeat that comes after the end has nothing to renew, and says
	// so in a way the worker can tell from a broken pipe.
	if err := p.Renew(time.Now().Add(time.Second)); !errors.Is(err, ErrEnded) {
		t.Fatalf("renew after the end: %v, want ErrEnded", err)
	}
}

// A command that cannot start says why, with a shell's exit code: a
// missing directory is not a missing program.
func TestStartError(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec.sh")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		argv []string
		dir  string
		code int
		msg  string
	}{
		{[]string{"no-such-program-anywhere"}, "", 127, `cannot start "no-such-program-anywhere": no such program in PATH`},
		{[]string{filepath.Join(dir, "nothing")}, "", 127, `cannot start "` + filepath.Join(dir, "nothing") + `": ` + filepath.Join(dir, "nothing") + ` does not exist`},
		{[]string{noexec}, "", 126, `cannot start "` + noexec + `": permission denied (is it executable?)`},
		{[]string{"true"}, filepath.Join(dir, "nope"), 126, `cannot start "true": its directory ` + filepath.Join(dir, "nope") + ` does not exist on this worker`},
		{[]string{"true"}, file, 126, `cannot start "true": its directory ` + file + ` is not a directory`},
	} {
		_, err := Start(Spec{Argv: c.argv, Dir: c.dir, Env: os.Environ()})
		var se *StartError
		if !errors.As(err, &se) || se.Code != c.code || !strings.HasPrefix(se.Msg, c.msg) {
			t.Errorf("%v in %q: err = %v, want %d %q", c.argv, c.dir, err, c.code, c.msg)
		}
		if err != nil && strings.Contains(err.Error(), "fork/exec") {
			t.Errorf("%v: Go's words in %q", c.argv, err)
		}
	}
}

// BenchmarkTrue is the cost of running /bin/true under a supervisor, to
// compare with BenchmarkTrueBare (a plain fork and exec).
func BenchmarkTrue(b *testing.B) {
	env := os.Environ()
	for b.Loop() {
		p, err := Start(Spec{Argv: []string{"true"}, Env: env})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrueBare(b *testing.B) {
	for b.Loop() {
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			b.Fatal(err)
		}
		p.Wait()
	}
}
