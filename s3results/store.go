// Package s3results is the store: task records, result records (written
// once), running and cancel markers, logs, claim-check payloads and worker
// heartbeats, all as S3 objects. The key layout lives in keys.go and nowhere
// else.
package s3results

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/taskiq-go/taskiq-go/internal/awserr"
	"github.com/taskiq-go/taskiq-go/plan"
)

// Store reads and writes task objects in one bucket under one prefix.
type Store struct {
	api    *s3.Client
	bucket string
	keys   Keys
}

// New wraps an SDK client for bucket and prefix.
func New(api *s3.Client, bucket, prefix string) *Store {
	return &Store{api: api, bucket: bucket, keys: Keys{Prefix: prefix}}
}

// Keys returns the key layout in use.
func (s *Store) Keys() Keys { return s.keys }

// Bucket names the bucket.
func (s *Store) Bucket() string { return s.bucket }

func (s *Store) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("s3 %s s3://%s/%s: %w", op, s.bucket, key, awserr.Classify(err))
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound", "404":
			return true
		}
	}
	return false
}

// errMissing marks a key that does not exist; callers turn it into the kind
// that fits (no such task, not finished).
var errMissing = errors.New("object does not exist")

// put writes data at key; with ifAbsent the write happens only when no object
// is there, and plan.ErrExists is returned otherwise.
func (s *Store) put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := s.api.PutObject(ctx, in)
	return s.wrap("put", key, err)
}

func (s *Store) putJSON(ctx context.Context, key string, v any, ifAbsent bool) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return s.put(ctx, key, data, ifAbsent)
}

func (s *Store) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("s3 get s3://%s/%s: %w", s.bucket, key, errMissing)
		}
		return nil, s.wrap("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, s.wrap("read", key, err)
	}
	return data, nil
}

func (s *Store) getJSON(ctx context.Context, key string, v any) error {
	data, err := s.get(ctx, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

func (s *Store) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, s.wrap("head", key, err)
}

func (s *Store) delete(ctx context.Context, key string) error {
	_, err := s.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil && !isNotFound(err) {
		return s.wrap("delete", key, err)
	}
	return nil
}

// list returns the keys under prefix; with delimiter "/" only the direct
// children (and no common prefixes).
func (s *Store) list(ctx context.Context, prefix, delimiter string) ([]string, error) {
	var keys []string
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	p := s3.NewListObjectsV2Paginator(s.api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// Check verifies that the bucket exists and is reachable.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), MaxKeys: aws.Int32(1), Prefix: aws.String(s.keys.TaskDir("_"))})
	return s.wrap("list", "", err)
}

// PutTask records a submitted task. It reports created=false, and no error,
// when a task with that id was submitted before: submit is idempotent by id.
func (s *Store) PutTask(ctx context.Context, t *plan.Task) (created bool, err error) {
	err = s.putJSON(ctx, s.keys.Task(t.ID), t, true)
	if errors.Is(err, plan.ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// GetTask reads a submitted task; plan.ErrTaskNotFound when there is none.
func (s *Store) GetTask(ctx context.Context, id string) (*plan.Task, error) {
	data, err := s.get(ctx, s.keys.Task(id))
	if errors.Is(err, errMissing) {
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
	}
	if err != nil {
		return nil, err
	}
	return plan.DecodeTask(data)
}

// Withdraw removes a submitted task's record and group membership, for a
// task whose message could not be sent at all: it must not look queued.
func (s *Store) Withdraw(ctx context.Context, t *plan.Task) error {
	if t.Group != "" {
		if err := s.delete(ctx, s.keys.GroupMember(t.Group, t.ID)); err != nil {
			return err
		}
	}
	return s.delete(ctx, s.keys.Task(t.ID))
}

// AddToGroup records id as a member of group.
func (s *Store) AddToGroup(ctx context.Context, group, id string) error {
	return s.put(ctx, s.keys.GroupMember(group, id), nil, false)
}

// GroupIDs lists the ids of a group's tasks, in key order (which for
// generated ids is submission order).
func (s *Store) GroupIDs(ctx context.Context, group string) ([]string, error) {
	dir := s.keys.GroupDir(group)
	keys, err := s.list(ctx, dir, "")
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, strings.TrimPrefix(k, dir))
	}
	return ids, nil
}

// PutResult writes the final result; plan.ErrExists when another result was
// written first (the first one wins and is kept).
func (s *Store) PutResult(ctx context.Context, r *plan.Result) error {
	return s.putJSON(ctx, s.keys.Result(r.ID), r, true)
}

// GetResult reads the final result; plan.ErrNotFinished when there is none
// yet, plan.ErrTaskNotFound when the task does not exist at all.
func (s *Store) GetResult(ctx context.Context, id string) (*plan.Result, error) {
	data, err := s.get(ctx, s.keys.Result(id))
	if errors.Is(err, errMissing) {
		ok, herr := s.exists(ctx, s.keys.Task(id))
		if herr != nil {
			return nil, herr
		}
		if !ok {
			return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
		}
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrNotFinished)
	}
	if err != nil {
		return nil, err
	}
	return plan.DecodeResult(data)
}

// PutAttempt keeps the result of one attempt beside the final one.
func (s *Store) PutAttempt(ctx context.Context, r *plan.Result) error {
	return s.putJSON(ctx, s.keys.Attempt(r.ID, r.Attempt), r, false)
}

// Claim takes an attempt of a task for a worker; the claim doubles as the
// first running marker. It returns plan.ErrExists when another worker took
// that attempt first: one execution per attempt.
func (s *Store) Claim(ctx context.Context, r *plan.Running) error {
	return s.putJSON(ctx, s.keys.Claim(r.ID, r.Attempt), r, true)
}

// Unclaim gives an attempt back, for a task released without running to the
// end (worker shutdown), so that the next worker takes the same attempt.
func (s *Store) Unclaim(ctx context.Context, id string, attempt int) error {
	return s.delete(ctx, s.keys.Claim(id, attempt))
}

// PutRunning writes (or refreshes) the running marker.
func (s *Store) PutRunning(ctx context.Context, r *plan.Running) error {
	return s.putJSON(ctx, s.keys.Running(r.ID), r, false)
}

// DeleteRunning removes the running marker.
func (s *Store) DeleteRunning(ctx context.Context, id string) error {
	return s.delete(ctx, s.keys.Running(id))
}

// PutCancel asks for a task to be stopped.
func (s *Store) PutCancel(ctx context.Context, c *plan.Cancel) error {
	return s.putJSON(ctx, s.keys.Cancel(c.ID), c, false)
}

// CancelRequested reports whether a cancel marker exists for id.
func (s *Store) CancelRequested(ctx context.Context, id string) (bool, error) {
	return s.exists(ctx, s.keys.Cancel(id))
}

// PutLog stores one stream of an attempt's output and returns its key. The
// body must be seekable so that the request can be signed and retried.
func (s *Store) PutLog(ctx context.Context, id string, attempt int, stream string, body io.ReadSeeker, size int64) (string, error) {
	key := s.keys.Log(id, attempt, stream)
	_, err := s.api.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String("application/octet-stream"),
	})
	return key, s.wrap("put", key, err)
}

