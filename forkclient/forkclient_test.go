package forkclient

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// server is a fake fork server: it reads one request and answers with the
// lines of script, then closes (or keeps the connection until the test's
// end when hold is set).
type server struct {
	path string
	got  chan received
	hold chan struct{}
}

type received struct {
	req request
	fds []int
}

func newServer(t *testing.T, script []string, hold bool) *server {
	t.Helper()
	s := &server{path: filepath.Join(t.TempDir(), "fs.sock"), got: make(chan received, 1), hold: make(chan struct{})}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); close(s.hold) })
	go func() {
		conn, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		buf, oob := make([]byte, 65536), make([]byte, syscall.CmsgSpace(3*4))
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		data := buf[:n]
		for len(data) < 4 || len(data) < 4+int(binary.BigEndian.Uint32(data)) {
			m, err := conn.Read(buf)
			if err != nil {
				return
			}
			data = append(data, buf[:m]...)
		}
		var r received
		msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			fds, _ := syscall.ParseUnixRights(&m)
			r.fds = append(r.fds, fds...)
		}
		_ = json.Unmarshal(data[4:4+binary.BigEndian.Uint32(data)], &r.req)
		s.got <- r
		for _, line := range script {
			_, _ = conn.Write([]byte(line + "\n"))
		}
		if hold {
			<-s.hold
		}
	}()
	return s
}

type fake struct {
	mu     sync.Mutex
	kills  []string
	execed []string
	env    []string
	stderr bytes.Buffer
}

