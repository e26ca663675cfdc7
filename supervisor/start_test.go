package supervisor

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// starterEnv makes the test binary a starter (see starter) instead of
// running the tests.
const starterEnv = "SUPERVISOR_TEST_STARTER"

// starter prepares a supervisor, writes its pid to file, and waits to be
// killed without ever handing it a command: a worker that dies while its
// claim is out.
func starter(file string) {
	pe, err := Prepare(nil, nil)
	if err != nil {
		os.Exit(3)
	}
	if err := os.WriteFile(file, []byte(strconv.Itoa(pe.p.cmd.Process.Pid)), 0o644); err != nil {
		os.Exit(4)
	}
	time.Sleep(time.Hour)
	runtime.KeepAlive(pe)
}

// withStandalone makes path the supervisor binary beside this executable
// for the test ("": none).
func withStandalone(t *testing.T, path string) {
	t.Helper()
	old := standalone
	standalone = func() string { return path }
	t.Cleanup(func() { standalone = old })
}

// copyTestBinary puts a copy of the test binary (which enters the
// supervisor mode on Arg, as cmd/taskiq-go-supervise does) at dir/Binary.
func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, Binary)
	if os.Link(exe, dst) == nil {
		return dst
	}
	in, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// supervisorExe runs a command that prints its parent's executable (the
// supervisor's) and returns it.
func supervisorExe(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("needs /proc")
	}
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := start(t, Spec{Argv: []string{"sh", "-c", "readlink /proc/$PPID/exe"}, Stdout: out})
	if e, err := p.Wait(); err != nil || e.Status.ExitStatus() != 0 {
		t.Fatalf("exit %v, %v", e.Status, err)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Binary beside the executable is found only when it can be run.
func TestBeside(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "taskiq-go")
	if got := beside(exe); got != "" {
		t.Errorf("nothing there: got %q", got)
	}
	p := filepath.Join(dir, Binary)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := beside(exe); got != "" {
		t.Errorf("not executable: got %q", got)
	}
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := beside(exe); got != p {
		t.Errorf("got %q, want %q", got, p)
	}
}

// The supervisor binary beside the executable runs the supervisors;
// without it the executable runs them itself.
func TestStandaloneOrSelf(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	withStandalone(t, "")
	if got := supervisorExe(t); got != self {
		t.Errorf("without %s: supervised by %q, want %q", Binary, got, self)
	}
	bin := copyTestBinary(t, t.TempDir())
	withStandalone(t, bin)
	if got := supervisorExe(t); got != bin {
		t.Errorf("with %s: supervised by %q, want it", Binary, got)
	}
}

// A supervisor binary that cannot be started (here: replaced by a file
// that is no program) is passed over for the executable itself.
func TestStandaloneThatFailsFallsBack(t *testing.T) {
	bad := filepath.Join(t.TempDir(), Binary)
	if err := os.WriteFile(bad, []byte("not a program\x00"), 0o755); err != nil {
		t.Fatal(err)
	}
	withStandalone(t, bad)
	self, _ := os.Executable()
	if got := supervisorExe(t); got != self {
		t.Errorf("supervised by %q, want %q", got, self)
	}
}

// A prepared supervisor that is discarded exits having run nothing, and is
// reaped: no process is left.
func TestPreparedThenDiscarded(t *testing.T) {
	pe, err := Prepare(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := pe.p.cmd.Process.Pid
	pe.Discard()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("supervisor %d still there (or a zombie) after Discard", pid)
	}
	pe.Discard() // a second time does nothing
	if _, err := pe.Run(Spec{Argv: []string{"true"}}); err == nil {
		t.Error("Run after Discard ran")
	}
}