// OpenLog streams a stored log object.
func (s *Store) OpenLog(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return out.Body, nil
}

// PutWorker writes a worker's heartbeat record.
func (s *Store) PutWorker(ctx context.Context, workerID string, v any) error {
	return s.putJSON(ctx, s.keys.Worker(workerID), v, false)
}

// Workers reads every worker heartbeat record, raw: their shape belongs to
// the worker package.
func (s *Store) Workers(ctx context.Context) ([][]byte, error) {
	keys, err := s.list(ctx, s.keys.WorkerDir(), "/")
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, k := range keys {
		data, err := s.get(ctx, k)
		if errors.Is(err, errMissing) {
			continue // stopped between the LIST and now
		}
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}

// DeleteWorker removes a worker's heartbeat record when it stops cleanly.
func (s *Store) DeleteWorker(ctx context.Context, workerID string) error {
	return s.delete(ctx, s.keys.Worker(workerID))
}

// Snapshot is what exists for one task, read with one LIST and at most one GET.
type Snapshot struct {
	Submitted bool
	Cancel    bool
	// Group is the task's group when known without another read.
	Group  string
	Result *plan.Result
	// Running is the marker of the attempt in progress: the running marker
	// when the worker has refreshed it, else the claim it wrote on start.
	Running *plan.Running
	// LastClaim is the highest attempt taken so far, and Attempts the
	// attempts that finished without ending the task.
	LastClaim int
	Attempts  []int
}

// Snapshot reads which of a task's records exist, and the result or running
// marker when there is one. plan.ErrTaskNotFound when nothing exists.
func (s *Store) Snapshot(ctx context.Context, id string) (*Snapshot, error) {
	keys, err := s.list(ctx, s.keys.TaskDir(id), "")
	if err != nil {
		return nil, err
	}
	var snap Snapshot
	var hasResult, hasRunning, any bool
	claimDir, attemptDir := s.keys.ClaimDir(id), path.Dir(s.keys.Attempt(id, 0))+"/"
	for _, k := range keys {
		any = true
		switch {
		case k == s.keys.Task(id):
			snap.Submitted = true
		case k == s.keys.Cancel(id):
			snap.Cancel = true
		case k == s.keys.Result(id):
			hasResult = true
		case k == s.keys.Running(id):
			hasRunning = true
		case strings.HasPrefix(k, claimDir):
			if n, err := strconv.Atoi(strings.TrimPrefix(k, claimDir)); err == nil && n > snap.LastClaim {
				snap.LastClaim = n
			}
		case strings.HasPrefix(k, attemptDir):
			if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(k, attemptDir), ".json")); err == nil {
				snap.Attempts = append(snap.Attempts, n)
			}
		}
	}
	if !any {
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
	}
	if hasResult {
		r, err := s.GetResult(ctx, id)
		if err != nil {
			return nil, err
		}
		snap.Result = r
		return &snap, nil
	}
	if snap.LastClaim == 0 || slices.Contains(snap.Attempts, snap.LastClaim) {
		// Queued, or waiting to be retried: the task record has the group.
		if t, err := s.GetTask(ctx, id); err == nil {
			snap.Group = t.Group
		}
		return &snap, nil
	}
	key := s.keys.Claim(id, snap.LastClaim)
	if hasRunning {
		key = s.keys.Running(id)
	}
	r := new(plan.Running)
	err = s.getJSON(ctx, key, r)
	if errors.Is(err, errMissing) {
		return &snap, nil // finished or released between the LIST and now
	}
	if err != nil {
		return nil, err
	}
	if r.Attempt == snap.LastClaim {
		snap.Running = r
		snap.Group = r.Group
	}
	return &snap, nil
}

