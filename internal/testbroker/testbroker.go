// Package testbroker is an in-memory queue and store for unit tests of the
// lifecycle and the worker: the queue keeps SQS's visibility and receive
// counts, the store keeps the typed objects of s3results, and both can be
// made to fail one operation or to go down altogether (asynq's testbroker
// is the model).
package testbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// ErrDown is what every call returns while a fake is down.
var ErrDown = fmt.Errorf("testbroker: endpoint down: %w", plan.ErrUnreachable)

// faults is the failure switch shared by both fakes.
type faults struct {
	mu   sync.Mutex
	down bool
	// fail maps an operation name to the errors its next calls return.
	fail  map[string][]error
	calls map[string]int
}

func (f *faults) check(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	if f.down {
		return ErrDown
	}
	if errs := f.fail[op]; len(errs) > 0 {
		f.fail[op] = errs[1:]
		return errs[0]
	}
	return nil
}

// SetDown makes every call fail with ErrDown (true) or work again (false).
func (f *faults) SetDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// FailNext makes the next calls of op return errs, one each.
func (f *faults) FailNext(op string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string][]error{}
	}
	f.fail[op] = append(f.fail[op], errs...)
}

// Calls reports how many times op was called (failed calls included).
func (f *faults) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Store is an in-memory store with the methods of s3results.Store that the
// lifecycle and the worker use.
type Store struct {
	faults
	mu    sync.Mutex
	tasks map[string]*plan.Task
	// indexed holds the records kept in index chunks (generated ids with
	// no task.json), as GetIndexed finds them.
	indexed map[string]*plan.Task
	groups  map[string][]string
	// groupEnds holds the end keys of each group, as GroupEnd names them.
	groupEnds map[string]map[string]bool
	results   map[string]*plan.Result
	claims    map[string]map[int]plan.Running
	running   map[string]map[int]plan.Running
	attempts  map[string]map[int]*plan.Result
	cancels   map[string]plan.Cancel
	refused   map[string]s3results.DeadLettered
	logs      map[string][]byte
	workers   map[string]any
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		tasks: map[string]*plan.Task{}, indexed: map[string]*plan.Task{}, groups: map[string][]string{}, results: map[string]*plan.Result{},
		claims: map[string]map[int]plan.Running{}, running: map[string]map[int]plan.Running{},
		attempts: map[string]map[int]*plan.Result{}, cancels: map[string]plan.Cancel{}, refused: map[string]s3results.DeadLettered{},
		logs: map[string][]byte{}, workers: map[string]any{},
	}
}

