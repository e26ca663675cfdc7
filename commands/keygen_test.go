package commands

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/taskiq-go/taskiq-go/plan"
)

// The private key is created 0600 and the pair parses back into a key and
// the public half that verifies its signatures.
func TestWriteKeyPair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	id, err := writeKeyPair(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	privPEM, _ := os.ReadFile(path)
	pubPEM, _ := os.ReadFile(path + ".pub")
	k, err := plan.ParseSigningKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := plan.ParseVerifyKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != id || plan.KeyID(pub) != id {
		t.Errorf("key ids differ: printed %s, private %s, public %s", id, k.ID(), plan.KeyID(pub))
	}
	task := &plan.Task{ID: "x", Argv: []string{"true"}}
	if err := k.Sign(task); err != nil {
		t.Fatal(err)
	}
	if err := plan.NewVerifier(pub).Verify(task); err != nil {
		t.Fatal(err)
	}
}
