package plan

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func testKey(t *testing.T) (*SigningKey, []byte) {
	t.Helper()
	privPEM, pubPEM, err := GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseSigningKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	return k, pubPEM
}

func signedTask(t *testing.T, k *SigningKey) *Task {
	t.Helper()
	task := &Task{ID: "t1", Argv: []string{"echo", "hi"}, Env: map[string]string{"A": "1", "B": "2"},
		Dir: "/tmp", Timeout: Duration(90 * time.Second), MaxAttempts: 3, Queue: "gpu", Priority: 5,
		Group: "run-1", Labels: map[string]string{"k": "v"}, SubmittedAt: time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)}
	task.Normalize()
	if err := k.Sign(task); err != nil {
		t.Fatal(err)
	}
	return task
}

// A signed task survives the trip through JSON (the queue) and verifies.
func TestSignRoundTrip(t *testing.T) {
	k, pubPEM := testKey(t)
	pub, err := ParseVerifyKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(signedTask(t, k))
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeTask(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := NewVerifier(pub).Verify(back); err != nil {
		t.Fatalf("verify after round trip: %v", err)
	}
}

// Every field that decides what runs and where is covered: changing any
// one of them breaks the signature.
func TestSignCoversEveryField(t *testing.T) {
	k, _ := testKey(t)
	v := NewVerifier(k.Public())
	edits := map[string]func(*Task){
		"id":           func(t *Task) { t.ID = "t2" },
		"argv":         func(t *Task) { t.Argv = []string{"echo", "bye"} },
		"argv order":   func(t *Task) { t.Argv = []string{"hi", "echo"} },
		"env value":    func(t *Task) { t.Env["A"] = "x" },
		"env added":    func(t *Task) { t.Env["C"] = "3" },
		"dir":          func(t *Task) { t.Dir = "/" },
		"timeout":      func(t *Task) { t.Timeout = 0 },
		"max_attempts": func(t *Task) { t.MaxAttempts = 4 },
		"queue":        func(t *Task) { t.Queue = "cpu" },
		"priority":     func(t *Task) { t.Priority = 10 },
		"group":        func(t *Task) { t.Group = "run-2" },
		"labels":       func(t *Task) { t.Labels["k"] = "w" },
		"version":      func(t *Task) { t.V = 2 },
		"submitted_at": func(t *Task) { t.SubmittedAt = t.SubmittedAt.Add(time.Second) },
		"secrets":      func(t *Task) { t.Secrets = map[string]string{"S": "env:OTHER"} },
	}
	for name, edit := range edits {
		task := signedTask(t, k)
		edit(task)
		if err := v.Verify(task); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s edited: got %v, want ErrBadSignature", name, err)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	k, _ := testKey(t)
	other, _ := testKey(t)
	task := signedTask(t, k)

	unsigned := *task
	unsigned.Sig = nil
	if err := NewVerifier(k.Public()).Verify(&unsigned); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: %v", err)
	}
	if err := NewVerifier(other.Public()).Verify(task); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	// Rotation: the old and the new key are both trusted.
	if err := NewVerifier(other.Public(), k.Public()).Verify(task); err != nil {
		t.Errorf("rotation: %v", err)
	}
	// A signature made by another key but claiming this key's id.
	forged := *task
	forged.Sig = &Signature{Key: k.ID()}
	if err := other.Sign(&forged); err != nil {
		t.Fatal(err)
	}
	forged.Sig.Key = k.ID()
	if err := NewVerifier(k.Public()).Verify(&forged); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged: %v", err)
	}
	short := *task
	short.Sig = &Signature{Key: k.ID(), Ed25519: []byte{1, 2, 3}}
	if err := NewVerifier(k.Public()).Verify(&short); !errors.Is(err, ErrBadSignature) {
		t.Errorf("short signature: %v", err)
	}
}

func TestParseKeyErrors(t *testing.T) {
	privPEM, pubPEM, err := GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseVerifyKey(privPEM); err == nil {
		t.Error("a private key was taken as a verify key")
	}
	if _, err := ParseSigningKey(pubPEM); err == nil {
		t.Error("a public key was taken as a signing key")
	}
	if _, err := ParseSigningKey([]byte("garbage")); err == nil {
		t.Error("garbage was taken as a key")
	}
}
