package devserver

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The state directory holds everything an endpoint keeps: a bolt file with
// the queues, their messages and the S3 object index, a folder of object
// bodies (one file each, written through a temporary file and a rename) and
// the credentials. Without Options.DataDir it is a private temporary
// directory removed by Close, so that nothing outlives the endpoint; with it,
// all of that survives a restart.
const (
	stateFile = "state.bolt"
	blobDir   = "objects"
	credFile  = "credentials.json"
)

// Bolt buckets. The state of queue N's messages lives in bucket "m/N" and
// their bodies in "b/N", keyed by sequence number (big-endian, so in send
// order); objects of bucket B in
// "o/B", keyed by object key (so a prefix is one cursor range).
var (
	bQueues  = []byte("queues")
	bBuckets = []byte("buckets")
)

func msgBucket(queue string) []byte  { return []byte("m/" + queue) }
func bodyBucket(queue string) []byte { return []byte("b/" + queue) }
func objBucket(bucket string) []byte { return []byte("o/" + bucket) }

func seqKey(seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return b[:]
}

// boltOpenTimeout bounds the wait for the bolt file lock, so that a second
// process pointed at the same DataDir fails fast instead of hanging.
const boltOpenTimeout = 2 * time.Second

// stateDir is an opened state directory.
type stateDir struct {
	path string
	temp bool // removed on close
	db   *bolt.DB
}

// tempStatePrefix names the temporary state directories (the rest of the
// name is MkdirTemp's random digits).
const tempStatePrefix = "taskiq-dev-"

// isTempStateName reports whether name is one of ours: the prefix and
// digits only, so that other taskiq-dev-* directories (dev's key pair) are
// never taken for one.
func isTempStateName(name string) bool {
	rest, ok := strings.CutPrefix(name, tempStatePrefix)
	return ok && rest != "" && strings.Trim(rest, "0123456789") == ""
}

func openState(dataDir string) (*stateDir, error) {
	sd := &stateDir{path: dataDir}
	if dataDir == "" {
		sweepLeftovers(os.TempDir())
		p, err := os.MkdirTemp("", tempStatePrefix)
		if err != nil {
			return nil, fmt.Errorf("devserver: create state dir: %w", err)
		}
		sd.path, sd.temp = p, true
	} else if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("devserver: create data dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(sd.path, blobDir), 0o700); err != nil {
		sd.cleanup()
		return nil, fmt.Errorf("devserver: create object dir: %w", err)
	}
	path := filepath.Join(sd.path, stateFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: boltOpenTimeout})
	if err != nil {
		sd.cleanup()
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("devserver: open %s: in use by another process: %w", path, err)
		}
		return nil, fmt.Errorf("devserver: open %s: %w", path, err)
	}
	// Every write still reaches the file before the call returns, so a
	// killed process loses nothing; only a machine crash could, which a
	// development endpoint may accept for not paying an fsync per message.
	db.NoSync = true
	db.NoFreelistSync = true
	sd.db = db
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bQueues, bBuckets} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = sd.close()
		return nil, fmt.Errorf("devserver: init %s: %w", path, err)
	}
	return sd, nil
}

func (sd *stateDir) cleanup() {
	if sd.temp {
		_ = os.RemoveAll(sd.path)
	}
}

func (sd *stateDir) close() error {
	var err error
	if sd.db != nil {
		if sd.db.NoSync {
			_ = sd.db.Sync()
		}
		err = sd.db.Close()
	}
	sd.cleanup()
	if err != nil {
		return fmt.Errorf("devserver: close state: %w", err)
	}
	return nil
}

// credentials returns the access key pair of this state directory, made and
// stored on first use: a new random pair per data dir (and per run without
// one), never a fixed string.
func (sd *stateDir) credentials() (Credentials, error) {
	path := filepath.Join(sd.path, credFile)
	if data, err := os.ReadFile(path); err == nil {
		var c Credentials
		if err := json.Unmarshal(data, &c); err != nil || c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return Credentials{}, fmt.Errorf("devserver: %s is damaged (delete it to make new credentials)", path)
		}
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Credentials{}, fmt.Errorf("devserver: read credentials: %w", err)
	}
	var id [8]byte
	var secret [24]byte
	_, _ = rand.Read(id[:])
	_, _ = rand.Read(secret[:])
	c := Credentials{AccessKeyID: "TQDEV" + hex.EncodeToString(id[:]), SecretAccessKey: hex.EncodeToString(secret[:])}
	data, _ := json.Marshal(c)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return Credentials{}, fmt.Errorf("devserver: write credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Credentials{}, fmt.Errorf("devserver: write credentials: %w", err)
	}
	return c, nil
}