func keysOf[V any](m map[int]V) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// List implements s3results.Store.List.
func (s *Store) List(ctx context.Context, id string) (*s3results.Objects, error) {
	if err := s.check("list"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &s3results.Objects{Claims: keysOf(s.claims[id]), Running: keysOf(s.running[id]), Attempts: keysOf(s.attempts[id])}
	_, o.Submitted = s.tasks[id]
	_, o.Cancel = s.cancels[id]
	_, o.DeadLetter = s.refused[id]
	_, o.Result = s.results[id]
	o.Any = o.Submitted || o.Cancel || o.Result || o.DeadLetter || len(o.Claims)+len(o.Running)+len(o.Attempts) > 0
	return o, nil
}

// GetTask implements s3results.Store.GetTask: a generated id's index
// chunk first, then its task.json.
func (s *Store) GetTask(ctx context.Context, id string) (*plan.Task, error) {
	if _, ok := plan.ParseGeneratedID(id); ok {
		t, err := s.GetIndexed(ctx, id)
		if !errors.Is(err, plan.ErrTaskNotFound) {
			return t, err
		}
	}
	return s.GetStoredTask(ctx, id)
}

// GetIndexed implements s3results.Store.GetIndexed.
func (s *Store) GetIndexed(ctx context.Context, id string) (*plan.Task, error) {
	if _, ok := plan.ParseGeneratedID(id); !ok {
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
	}
	if err := s.check("get_index"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.indexed[id]
	if !ok {
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
	}
	c := *t
	return &c, nil
}

// PutIndexed records t as a submit call's index chunk does for a generated
// id inline in its message: no task.json.
func (s *Store) PutIndexed(t *plan.Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *t
	s.indexed[t.ID] = &c
}

// Unindex takes t's index record back, as a submit whose message was not
// sent does.
func (s *Store) Unindex(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.indexed, id)
}

// HasStoredTask reports whether id has a task.json.
func (s *Store) HasStoredTask(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.tasks[id]
	return ok
}

// GetStoredTask implements s3results.Store.GetStoredTask.
func (s *Store) GetStoredTask(ctx context.Context, id string) (*plan.Task, error) {
	if err := s.check("get_task"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return nil, fmt.Errorf("task %s: %w", id, plan.ErrTaskNotFound)
	}
	c := *t
	return &c, nil
}

// PutTask implements s3results.Store.PutTask.
func (s *Store) PutTask(ctx context.Context, t *plan.Task) (bool, error) {
	if err := s.check("put_task"); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[t.ID]; ok {
		return false, nil
	}
	c := *t
	s.tasks[t.ID] = &c
	return true, nil
}

// AddToGroup implements s3results.Store.AddToGroup.
func (s *Store) AddToGroup(ctx context.Context, group, id string) error {
	if err := s.check("add_to_group"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.groups[group], id) {
		s.groups[group] = append(s.groups[group], id)
	}
	return nil
}

// Members lists the ids recorded as members of group, in the order added.
func (s *Store) Members(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.groups[group])
}

