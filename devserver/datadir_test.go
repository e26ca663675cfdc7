package devserver

import (
	"strings"
	"testing"
	"time"
)

// TestDataDirInUse starts a second endpoint on a DataDir another one holds:
// New fails within the lock's bound, saying so, instead of waiting, and the
// first endpoint goes on.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, Options{DataDir: dir})
	t0 := time.Now()
	s, err := New(Options{DataDir: dir})
	if err == nil {
		s.Close()
		t.Fatal("a second endpoint opened a data dir in use")
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("error %q does not say the data dir is in use", err)
	}
	if el := time.Since(t0); el > boltOpenTimeout+5*time.Second {
		t.Fatalf("New took %v to fail", el)
	}
	f := sqsFixture{s: localTarget(first), c: sqsClient(t, localTarget(first))}
	f.send(t, "taskiq", "still serving")
}
