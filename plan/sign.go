package plan

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
)

// Signature is an Ed25519 signature over a task's signed payload, made by a
// submitter's private key and checked by workers with public keys only, so
// that a worker's credentials cannot forge work for other workers.
type Signature struct {
	// Key names the public key that verifies the signature (KeyID).
	Key string `json:"key"`
	// Ed25519 is the signature itself (base64 in JSON).
	Ed25519 []byte `json:"ed25519"`
}

// Errors of signature verification. Each is final for the task: a worker
// never runs it and moves its message to the dead-letter queue.
var (
	// ErrUnsigned is returned for a task that carries no signature while
	// the worker requires one.
	ErrUnsigned = errors.New("task is not signed")
	// ErrUnknownKey is returned for a signature by a key the worker does
	// not trust.
	ErrUnknownKey = errors.New("task is signed by an unknown key")
	// ErrBadSignature is returned for a signature that does not match the
	// task: it was edited, or the signature is forged.
	ErrBadSignature = errors.New("task signature does not match its content")
)

// signingDomain separates task signatures from any other use of the key.
const signingDomain = "taskiq-go task signature v1\n"

// SigningPayload is the exact byte string a task's signature covers: every
// field of the normalized task except the signature itself, in Go's
// deterministic JSON encoding (struct order, sorted map keys), after a
// domain prefix. Every field that decides what runs and where (id, argv,
// env, dir, timeout, attempts, queue, priority, group, labels, version) is
// covered, and so is every field added to Task later.
func SigningPayload(t *Task) ([]byte, error) {
	c := *t
	c.Sig = nil
	c.Normalize()
	body, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode task for signing: %w", err)
	}
	return append([]byte(signingDomain), body...), nil
}

// KeyID names a public key: the first 16 hex digits of its SHA-256, short
// enough to read in a log line and to pick the right key when several are
// trusted during a rotation.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SigningKey is a submitter's private key.
type SigningKey struct {
	id   string
	priv ed25519.PrivateKey
}

// ID names the key's public half.
func (k *SigningKey) ID() string { return k.id }

// Public returns the key's public half.
func (k *SigningKey) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// Sign sets t.Sig to a signature over SigningPayload(t). The task must be
// complete (id set, normalized) before it is signed: a change after
// signing makes the signature fail.
func (k *SigningKey) Sign(t *Task) error {
	payload, err := SigningPayload(t)
	if err != nil {
		return err
	}
	t.Sig = &Signature{Key: k.id, Ed25519: ed25519.Sign(k.priv, payload)}
	return nil
}

// Verifier checks task signatures against a set of trusted public keys;
// more than one key is trusted while keys are rotated.
type Verifier struct {
	keys map[string]ed25519.PublicKey
}

// NewVerifier trusts the given public keys.
func NewVerifier(keys ...ed25519.PublicKey) *Verifier {
	v := &Verifier{keys: make(map[string]ed25519.PublicKey, len(keys))}
	for _, k := range keys {
		v.keys[KeyID(k)] = k
	}
	return v
}

// KeyIDs lists the trusted keys' ids, for the worker's start-up log.
func (v *Verifier) KeyIDs() []string {
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	return ids
}

// Verify reports whether t carries a valid signature by a trusted key:
// nil, or one of ErrUnsigned, ErrUnknownKey, ErrBadSignature (wrapped with
// the key id where there is one).
func (v *Verifier) Verify(t *Task) error {
	if t.Sig == nil {
		return ErrUnsigned
	}
	pub, ok := v.keys[t.Sig.Key]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownKey, t.Sig.Key)
	}
	if len(t.Sig.Ed25519) != ed25519.SignatureSize {
		return fmt.Errorf("%w (key %s)", ErrBadSignature, t.Sig.Key)
	}
	payload, err := SigningPayload(t)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, payload, t.Sig.Ed25519) {
		return fmt.Errorf("%w (key %s)", ErrBadSignature, t.Sig.Key)
	}
	return nil
}

// PEM block types of the key files, the standard PKCS #8 and PKIX encodings
// (openssl reads and writes them too).
const (
	privatePEMType = "PRIVATE KEY"
	publicPEMType  = "PUBLIC KEY"
)

// GenerateKeyPair makes a new Ed25519 key pair and returns both halves as
// PEM files: the private one for submitters, the public one for workers.
func GenerateKeyPair(rand io.Reader) (privatePEM, publicPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: privatePEMType, Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: publicPEMType, Bytes: pubDER}), nil
}

// ParseSigningKey reads a private key file written by GenerateKeyPair (or
// `openssl genpkey -algorithm ed25519`).
func ParseSigningKey(data []byte) (*SigningKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != privatePEMType {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" file")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("malformed private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 private key")
	}
	return &SigningKey{id: KeyID(priv.Public().(ed25519.PublicKey)), priv: priv}, nil
}

// ParseVerifyKey reads a public key file written by GenerateKeyPair (or
// `openssl pkey -pubout`).
func ParseVerifyKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != publicPEMType {
		if block != nil && block.Type == privatePEMType {
			return nil, errors.New("is a private key; workers take the public key (the .pub file)")
		}
		return nil, errors.New("not a PEM \"PUBLIC KEY\" file")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("malformed public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("not an Ed25519 public key")
	}
	return pub, nil
}
