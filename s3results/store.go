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
	"slices"
	"strconv"
	"strings"
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
	fast   *direct // PUTs and GETs of objects, when set up (see direct)
	bucket string
	keys   Keys
}

// New wraps an SDK client for bucket and prefix.
func New(api *s3.Client, bucket, prefix string) *Store {
	return &Store{api: api, fast: newDirect(api, bucket), bucket: bucket, keys: Keys{Prefix: prefix}}
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

// ErrNoObject marks a key that does not exist; the lifecycle turns it into
// the kind that fits (no such task, not finished, finished meanwhile).
var ErrNoObject = errors.New("object does not exist")

// put writes data at key; with ifAbsent the write happens only when no object
// is there, and plan.ErrExists is returned otherwise.
func (s *Store) put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	if s.fast != nil {
		return s.wrap("put", key, s.fast.put(ctx, key, data, ifAbsent))
	}
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
	if s.fast != nil {
		data, err := s.fast.get(ctx, key)
		if err != nil {
			if isNotFound(err) {
				return nil, fmt.Errorf("s3 get s3://%s/%s: %w", s.bucket, key, ErrNoObject)
			}
			return nil, s.wrap("get", key, err)
		}
		return data, nil
	}
	out, err := s.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("s3 get s3://%s/%s: %w", s.bucket, key, ErrNoObject)
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
// A generated id's record is looked for in its index chunk first (one GET,
// GetIndexed), then in its task.json (a task too large for a message, an
// explicit id that looks generated).
func (s *Store) GetTask(ctx context.Context, id string) (*plan.Task, error) {
	if _, ok := plan.ParseGeneratedID(id); ok {
		t, err := s.GetIndexed(ctx, id)
		if !errors.Is(err, plan.ErrTaskNotFound) {
			return t, err
		}
	}
	return s.GetStoredTask(ctx, id)
}

// GetStoredTask reads a task's task.json alone: the claim-check payload a
// pointer names, which a generated id's index chunk does not hold.
func (s *Store) GetStoredTask(ctx context.Context, id string) (*plan.Task, error) {
	data, err := s.get(ctx, s.keys.Task(id))
	if errors.Is(err, ErrNoObject) {
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

// RemoveFromGroup takes back id's membership of group.
func (s *Store) RemoveFromGroup(ctx context.Context, group, id string) error {
	return s.delete(ctx, s.keys.GroupMember(group, id))
}

// PutResult writes the final result; plan.ErrExists when another result was
// written first (the first one wins and is kept).
func (s *Store) PutResult(ctx context.Context, r *plan.Result) error {
	return s.putJSON(ctx, s.keys.Result(r.ID), r, true)
}

// GetResult reads the final result; ErrNoObject when there is none.
func (s *Store) GetResult(ctx context.Context, id string) (*plan.Result, error) {
	data, err := s.get(ctx, s.keys.Result(id))
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

// PutRunning writes (or refreshes) the running marker of r's attempt.
func (s *Store) PutRunning(ctx context.Context, r *plan.Running) error {
	return s.putJSON(ctx, s.keys.Running(r.ID, r.Attempt), r, false)
}

// DeleteRunning removes the running marker of one attempt: an attempt only
// ever touches its own.
func (s *Store) DeleteRunning(ctx context.Context, id string, attempt int) error {
	return s.delete(ctx, s.keys.Running(id, attempt))
}

// GetRunning reads the running marker of one attempt; ErrNoObject when
// there is none.
func (s *Store) GetRunning(ctx context.Context, id string, attempt int) (*plan.Running, error) {
	r := new(plan.Running)
	if err := s.getJSON(ctx, s.keys.Running(id, attempt), r); err != nil {
		return nil, err
	}
	return r, nil
}

// GetClaim reads the claim of one attempt; ErrNoObject when there is none.
func (s *Store) GetClaim(ctx context.Context, id string, attempt int) (*plan.Running, error) {
	r := new(plan.Running)
	if err := s.getJSON(ctx, s.keys.Claim(id, attempt), r); err != nil {
		return nil, err
	}
	return r, nil
}

// PutCancel asks for a task to be stopped: its cancel marker, then the
// notice a worker running several tasks lists (cancels.go).
func (s *Store) PutCancel(ctx context.Context, c *plan.Cancel) error {
	if err := s.putJSON(ctx, s.keys.Cancel(c.ID), c, false); err != nil {
		return err
	}
	return s.putCancelNotice(ctx, c.ID, c.RequestedAt)
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
		if errors.Is(err, ErrNoObject) {
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

// WorkerStopRequest asks a worker to shut down as on SIGTERM: it takes no
// new task and finishes the ones running. A worker started after
// RequestedAt ignores it, so a stale request never stops a new worker that
// reuses the id.
type WorkerStopRequest struct {
	Worker      string    `json:"worker"`
	RequestedAt time.Time `json:"requested_at"`
}

// PutWorkerStop stores a stop request for a worker.
func (s *Store) PutWorkerStop(ctx context.Context, req WorkerStopRequest) error {
	return s.putJSON(ctx, s.keys.WorkerStop(req.Worker), req, false)
}

// WorkerStop reads the stop request for a worker; nil when there is none.
func (s *Store) WorkerStop(ctx context.Context, workerID string) (*WorkerStopRequest, error) {
	var req WorkerStopRequest
	err := s.getJSON(ctx, s.keys.WorkerStop(workerID), &req)
	if errors.Is(err, ErrNoObject) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &req, nil
}

// DeleteWorkerStop removes a worker's stop request once it has stopped.
func (s *Store) DeleteWorkerStop(ctx context.Context, workerID string) error {
	return s.delete(ctx, s.keys.WorkerStop(workerID))
}

// Objects is what exists for one task, as one LIST of its prefix tells:
// no object is read.
type Objects struct {
	// Any is false when nothing at all exists for the task.
	Any       bool
	Submitted bool
	Cancel    bool
	Result    bool
	// DeadLetter is true when a worker refused the task's message.
	DeadLetter bool
	// Claims, Running and Attempts are the attempt numbers that have a
	// claim, a running marker and an attempt record, in ascending order.
	Claims   []int
	Running  []int
	Attempts []int
}

// LastClaim is the highest attempt taken so far (0 for none).
func (o *Objects) LastClaim() int {
	if len(o.Claims) == 0 {
		return 0
	}
	return o.Claims[len(o.Claims)-1]
}

// List tells which of a task's objects exist, with one LIST.
func (s *Store) List(ctx context.Context, id string) (*Objects, error) {
	keys, err := s.list(ctx, s.keys.TaskDir(id), "")
	if err != nil {
		return nil, err
	}
	o := new(Objects)
	claimDir, attemptDir, runningDir := s.keys.ClaimDir(id), s.keys.AttemptDir(id), s.keys.RunningDir(id)
	num := func(k, dir, suffix string) (int, bool) {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(k, dir), suffix))
		return n, err == nil
	}
	for _, k := range keys {
		o.Any = true
		switch {
		case k == s.keys.Task(id):
			o.Submitted = true
		case k == s.keys.Cancel(id):
			o.Cancel = true
		case k == s.keys.DeadLetter(id):
			o.DeadLetter = true
		case k == s.keys.Result(id):
			o.Result = true
		case strings.HasPrefix(k, claimDir):
			if n, ok := num(k, claimDir, ""); ok {
				o.Claims = append(o.Claims, n)
			}
		case strings.HasPrefix(k, runningDir):
			if n, ok := num(k, runningDir, ".json"); ok {
				o.Running = append(o.Running, n)
			}
		case strings.HasPrefix(k, attemptDir):
			if n, ok := num(k, attemptDir, ".json"); ok {
				o.Attempts = append(o.Attempts, n)
			}
		}
	}
	slices.Sort(o.Claims)
	slices.Sort(o.Running)
	slices.Sort(o.Attempts)
	return o, nil
}

// DeadLettered is the record of a task whose message went to the
// dead-letter queue: a worker refused it, or SQS moved it there after too
// many receives and a worker found it there.
type DeadLettered struct {
	ID     string          `json:"id"`
	Reason string          `json:"reason"`
	Worker plan.WorkerInfo `json:"worker"`
	At     time.Time       `json:"at"`
	// Attempt is the last attempt taken when the record was written (0 for
	// none): a later claim (the message redriven, or a copy of it) means
	// the record no longer tells the task's state.
	Attempt int `json:"attempt,omitempty"`
	// MessageID is the message's id in the dead-letter queue, when a worker
	// found it there.
	MessageID string `json:"message_id,omitempty"`
}

// PutDeadLetter records why a task's message went to the dead-letter queue.
func (s *Store) PutDeadLetter(ctx context.Context, d *DeadLettered) error {
	return s.putJSON(ctx, s.keys.DeadLetter(d.ID), d, false)
}

// CreateDeadLetter is PutDeadLetter only when no record exists
// (plan.ErrExists otherwise), so that workers finding the same dead letter
// agree on one record.
func (s *Store) CreateDeadLetter(ctx context.Context, d *DeadLettered) error {
	return s.putJSON(ctx, s.keys.DeadLetter(d.ID), d, true)
}

// DeleteDeadLetter removes the record, for a task whose message is put back
// on its queue.
func (s *Store) DeleteDeadLetter(ctx context.Context, id string) error {
	return s.delete(ctx, s.keys.DeadLetter(id))
}

// GetDeadLetter reads that record.
func (s *Store) GetDeadLetter(ctx context.Context, id string) (*DeadLettered, error) {
	var d DeadLettered
	if err := s.getJSON(ctx, s.keys.DeadLetter(id), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// GetAttempt reads the result record of one earlier attempt.
func (s *Store) GetAttempt(ctx context.Context, id string, attempt int) (*plan.Result, error) {
	data, err := s.get(ctx, s.keys.Attempt(id, attempt))
	if errors.Is(err, ErrNoObject) {
		return nil, fmt.Errorf("task %s attempt %d: %w", id, attempt, plan.ErrTaskNotFound)
	}
	if err != nil {
		return nil, err
	}
	return plan.DecodeResult(data)
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