// RemoveFromGroup implements s3results.Store.RemoveFromGroup.
func (s *Store) RemoveFromGroup(ctx context.Context, group, id string) error {
	if err := s.check("remove_from_group"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[group] = slices.DeleteFunc(s.groups[group], func(m string) bool { return m == id })
	return nil
}

// GetResult implements s3results.Store.GetResult.
func (s *Store) GetResult(ctx context.Context, id string) (*plan.Result, error) {
	if err := s.check("get_result"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.results[id]
	if !ok {
		return nil, s3results.ErrNoObject
	}
	c := *r
	return &c, nil
}

// PutResult implements s3results.Store.PutResult: the first one wins.
func (s *Store) PutResult(ctx context.Context, r *plan.Result) error {
	if err := s.check("put_result"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.results[r.ID]; ok {
		return plan.ErrExists
	}
	c := *r
	s.results[r.ID] = &c
	return nil
}

func getAttempt(m map[string]map[int]plan.Running, id string, attempt int) (*plan.Running, error) {
	r, ok := m[id][attempt]
	if !ok {
		return nil, s3results.ErrNoObject
	}
	return &r, nil
}

func putAttempt(m map[string]map[int]plan.Running, r *plan.Running, ifAbsent bool) error {
	if m[r.ID] == nil {
		m[r.ID] = map[int]plan.Running{}
	}
	if _, ok := m[r.ID][r.Attempt]; ok && ifAbsent {
		return plan.ErrExists
	}
	m[r.ID][r.Attempt] = *r
	return nil
}

// GetRunning implements s3results.Store.GetRunning.
func (s *Store) GetRunning(ctx context.Context, id string, attempt int) (*plan.Running, error) {
	if err := s.check("get_running"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return getAttempt(s.running, id, attempt)
}

// GetClaim implements s3results.Store.GetClaim.
func (s *Store) GetClaim(ctx context.Context, id string, attempt int) (*plan.Running, error) {
	if err := s.check("get_claim"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return getAttempt(s.claims, id, attempt)
}

// Claim implements s3results.Store.Claim: conditional, per attempt.
func (s *Store) Claim(ctx context.Context, r *plan.Running) error {
	if err := s.check("claim"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return putAttempt(s.claims, r, true)
}

// Unclaim implements s3results.Store.Unclaim.
func (s *Store) Unclaim(ctx context.Context, id string, attempt int) error {
	if err := s.check("unclaim"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.claims[id], attempt)
	return nil
}

// PutRunning implements s3results.Store.PutRunning.
func (s *Store) PutRunning(ctx context.Context, r *plan.Running) error {
	if err := s.check("put_running"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return putAttempt(s.running, r, false)
}

// DeleteRunning implements s3results.Store.DeleteRunning.
func (s *Store) DeleteRunning(ctx context.Context, id string, attempt int) error {
	if err := s.check("delete_running"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running[id], attempt)
	return nil
}

// PutCancel implements s3results.Store.PutCancel.
func (s *Store) PutCancel(ctx context.Context, c *plan.Cancel) error {
	if err := s.check("put_cancel"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancels[c.ID] = *c
	return nil
}

// CancelRequested implements s3results.Store.CancelRequested.
func (s *Store) CancelRequested(ctx context.Context, id string) (bool, error) {
	if err := s.check("cancel_check"); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.cancels[id]
	return ok, nil
}

// PutAttempt implements s3results.Store.PutAttempt.
func (s *Store) PutAttempt(ctx context.Context, r *plan.Result) error {
	if err := s.check("put_attempt"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attempts[r.ID] == nil {
		s.attempts[r.ID] = map[int]*plan.Result{}
	}
	c := *r
	s.attempts[r.ID][r.Attempt] = &c
	return nil
}

// PutLog implements s3results.Store.PutLog.
func (s *Store) PutLog(ctx context.Context, id string, attempt int, stream string, body io.ReadSeeker, size int64) (string, error) {
	if err := s.check("put_log"); err != nil {
		return "", err
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s/%d/%s", id, attempt, stream)
	s.mu.Lock()
	s.logs[key] = data
	s.mu.Unlock()
	return key, nil
}

// PutWorker implements s3results.Store.PutWorker.
func (s *Store) PutWorker(ctx context.Context, workerID string, v any) error {
	if err := s.check("put_worker"); err != nil {
		return err
	}
	s.mu.Lock()
	s.workers[workerID] = v
	s.mu.Unlock()
	return nil
}

// DeleteWorker implements s3results.Store.DeleteWorker.
func (s *Store) DeleteWorker(ctx context.Context, workerID string) error {
	if err := s.check("delete_worker"); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.workers, workerID)
	s.mu.Unlock()
	return nil
}

// Check implements s3results.Store.Check.
func (s *Store) Check(ctx context.Context) error { return s.check("check") }

// Result is the stored final result of id, or nil.
func (s *Store) Result(id string) *plan.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.results[id]
}

// Attempt is the stored record of one attempt of id, or nil.
func (s *Store) Attempt(id string, attempt int) *plan.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[id][attempt]
}

// Claims lists the attempts of id that have a claim.
func (s *Store) Claims(id string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return keysOf(s.claims[id])
}

// message is one message in a fake queue.
type message struct {
	id, body     string
	visibleAt    time.Time
	receipt      string
	receiveCount int
	attrs        map[string]string
}

// Queue is an in-memory SQS with the methods the worker uses. Receive does
// not long-poll: it returns at once (after a short pause when empty, so that
// a worker loop does not spin).
type Queue struct {
	faults
	mu     sync.Mutex
	queues map[string][]*message
	seq    int
	// Now is the queue's clock (default time.Now).
	Now func() time.Time
	// MaxReceive is every queue's redrive limit (0: none). The fake does
	// not move messages itself: tests look at what a worker does with a
	// message's last delivery.
	MaxReceive int
}

// MaxReceiveCount implements sqs.Client.MaxReceiveCount.
func (q *Queue) MaxReceiveCount(ctx context.Context, queueURL string) (int, error) {
	if err := q.check("get_queue_attributes"); err != nil {
		return 0, err
	}
	return q.MaxReceive, nil
}

// Stats implements sqs.Client.Stats: every message a queue holds counts as
// visible or in flight.
func (q *Queue) Stats(ctx context.Context, queueURL string) (sqs.Stats, error) {
	if err := q.check("get_queue_attributes"); err != nil {
		return sqs.Stats{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var st sqs.Stats
	now := q.Now()
	for _, m := range q.queues[queueURL] {
		if m.visibleAt.After(now) {
			st.InFlight++
		} else {
			st.Visible++
		}
	}
	return st, nil
}

// NewQueue returns an empty queue set.
func NewQueue() *Queue { return &Queue{queues: map[string][]*message{}, Now: time.Now} }

func (q *Queue) next() string { q.seq++; return fmt.Sprintf("m%d", q.seq) }

// Send implements sqs.Client.Send.
func (q *Queue) Send(ctx context.Context, queueURL string, e sqs.Entry) (string, error) {
	if err := q.check("send"); err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m := &message{id: q.next(), body: e.Body, attrs: e.Attributes, visibleAt: q.Now().Add(e.Delay)}
	q.queues[queueURL] = append(q.queues[queueURL], m)
	return m.id, nil
}

// SendBatch implements sqs.Client.SendBatch.
func (q *Queue) SendBatch(ctx context.Context, queueURL string, entries []sqs.Entry) ([]error, error) {
	errs := make([]error, len(entries))
	for i, e := range entries {
		if _, err := q.Send(ctx, queueURL, e); err != nil {
			if i == 0 {
				return nil, err
			}
			errs[i] = err
		}
	}
	return errs, nil
}

// Receive implements sqs.Client.Receive.
func (q *Queue) Receive(ctx context.Context, queueURL string, max int, wait, visibility time.Duration) ([]sqs.Message, error) {
	if err := q.check("receive"); err != nil {
		return nil, err
	}
	q.mu.Lock()
	now := q.Now()
	var out []sqs.Message
	for _, m := range q.queues[queueURL] {
		if len(out) >= max {
			break
		}
		if m.visibleAt.After(now) {
			continue
		}
		m.receiveCount++
		m.receipt = q.next()
		m.visibleAt = now.Add(visibility)
		out = append(out, sqs.Message{QueueURL: queueURL, MessageID: m.id, Body: m.body, ReceiptHandle: m.receipt,
			ReceiveCount: m.receiveCount, Attributes: m.attrs})
	}
	q.mu.Unlock()
	if len(out) == 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(wait, 20*time.Millisecond)):
		}
	}
	return out, nil
}

func (q *Queue) byReceipt(queueURL, receipt string) (int, *message) {
	for i, m := range q.queues[queueURL] {
		if m.receipt == receipt {
			return i, m
		}
	}
	return -1, nil
}

// ErrBadReceipt is returned for a receipt that no longer names a message in
// flight: permanent, as SQS's ReceiptHandleIsInvalid is.
var ErrBadReceipt = fmt.Errorf("testbroker: receipt handle is invalid: %w", sqs.ErrPermanent)

// Expire makes the receipt of message id (as Send returned it) invalid, as
// when its visibility ran out and another receive took it.
func (q *Queue) Expire(queueURL, id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.queues[queueURL] {
		if m.id == id {
			m.receipt = q.next()
		}
	}
}

// SetVisibility implements sqs.Client.SetVisibility.
// ExpireAndHide is Expire, and keeps the message hidden for d more: a
// lease lost for good whose message does not come back during a test.
func (q *Queue) ExpireAndHide(queueURL, id string, d time.Duration) {
	q.Expire(queueURL, id)
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.queues[queueURL] {
		if m.id == id {
			m.visibleAt = q.Now().Add(d)
		}
	}
}

// SetVisibility implements sqs.Client.SetVisibility.
func (q *Queue) SetVisibility(ctx context.Context, queueURL, receipt string, d time.Duration) error {
	if err := q.check("set_visibility"); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	_, m := q.byReceipt(queueURL, receipt)
	if m == nil {
		return ErrBadReceipt
	}
	m.visibleAt = q.Now().Add(d)
	return nil
}

// ChangeVisibilities implements sqs.Client.ChangeVisibilities, counting
// one "set_visibility_batch" call per ten entries.
func (q *Queue) ChangeVisibilities(ctx context.Context, queueURL string, changes []sqs.VisibilityChange) ([]error, error) {
	errs := make([]error, len(changes))
	for start := 0; start < len(changes); start += sqs.MaxBatch {
		if err := q.check("set_visibility_batch"); err != nil {
			return errs, err
		}
		q.mu.Lock()
		for i := start; i < min(start+sqs.MaxBatch, len(changes)); i++ {
			_, m := q.byReceipt(queueURL, changes[i].Receipt)
			if m == nil {
				errs[i] = ErrBadReceipt
				continue
			}
			m.visibleAt = q.Now().Add(changes[i].D)
		}
		q.mu.Unlock()
	}
	return errs, nil
}

// DeleteBatch implements sqs.Client.DeleteBatch.
func (q *Queue) DeleteBatch(ctx context.Context, queueURL string, receipts []string) ([]error, error) {
	if err := q.check("delete"); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	errs := make([]error, len(receipts))
	for k, r := range receipts {
		i, _ := q.byReceipt(queueURL, r)
		if i < 0 {
			errs[k] = ErrBadReceipt
			continue
		}
		q.queues[queueURL] = slices.Delete(q.queues[queueURL], i, i+1)
	}
	return errs, nil
}

// Len is how many messages queueURL holds, visible or not.
func (q *Queue) Len(queueURL string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queues[queueURL])
}

// ReceiveCount is the receive count of the message of task id (matched on
// its taskiq_id attribute), or -1.
func (q *Queue) ReceiveCount(queueURL, id string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.queues[queueURL] {
		if m.attrs["taskiq_id"] == id {
			return m.receiveCount
		}
	}
	return -1
}

// PutDeadLetter implements s3results.Store.PutDeadLetter.
func (s *Store) PutDeadLetter(ctx context.Context, d *s3results.DeadLettered) error {
	if err := s.check("put_dead_letter"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[d.ID] = *d
	return nil
}

// RecentCancels implements s3results.Store.RecentCancels from the cancel
// markers, whose notices s3results writes with them.
func (s *Store) RecentCancels(ctx context.Context, since time.Time, maxKeys int) (map[string]bool, bool, error) {
	if err := s.check("list_cancels"); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := map[string]bool{}
	for id, c := range s.cancels {
		if !c.RequestedAt.Before(since) {
			ids[id] = true
		}
	}
	if len(ids) > maxKeys {
		return nil, false, nil
	}
	return ids, true, nil
}

// CreateDeadLetter implements s3results.Store.CreateDeadLetter.
func (s *Store) CreateDeadLetter(ctx context.Context, d *s3results.DeadLettered) error {
	if err := s.check("create_dead_letter"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.refused[d.ID]; ok {
		return plan.ErrExists
	}
	s.refused[d.ID] = *d
	return nil
}

// DeleteDeadLetter implements s3results.Store.DeleteDeadLetter.
func (s *Store) DeleteDeadLetter(ctx context.Context, id string) error {
	if err := s.check("delete_dead_letter"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refused, id)
	return nil
}

// GetDeadLetter implements s3results.Store.GetDeadLetter.
func (s *Store) GetDeadLetter(ctx context.Context, id string) (*s3results.DeadLettered, error) {
	if err := s.check("get_dead_letter"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.refused[id]
	if !ok {
		return nil, s3results.ErrNoObject
	}
	return &d, nil
}

// WorkerStop implements s3results.Store.WorkerStop: no stop requests here.
func (s *Store) WorkerStop(ctx context.Context, workerID string) (*s3results.WorkerStopRequest, error) {
	if err := s.check("get_worker_stop"); err != nil {
		return nil, err
	}
	return nil, nil
}

// DeleteWorkerStop implements s3results.Store.DeleteWorkerStop.
func (s *Store) DeleteWorkerStop(ctx context.Context, workerID string) error {
	return s.check("delete_worker_stop")
}
