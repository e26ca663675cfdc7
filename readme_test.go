package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quickstartStart is the README quickstart's start of dev, from the first
// line that names dev.env to the line that gives up, with `bin/taskiq-go` as
// the test's taskiq-go.
func quickstartStart(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(data), "## Five-minute quickstart\n\n```sh\n")
	if !ok {
		t.Fatal("README has no quickstart block")
	}
	block, _, _ = strings.Cut(block, "```")
	var lines []string
	started := false
	for _, l := range strings.Split(block, "\n") {
		if strings.Contains(l, "dev.env") {
			started = true
		}
		if !started {
			continue
		}
		lines = append(lines, strings.ReplaceAll(l, "bin/taskiq-go", "taskiq-go"))
		if strings.HasPrefix(l, "[ -f dev.env ] ||") {
			return strings.Join(lines, "\n")
		}
	}
	t.Fatalf("README quickstart: no dev start ending in a `[ -f dev.env ] ||` line:\n%s", block)
	return ""
}

// TestReadmeQuickstartCannotHang runs the README quickstart's start of dev
// where it cannot start (its port is in use) with a dev.env left over from
// an earlier run: the snippet gives up in a bounded time and shows dev's
// error, instead of waiting forever or going on with the stale file.
func TestReadmeQuickstartCannotHang(t *testing.T) {
	snippet := quickstartStart(t)
	if !strings.Contains(snippet, "taskiq-go dev ") || !strings.Contains(snippet, "127.0.0.1:9324") {
		t.Fatalf("the quickstart no longer starts dev on 127.0.0.1:9324:\n%s", snippet)
	}
	// Hold the default port, unless something else already does.
	ln, err := net.Listen("tcp", "127.0.0.1:9324")
	if err == nil {
		defer ln.Close()
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Skipf("cannot hold 127.0.0.1:9324: %v", err)
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, "dev.env")
	if err := os.WriteFile(stale, []byte("export AWS_ENDPOINT_URL=http://127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // the race with a stale file is short: try it often
		if i > 0 {
			_ = os.WriteFile(stale, []byte("export AWS_ENDPOINT_URL=http://127.0.0.1:1\n"), 0o644)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		// Should dev start after all, it must not outlive the test.
		cmd := exec.CommandContext(ctx, "sh", "-e", "-c", "trap 'kill $! 2>/dev/null' EXIT\n"+snippet)
		cmd.Dir = dir
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(t0)
		cancel()
		if err == nil {
			t.Fatalf("run %d: the quickstart went on with a dev that did not start:\n%s", i, out)
		}
		if !strings.Contains(string(out), "address already in use") {
			t.Fatalf("run %d: the quickstart gave up without dev's error (%v):\n%s", i, err, out)
		}
		if took > 20*time.Second {
			t.Fatalf("run %d: the quickstart took %v to give up", i, took)
		}
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("run %d: dev.env left behind: %v", i, err)
		}
	}
}
