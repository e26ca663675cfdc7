package s3results

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taskiq-go/taskiq-go/plan"
)

// The history index: one object per submit call (not per task), named so
// that a LIST returns the newest first and says when each was written
// without reading it:
//
//	PREFIX/index/INVERTED-MILLIS-NONCE.json   the tasks one submit call recorded
//
// INVERTED-MILLIS is indexEpochEnd minus the Unix milliseconds of the
// submit, zero-padded, so that key order is newest first.
const indexEpochEnd = 9_999_999_999_999

// IndexDir is the prefix holding the history index.
func (k Keys) IndexDir() string { return k.join("index") + "/" }

// Index is the key of the index object of a submit made at t; nonce keeps
// two submits of the same millisecond apart.
func (k Keys) Index(t time.Time, nonce string) string {
	return k.join("index", fmt.Sprintf("%013d-%s.json", indexEpochEnd-t.UnixMilli(), nonce))
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
}

// IndexBatch is one index object: the tasks one submit call recorded.
type IndexBatch struct {
	V     int          `json:"v"`
	At    time.Time    `json:"at"`
	Tasks []IndexEntry `json:"tasks"`
}

// PutIndex writes the index object of one submit call.
func (s *Store) PutIndex(ctx context.Context, b *IndexBatch, nonce string) error {
	b.V = plan.Version
	return s.putJSON(ctx, s.keys.Index(b.At, nonce), b, false)
}

// DeleteIndex removes the index object PutIndex wrote for at and nonce:
// a submit call that failed names no task in the history.
func (s *Store) DeleteIndex(ctx context.Context, at time.Time, nonce string) error {
	return s.delete(ctx, s.keys.Index(at, nonce))
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