func (f *fake) client(t *testing.T, env ...string) *Client {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return &Client{
		Environ: append([]string{"PATH=/usr/bin:/bin", "KEEP=1"}, env...),
		Stderr:  &f.stderr,
		Fds:     [3]int{int(r.Fd()), int(w.Fd()), int(w.Fd())},
		Exec: func(argv0 string, argv, env []string) error {
			f.execed, f.env = append([]string{argv0}, argv...), env
			return syscall.ENOENT
		},
		Kill: func(pid int, sig syscall.Signal) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.kills = append(f.kills, syscall.Signal(sig).String()+" "+itoa(pid))
			return nil
		},
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestNamed(t *testing.T) {
	for args, want := range map[string]bool{
		"dagster-taskiq-step":                 true,
		"/tmp/x/bin/dagster-taskiq-step":      true,
		"taskiq-go":                           false,
		"/venv/bin/dagster-taskiq-step-other": false,
	} {
		if got := Named([]string{args}); got != want {
			t.Errorf("Named(%q) = %v, want %v", args, got, want)
		}
	}
	if Named(nil) {
		t.Error("Named(nil) = true")
	}
}

func TestWarmStepSendsItselfAndLeavesWithTheChildsExit(t *testing.T) {
	s := newServer(t, []string{`{"pid":4242,"grouped":true}`, `{"exit":3}`}, false)
	f := &fake{}
	c := f.client(t, SocketEnv+"="+s.path)
	code, sig := c.Run([]string{"api", "execute_step", "--x", "é"})
	if code != 3 || sig != 0 {
		t.Fatalf("Run = %d, %v; want 3, 0", code, sig)
	}
	r := <-s.got
	if !slices.Equal(r.req.Argv, []string{"api", "execute_step", "--x", "é"}) {
		t.Errorf("argv %q", r.req.Argv)
	}
	if r.req.Env["KEEP"] != "1" || r.req.Env[SocketEnv] != s.path {
		t.Errorf("env %v", r.req.Env)
	}
	if wd, _ := os.Getwd(); r.req.Cwd != wd || r.req.Pgid != syscall.Getpgrp() {
		t.Errorf("cwd %q pgid %d", r.req.Cwd, r.req.Pgid)
	}
	if len(r.fds) != 3 {
		t.Fatalf("received %d fds, want 3", len(r.fds))
	}
	// the received stdout is the client's: what the child writes there arrives
	if _, err := syscall.Write(r.fds[1], []byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := syscall.Read(c.Fds[0], buf); err != nil || string(buf) != "hi" {
		t.Errorf("read %q, %v through the passed stdout", buf, err)
	}
	if f.execed != nil || f.kills != nil {
		t.Errorf("exec %q, kills %q", f.execed, f.kills)
	}
}

func TestChildKilledBySignal(t *testing.T) {
	s := newServer(t, []string{`{"pid":7,"grouped":true}`, `{"signal":15}`}, false)
	f := &fake{}
	code, sig := f.client(t, SocketEnv+"="+s.path).Run([]string{"api"})
	if sig != syscall.SIGTERM || code != 1 {
		t.Fatalf("Run = %d, %v; want the child's SIGTERM", code, sig)
	}
}

func TestServerGoneMidStepKillsTheChild(t *testing.T) {
	s := newServer(t, []string{`{"pid":99,"grouped":true}`}, false)
	f := &fake{}
	code, _ := f.client(t, SocketEnv+"="+s.path).Run([]string{"api"})
	if code != ExitServerLost {
		t.Fatalf("code %d, want %d", code, ExitServerLost)
	}
	if !slices.Equal(f.kills, []string{"killed 99"}) {
		t.Errorf("kills %q, want the child SIGKILLed", f.kills)
	}
	if !strings.Contains(f.stderr.String(), "went away while the step ran (child 99)") {
		t.Errorf("stderr %q", f.stderr.String())
	}
}

func TestSignalsForwardedOnlyToAChildOutsideTheGroup(t *testing.T) {
	for _, grouped := range []bool{false, true} {
		s := newServer(t, []string{`{"pid":55,"grouped":` + map[bool]string{true: "true", false: "false"}[grouped] + `}`}, true)
		f := &fake{}
		c := f.client(t, SocketEnv+"="+s.path)
		sigs := make(chan os.Signal)
		c.Signals = sigs
		done := make(chan int)
		go func() { code, _ := c.Run([]string{"api"}); done <- code }()
		<-s.got
		// The client may take a signal before the pid line: an ungrouped
		// child is signalled once the client knows it, so signal until then.
		var kills []string
		for i := 0; i < 3 || (!grouped && len(kills) == 0); i++ {
			sigs <- syscall.SIGTERM
			f.mu.Lock()
			kills = slices.Clone(f.kills)
			f.mu.Unlock()
		}
		if grouped && len(kills) != 0 {
			t.Errorf("grouped child signalled: %q", kills)
		}
		if !grouped && kills[len(kills)-1] != "terminated 55" {
			t.Errorf("ungrouped child not signalled: %q", kills)
		}
		s.hold <- struct{}{}
		if code := <-done; code != ExitServerLost {
			t.Errorf("code %d after the server closed", code)
		}
	}
}

func TestColdWhenTheServerSaysSo(t *testing.T) {
	s := newServer(t, []string{`{"cold":"cannot import x warm"}`}, false)
	f := &fake{}
	c := f.client(t, SocketEnv+"="+s.path, PythonEnv+"=/venv/bin/python")
	if code, _ := c.Run([]string{"api", "execute_step"}); code != 127 {
		t.Errorf("code %d after a failed exec, want 127", code)
	}
	if !slices.Equal(f.execed, []string{"/venv/bin/python", "/venv/bin/python", "-m", ColdModule, "api", "execute_step"}) {
		t.Errorf("exec %q", f.execed)
	}
	for _, kv := range f.env {
		if strings.HasPrefix(kv, SocketEnv+"=") {
			t.Errorf("cold step still names the fork server: %q", kv)
		}
	}
	if !slices.Contains(f.env, "KEEP=1") {
		t.Errorf("cold env %q lost KEEP", f.env)
	}
	if !strings.Contains(f.stderr.String(), "fork server cannot run this step warm (cannot import x warm): starting the step cold") {
		t.Errorf("stderr %q", f.stderr.String())
	}
}

func TestColdWithoutAServer(t *testing.T) {
	f := &fake{}
	c := f.client(t, SocketEnv+"="+filepath.Join(t.TempDir(), "none.sock"), PythonEnv+"=/venv/bin/python")
	c.Run([]string{"api"})
	if len(f.execed) == 0 || !strings.Contains(f.stderr.String(), "unreachable") {
		t.Errorf("exec %q, stderr %q", f.execed, f.stderr.String())
	}
	// no socket named: cold, silently, with python3 from PATH
	f = &fake{}
	c = f.client(t)
	c.Environ = []string{"PATH=" + t.TempDir()}
	if code, _ := c.Run([]string{"api"}); code != 127 || f.execed != nil {
		t.Errorf("code %d, exec %q without python3 in PATH", code, f.execed)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "python3"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	f = &fake{}
	c = f.client(t)
	c.Environ = []string{"PATH=" + dir}
	c.Run([]string{"api"})
	if len(f.execed) == 0 || f.execed[0] != filepath.Join(dir, "python3") || strings.Contains(f.stderr.String(), "starting the step cold") {
		t.Errorf("exec %q, stderr %q", f.execed, f.stderr.String())
	}
}

func TestProbe(t *testing.T) {
	r, w, _ := os.Pipe()
	stdout := os.Stdout
	os.Stdout = w
	code := Main([]string{"/x/" + Name, ProbeArg})
	os.Stdout = stdout
	w.Close()
	out := make([]byte, 100)
	n, _ := r.Read(out)
	if code != 0 || string(out[:n]) != ProbeReply+"\n" {
		t.Errorf("probe: %d %q", code, out[:n])
	}
}
