package s3results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taskiq-go/taskiq-go/plan"
)

// The history index: a few objects per submit call (not one per task),
// named so that a LIST returns the newest first and says when each was
// written without reading it:
//
//	PREFIX/index/INVERTED-MILLIS-NONCE-CHUNK.json   the tasks one submit call recorded
//
// INVERTED-MILLIS is indexEpochEnd minus the Unix milliseconds of the
// submit, zero-padded, so that key order is newest first; NONCE is the
// call's (15 hex digits), CHUNK is 9999 minus the chunk's number, so that
// the later chunks of a call sort first. A chunk also carries the full
// record of each task with a generated id that fits a message: such a
// task has no task.json, and its id names its chunk and position
// (plan.GeneratedID), so that one GET finds it. A chunk is written when a
// task.json would have been, at submit, under the same prefix and so the
// same expiry rule (bucket.go): it lasts as long as the task's record did.
const indexEpochEnd = 9_999_999_999_999

// IndexDir is the prefix holding the history index.
func (k Keys) IndexDir() string { return k.join("index") + "/" }

// Index is the key of the index object of a submit made at t; nonce keeps
// two submits of the same millisecond apart.
func (k Keys) Index(t time.Time, nonce string) string {
	return k.join("index", fmt.Sprintf("%013d-%s.json", indexEpochEnd-t.UnixMilli(), nonce))
}

// IndexChunk is the key of chunk number chunk of the index of a submit
// call made at t with nonce.
func (k Keys) IndexChunk(t time.Time, nonce uint64, chunk int) string {
	return k.Index(t, fmt.Sprintf("%015x-%04d", nonce, 9999-chunk%10000))
}

// IndexOf is the key of the index chunk a generated id names.
func (k Keys) IndexOf(g plan.GeneratedID) string {
	return k.IndexChunk(time.UnixMilli(g.Millis), g.Nonce, g.Chunk)
}

// indexTime reads the submit time out of an index key.
func (k Keys) indexTime(key string) (time.Time, bool) {
	name := strings.TrimPrefix(key, k.IndexDir())
	inv, _, ok := strings.Cut(name, "-")
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(inv, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(indexEpochEnd - n).UTC(), true
}

// IndexEntry is one task in the history index: what a listing filters on
// without reading the task's own records.
type IndexEntry struct {
	ID          string            `json:"id"`
	Queue       string            `json:"queue,omitempty"`
	Group       string            `json:"group,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	SubmittedAt time.Time         `json:"submitted_at"`
	// Record is the task as submitted, for a task that has no task.json
	// (a generated id, inline in its message): readers find it here.
	Record json.RawMessage `json:"record,omitempty"`
}

// IndexBatch is one index object: the tasks one submit call recorded.
type IndexBatch struct {
	V     int          `json:"v"`
	At    time.Time    `json:"at"`
	Tasks []IndexEntry `json:"tasks"`
}

// PutIndex writes chunk number chunk of the index of one submit call
// (made at b.At with nonce). Written again with fewer tasks, it takes
// back those whose message was not sent.
func (s *Store) PutIndex(ctx context.Context, b *IndexBatch, nonce uint64, chunk int) error {
	b.V = plan.Version
	return s.putJSON(ctx, s.keys.IndexChunk(b.At, nonce, chunk), b, false)
}

// DeleteIndex removes an index chunk PutIndex wrote: a submit call that
// failed names no task in the history.
func (s *Store) DeleteIndex(ctx context.Context, at time.Time, nonce uint64, chunk int) error {
	return s.delete(ctx, s.keys.IndexChunk(at, nonce, chunk))
}

// GetIndexed reads the record of a task with a generated id from its
// submit call's index chunk, with one GET (none for an id that does not
// decode); plan.ErrTaskNotFound when the chunk does not hold it (an
// explicit id, a task whose record is its task.json, a task withdrawn or
// never submitted).
func (s *Store) GetIndexed(ctx context.Context, id string) (*plan.Task, error) {
	g, ok := plan.ParseGeneratedID(id)
	if !ok {
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
	}
	b, err := s.GetIndex(ctx, s.keys.IndexOf(g))
	if errors.Is(err, ErrNoObject) {
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
	}
	if err != nil {
		return nil, err
	}
	return b.record(id)
}

// record is the task id as the chunk b records it: at its position when
// the chunk was written whole, else wherever it is.
func (b *IndexBatch) record(id string) (*plan.Task, error) {
	var e *IndexEntry
	if g, _ := plan.ParseGeneratedID(id); g.Pos < len(b.Tasks) && b.Tasks[g.Pos].ID == id {
		e = &b.Tasks[g.Pos]
	} else {
		for i := range b.Tasks {
			if b.Tasks[i].ID == id {
				e = &b.Tasks[i]
				break
			}
		}
	}
	if e == nil || len(e.Record) == 0 {
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
	}
	t, err := plan.DecodeTask(e.Record)
	if err != nil {
		return nil, fmt.Errorf("task %s in its index chunk: %w", id, err)
	}
	if t.ID != id {
		return nil, fmt.Errorf("task %s: its index chunk records task %s there", id, t.ID)
	}
	return t, nil
}

// IndexKey is one index object as a LIST names it.
type IndexKey struct {
	Key string
	// At is when its submit call was made.
	At time.Time
}

// IndexKeys calls fn with the index objects newest first, one LIST page
// (up to a thousand) at a time, until fn returns false, the index ends or
// an object is older than since (zero: no bound).
func (s *Store) IndexKeys(ctx context.Context, since time.Time, fn func(IndexKey) (bool, error)) error {
	dir := s.keys.IndexDir()
	p := s3.NewListObjectsV2Paginator(s.api, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(dir)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.wrap("list", dir, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			at, ok := s.keys.indexTime(k)
			if !ok {
				continue
			}
			if !since.IsZero() && at.Before(since) {
				return nil
			}
			more, err := fn(IndexKey{Key: k, At: at})
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// GetIndex reads one index object; ErrNoObject when it has gone (expired
// between the LIST and now).
func (s *Store) GetIndex(ctx context.Context, key string) (*IndexBatch, error) {
	var b IndexBatch
	if err := s.getJSON(ctx, key, &b); err != nil {
		return nil, err
	}
	if b.V > plan.Version {
		return nil, fmt.Errorf("index object %s has version %d, newer than this binary's %d", key, b.V, plan.Version)
	}
	return &b, nil
}
