//go:build unix

package devserver

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestSweepLeftovers starts an endpoint without DataDir beside the state
// directories a killed endpoint leaves behind: only the one whose state file
// is old and locked by nobody goes; a live endpoint's (locked), a fresh one,
// one without a state file and dev's key pair directory stay.
func TestSweepLeftovers(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	old := time.Now().Add(-2 * leftoverAge)
	age := func(p string) {
		t.Helper()
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	withState := func(name string) string {
		t.Helper()
		dir := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(dir, blobDir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, blobDir, "body"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(filepath.Join(dir, stateFile), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	killed := withState("taskiq-dev-111")
	age(filepath.Join(killed, stateFile))
	age(killed)
	fresh := withState("taskiq-dev-222")
	noState := filepath.Join(tmp, "taskiq-dev-333")
	keys := filepath.Join(tmp, "taskiq-dev-keys-444")
	for _, d := range []string{noState, keys} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		age(d)
	}
	killedKeys := withState("taskiq-dev-keys-555") // not a state dir's name
	age(filepath.Join(killedKeys, stateFile))
	age(killedKeys)

	live := startServer(t, Options{})
	if filepath.Dir(live.state.path) != tmp {
		t.Fatalf("state dir %s not in TMPDIR %s", live.state.path, tmp)
	}
	age(filepath.Join(live.state.path, stateFile))
	age(live.state.path)

	startServer(t, Options{})
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Fatalf("a killed endpoint's state dir stays: %v", err)
	}
	for _, d := range []string{live.state.path, fresh, noState, keys, killedKeys} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(d), err)
		}
	}
	// The live endpoint still works.
	if _, err := os.Stat(filepath.Join(live.state.path, blobDir)); err != nil {
		t.Fatal(err)
	}
	c := sqsClient(t, localTarget(live))
	f := sqsFixture{s: localTarget(live), c: c}
	f.send(t, "taskiq", "still here")
}