// A prepared supervisor runs the command it is handed later, with the
// output files it was prepared with.
func TestPreparedThenRun(t *testing.T) {
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	pe, err := Prepare(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pe.Run(Spec{Argv: []string{"echo", "ran"}, Env: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	pe.Discard() // after Run: nothing to do
	if e, err := p.Wait(); err != nil || e.Status.ExitStatus() != 0 {
		t.Fatalf("exit %v, %v", e.Status, err)
	}
	if b, _ := os.ReadFile(out.Name()); string(b) != "ran\n" {
		t.Errorf("output %q", b)
	}
}

// A prepared supervisor that died before it was handed the command (killed
// from outside) is replaced by a fresh one: the command still runs, once.
func TestPreparedThatDiedIsReplaced(t *testing.T) {
	pe, err := Prepare(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := pe.p.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !gone(pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("killed supervisor still running")
		}
	}
	mark := filepath.Join(t.TempDir(), "ran")
	p, err := pe.Run(Spec{Argv: []string{"sh", "-c", "echo x >>" + mark}, Env: os.Environ()})
	if err != nil {
		t.Fatal(err)
	}
	if p.cmd.Process.Pid == pid {
		t.Fatal("the dead supervisor was kept")
	}
	if e, err := p.Wait(); err != nil || e.Status.ExitStatus() != 0 {
		t.Fatalf("exit %v, %v", e.Status, err)
	}
	if b, _ := os.ReadFile(mark); string(b) != "x\n" {
		t.Errorf("ran %q, want once", b)
	}
}

// A prepared supervisor whose starter is killed (SIGKILL: nothing of the
// starter runs) before it hands over a command exits on its own.
func TestPreparedOutlivesNoStarter(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	file := filepath.Join(t.TempDir(), "supervisor.pid")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), starterEnv+"="+file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pid int
	for deadline := time.Now().Add(20 * time.Second); pid == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the starter wrote no pid")
		}
		if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
			pid, _ = strconv.Atoi(string(b))
		}
	}
	if gone(pid) {
		t.Fatal("the supervisor ended with its starter alive")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for deadline := time.Now().Add(20 * time.Second); !gone(pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("supervisor %d outlived its starter", pid)
		}
	}
}

// A supervisor binary that starts but is not one (here: a script that
// exits 1 at once, as a broken or foreign file beside the worker would)
// ends without a word and without having run anything: the command is
// run, once, by the executable itself, and the binary is passed over from
// then on. Both through Start and through a prepared supervisor.
func TestStandaloneThatExitsFallsBack(t *testing.T) {
	bad := filepath.Join(t.TempDir(), Binary)
	if err := os.WriteFile(bad, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	withStandalone(t, bad)
	t.Cleanup(func() { standaloneBroken.Store(false) })
	mark := filepath.Join(t.TempDir(), "ran")
	spec := Spec{Argv: []string{"sh", "-c", "echo x >>" + mark}, Env: os.Environ()}
	pe, err := Prepare(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Let the script end before it is handed the command, then while it
	// may still be reading it.
	for deadline := time.Now().Add(10 * time.Second); !gone(pe.p.cmd.Process.Pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the script did not end")
		}
	}
	p, err := pe.Run(spec)
	if err != nil {
		t.Fatalf("prepared on a broken binary: %v", err)
	}
	if e, err := p.Wait(); err != nil || e.Status.ExitStatus() != 0 {
		t.Fatalf("exit %v, %v", e.Status, err)
	}
	standaloneBroken.Store(false)
	p, err = Start(spec)
	if err != nil {
		t.Fatalf("started on a broken binary: %v", err)
	}
	if e, err := p.Wait(); err != nil || e.Status.ExitStatus() != 0 {
		t.Fatalf("exit %v, %v", e.Status, err)
	}
	if b, _ := os.ReadFile(mark); string(b) != "x\nx\n" {
		t.Errorf("ran %q, want once each", b)
	}
	if !standaloneBroken.Load() {
		t.Error("the broken binary is still used")
	}
	self, _ := os.Executable()
	if got := supervisorExe(t); got != self {
		t.Errorf("supervised by %q, want %q", got, self)
	}
}