// Status reports one task's state. A running marker whose heartbeat is
// older than its StaleAfter makes the task lost.
func (s *Store) Status(ctx context.Context, id string, now time.Time) (plan.Status, error) {
	snap, err := s.Snapshot(ctx, id)
	if err != nil {
		return plan.Status{ID: id}, err
	}
	return snap.Status(id, now), nil
}

// Status derives a task's state from what exists for it.
func (snap *Snapshot) Status(id string, now time.Time) plan.Status {
	st := plan.Status{ID: id, State: plan.StateQueued, Group: snap.Group}
	switch {
	case snap.Result != nil:
		r := snap.Result
		st.State, st.ExitCode, st.Worker, st.Attempt = r.State, r.ExitCode, r.Worker, r.Attempt
		st.Group, st.Error, st.FinishedAt = r.Group, r.Error, r.FinishedAt
	case snap.Running != nil:
		r := snap.Running
		st.State, st.Worker, st.Attempt, st.HeartbeatAt = plan.StateRunning, r.Worker, r.Attempt, r.HeartbeatAt
		if now.Sub(r.HeartbeatAt) > r.StaleAfter() {
			st.State = plan.StateLost
		}
	}
	return st
}

// Statuses reports many tasks' states, reading up to 16 at once.
func (s *Store) Statuses(ctx context.Context, ids []string, now time.Time) ([]plan.Status, []error) {
	out := make([]plan.Status, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = s.Status(ctx, id, now)
		}()
	}
	wg.Wait()
	return out, errs
}

// GetAttempt reads the result record of one earlier attempt.
func (s *Store) GetAttempt(ctx context.Context, id string, attempt int) (*plan.Result, error) {
	data, err := s.get(ctx, s.keys.Attempt(id, attempt))
	if errors.Is(err, errMissing) {
		return nil, fmt.Errorf("task %s attempt %d: %w", id, attempt, plan.ErrTaskNotFound)
	}
	if err != nil {
		return nil, err
	}
	return plan.DecodeResult(data)
}

// GetClaim reads the claim a worker wrote when it took an attempt.
func (s *Store) GetClaim(ctx context.Context, id string, attempt int) (*plan.Running, error) {
	r := new(plan.Running)
	err := s.getJSON(ctx, s.keys.Claim(id, attempt), r)
	if errors.Is(err, errMissing) {
		return nil, fmt.Errorf("task %s attempt %d: %w", id, attempt, plan.ErrTaskNotFound)
	}
	return r, err
}

// Groups lists the names of the groups that have tasks, in key order, up
// to max of them: one LIST page per thousand groups, never their members.
func (s *Store) Groups(ctx context.Context, max int) (names []string, more bool, err error) {
	dir := s.keys.join("groups") + "/"
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(dir), Delimiter: aws.String("/")}
	p := s3.NewListObjectsV2Paginator(s.api, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return names, false, s.wrap("list", dir, err)
		}
		for _, cp := range page.CommonPrefixes {
			if len(names) == max {
				return names, true, nil
			}
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), dir), "/"))
		}
	}
	return names, false, nil
}
