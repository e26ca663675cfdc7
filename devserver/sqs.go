package devserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The SQS side: a small implementation of the JSON protocol (the one the Go
// SDK, the AWS CLI and boto3 speak) with what they use of it: queues (create,
// get URL, list, delete, purge, attributes with redrive policy, tags), send
// and batch, receive with long polling, visibility and receive counts,
// change visibility and batch, delete and batch, message attributes, delays,
// dead-letter source queues and message move tasks (redrive).
//
// All state is in the sqsService value, guarded by one mutex, and written
// through to the bolt file on every change, so that a restart with the same
// data dir finds queues and messages (with their visibility and receive
// counts) as they were.

const (
	sqsTargetPrefix = "AmazonSQS."
	jsonContentType = "application/x-amz-json-1.0"
	// maxSQSBody bounds a request body: ten 1 MiB messages plus JSON framing.
	maxSQSBody = 16 << 20
)

// sqsService is one endpoint's queues.
type sqsService struct {
	region, account string
	baseURL         string // scheme://host:port, for queue URLs
	db              *bolt.DB
	now             func() time.Time

	waiting atomic.Int32 // long polls waiting, for tests

	mu     sync.Mutex
	queues map[string]*queue
	wake   chan struct{} // closed and replaced when a message may have become visible
}

func newSQSService(db *bolt.DB, region, account string, now func() time.Time) (*sqsService, error) {
	s := &sqsService{region: region, account: account, db: db, now: now,
		queues: map[string]*queue{}, wake: make(chan struct{})}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bQueues).ForEach(func(k, v []byte) error {
			var meta queueMeta
			if err := json.Unmarshal(v, &meta); err != nil {
				return fmt.Errorf("queue %s: %w", k, err)
			}
			q := newQueue(meta)
			if b := tx.Bucket(msgBucket(meta.Name)); b != nil {
				if err := b.ForEach(func(_, v []byte) error {
					m := &message{}
					if err := json.Unmarshal(v, m); err != nil {
						return fmt.Errorf("queue %s: message: %w", meta.Name, err)
					}
					q.add(m)
					return nil
				}); err != nil {
					return err
				}
			}
			s.queues[meta.Name] = q
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("devserver: load queues: %w", err)
	}
	return s, nil
}

func (s *sqsService) queueURL(name string) string { return s.baseURL + "/" + s.account + "/" + name }
func (s *sqsService) queueArn(name string) string {
	return "arn:aws:sqs:" + s.region + ":" + s.account + ":" + name
}

func (s *sqsService) nowMs() int64 { return unixMs(s.now()) }

func (s *sqsService) woken() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wake
}

// wakeLocked tells long polls to look again; s.mu must be held.
func (s *sqsService) wakeLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// write is one bolt transaction of changes, built while s.mu is held.
type write struct {
	queues  []*queue
	drop    []string
	put     map[*queue][]*message
	del     map[*queue][]uint64
	bodies  []bodyPut
	moves   []bodyMove
	touched bool
}

type bodyPut struct {
	q    *queue
	seq  uint64
	body msgBody
}

// bodyMove carries a body from one queue's store to another's (redrive);
// a nil to only deletes it.
type bodyMove struct {
	from, to       *queue
	fromSeq, toSeq uint64
}

func (w *write) saveQueue(q *queue) { w.queues = append(w.queues, q); w.touched = true }
func (w *write) putMsg(q *queue, m *message) {
	if w.put == nil {
		w.put = map[*queue][]*message{}
	}
	w.put[q] = append(w.put[q], m)
	w.touched = true
}

// delMsg forgets m and its body.
func (w *write) delMsg(q *queue, m *message) {
	if w.del == nil {
		w.del = map[*queue][]uint64{}
	}
	w.del[q] = append(w.del[q], m.Seq)
	w.moves = append(w.moves, bodyMove{from: q, fromSeq: m.Seq})
	w.touched = true
}

func (w *write) putBody(q *queue, seq uint64, b msgBody) {
	w.bodies = append(w.bodies, bodyPut{q, seq, b})
	w.touched = true
}

// commit writes w; s.mu must be held so that writes land in order.
func (s *sqsService) commit(w *write) *sqsError {
	if !w.touched {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		qb := tx.Bucket(bQueues)
		for _, name := range w.drop {
			if err := qb.Delete([]byte(name)); err != nil {
				return err
			}
			for _, b := range [][]byte{msgBucket(name), bodyBucket(name)} {
				if tx.Bucket(b) != nil {
					if err := tx.DeleteBucket(b); err != nil {
						return err
					}
				}
			}
		}
		for _, bp := range w.bodies {
			b, err := tx.CreateBucketIfNotExists(bodyBucket(bp.q.meta.Name))
			if err != nil {
				return err
			}
			data, err := json.Marshal(bp.body)
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(bp.seq), data); err != nil {
				return err
			}
		}
		for _, mv := range w.moves {
			src := tx.Bucket(bodyBucket(mv.from.meta.Name))
			if src == nil {
				continue
			}
			if mv.to != nil {
				if data := src.Get(seqKey(mv.fromSeq)); data != nil {
					dst, err := tx.CreateBucketIfNotExists(bodyBucket(mv.to.meta.Name))
					if err != nil {
						return err
					}
					if err := dst.Put(seqKey(mv.toSeq), append([]byte(nil), data...)); err != nil {
						return err
					}
				}
			}
			if err := src.Delete(seqKey(mv.fromSeq)); err != nil {
				return err
			}
		}
		for _, q := range w.queues {
			data, err := json.Marshal(q.meta)
			if err != nil {
				return err
			}
			if err := qb.Put([]byte(q.meta.Name), data); err != nil {
				return err
			}
		}
		for q, seqs := range w.del {
			b := tx.Bucket(msgBucket(q.meta.Name))
			if b == nil {
				continue
			}
			for _, seq := range seqs {
				if err := b.Delete(seqKey(seq)); err != nil {
					return err
				}
			}
		}
		for q, msgs := range w.put {
			b, err := tx.CreateBucketIfNotExists(msgBucket(q.meta.Name))
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if m.deleted {
					continue
				}
				data, err := json.Marshal(m)
				if err != nil {
					return err
				}
				if err := b.Put(seqKey(m.Seq), data); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return &sqsError{"InternalError", "InternalError", 500, "store: " + err.Error()}
	}
	return nil
}

// ServeHTTP answers one JSON-protocol request (already authenticated).
func (s *sqsService) ServeHTTP(w http.ResponseWriter, r *http.Request, body []byte) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), sqsTargetPrefix)
	s.dispatch(r.Context(), action, body).write(w)
}

// handlers maps each action to its implementation.
var sqsActions = map[string]func(s *sqsService, ctx context.Context, body []byte) sqsResult{
	"CreateQueue":                  (*sqsService).createQueue,
	"GetQueueUrl":                  (*sqsService).getQueueURL,
	"ListQueues":                   (*sqsService).listQueues,
	"DeleteQueue":                  (*sqsService).deleteQueue,
	"PurgeQueue":                   (*sqsService).purgeQueue,
	"GetQueueAttributes":           (*sqsService).getQueueAttributes,
	"SetQueueAttributes":           (*sqsService).setQueueAttributes,
	"TagQueue":                     (*sqsService).tagQueue,
	"UntagQueue":                   (*sqsService).untagQueue,
	"ListQueueTags":                (*sqsService).listQueueTags,
	"SendMessage":                  (*sqsService).sendMessage,
	"SendMessageBatch":             (*sqsService).sendMessageBatch,
	"ReceiveMessage":               (*sqsService).receiveMessage,
	"DeleteMessage":                (*sqsService).deleteMessage,
	"DeleteMessageBatch":           (*sqsService).deleteMessageBatch,
	"ChangeMessageVisibility":      (*sqsService).changeVisibility,
	"ChangeMessageVisibilityBatch": (*sqsService).changeVisibilityBatch,
	"ListDeadLetterSourceQueues":   (*sqsService).listDeadLetterSourceQueues,
	"StartMessageMoveTask":         (*sqsService).startMessageMoveTask,
	"ListMessageMoveTasks":         (*sqsService).listMessageMoveTasks,
}

func (s *sqsService) dispatch(ctx context.Context, action string, body []byte) sqsResult {
	fn, ok := sqsActions[action]
	if !ok {
		return (&sqsError{"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", 400,
			"The local endpoint does not implement " + action + "."}).result()
	}
	return fn(s, ctx, body)
}

func ok(v any) sqsResult {
	b, err := json.Marshal(v)
	if err != nil {
		return errInternal(err).result()
	}
	return sqsResult{status: http.StatusOK, body: b}
}

func decode(body []byte, v any) *sqsError {
	if err := json.Unmarshal(body, v); err != nil {
		return (&sqsError{"InvalidParameterValue", "InvalidParameterValue", 400, "Malformed request: " + err.Error()})
	}
	return nil
}

func queueNameFromURL(u string) string { return u[strings.LastIndex(u, "/")+1:] }

// lookup finds the queue a QueueUrl names; s.mu must be held.
func (s *sqsService) lookup(queueURL string) (*queue, *sqsError) {
	if queueURL == "" {
		return nil, errMissingParameter("QueueUrl")
	}
	q, ok := s.queues[queueNameFromURL(queueURL)]
	if !ok {
		return nil, errQueueDoesNotExist()
	}
	return q, nil
}

// queueName is the pattern SQS accepts for a standard queue's name.
var queueName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func (s *sqsService) createQueue(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueName  string
		Attributes map[string]string
		Tags       map[string]string `json:"tags"`
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	if !queueName.MatchString(req.QueueName) {
		return errInvalidParameter("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length").result()
	}
	if e := checkQueueAttrs(req.Attributes); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, exists := s.queues[req.QueueName]; exists {
		for k, v := range req.Attributes {
			cur, set := q.meta.Attrs[k]
			if !set {
				cur = defaultQueueAttrs[k]
			}
			if cur != v {
				return (&sqsError{"QueueNameExists", "QueueAlreadyExists", 400,
					"A queue already exists with the same name and a different value for attribute " + k + "."}).result()
			}
		}
		return ok(map[string]string{"QueueUrl": s.queueURL(req.QueueName)})
	}
	now := s.nowMs()
	attrs := map[string]string{}
	for k, v := range req.Attributes {
		attrs[k] = v
	}
	q := newQueue(queueMeta{Name: req.QueueName, Attrs: attrs, Tags: req.Tags, Created: now / 1000, Modified: now / 1000})
	var w write
	w.saveQueue(q)
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	s.queues[req.QueueName] = q
	return ok(map[string]string{"QueueUrl": s.queueURL(req.QueueName)})
}

func (s *sqsService) getQueueURL(_ context.Context, body []byte) sqsResult {
	var req struct{ QueueName string }
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[req.QueueName]; !ok {
		return errQueueDoesNotExist().result()
	}
	return ok(map[string]string{"QueueUrl": s.queueURL(req.QueueName)})
}

// page applies MaxResults and NextToken (the last name of the previous page)
// to sorted names.
func page(names []string, max int, token string) (out []string, next string) {
	sort.Strings(names)
	if token != "" {
		i := sort.SearchStrings(names, token)
		if i < len(names) && names[i] == token {
			i++
		}
		names = names[i:]
	}
	if max > 0 && len(names) > max {
		return names[:max], names[max-1]
	}
	return names, ""
}

func (s *sqsService) listQueues(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueNamePrefix string
		MaxResults      int
		NextToken       string
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	var names []string
	for n := range s.queues {
		if strings.HasPrefix(n, req.QueueNamePrefix) {
			names = append(names, n)
		}
	}
	s.mu.Unlock()
	return s.urlPage(names, req.MaxResults, req.NextToken)
}

func (s *sqsService) urlPage(names []string, max int, token string) sqsResult {
	if max == 0 && len(names) > 1000 {
		max = 1000
	}
	names, next := page(names, max, token)
	urls := make([]string, 0, len(names))
	for _, n := range names {
		urls = append(urls, s.queueURL(n))
	}
	out := map[string]any{}
	if len(urls) > 0 {
		out["QueueUrls"] = urls
	}
	if next != "" {
		out["NextToken"] = next
	}
	return ok(out)
}

func (s *sqsService) deleteQueue(_ context.Context, body []byte) sqsResult {
	var req struct{ QueueUrl string }
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	w := write{drop: []string{q.meta.Name}, touched: true}
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	delete(s.queues, q.meta.Name)
	s.wakeLocked()
	return ok(struct{}{})
}

func (s *sqsService) purgeQueue(_ context.Context, body []byte) sqsResult {
	var req struct{ QueueUrl string }
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	// Dropping and re-creating the message bucket is one step whatever the
	// queue's depth.
	w := write{drop: []string{q.meta.Name}}
	w.saveQueue(q)
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	q.msgs, q.byID, q.deleted = nil, map[string]*message{}, 0
	return ok(struct{}{})
}

func (s *sqsService) getQueueAttributes(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueUrl       string
		AttributeNames []string
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	all := map[string]string{}
	for k, v := range defaultQueueAttrs {
		all[k] = v
	}
	for k, v := range q.meta.Attrs {
		if v != "" {
			all[k] = v
		}
	}
	vis, inflight, delayed := q.depth(s.nowMs())
	all["ApproximateNumberOfMessages"] = strconv.Itoa(vis)
	all["ApproximateNumberOfMessagesNotVisible"] = strconv.Itoa(inflight)
	all["ApproximateNumberOfMessagesDelayed"] = strconv.Itoa(delayed)
	all["QueueArn"] = s.queueArn(q.meta.Name)
	all["CreatedTimestamp"] = strconv.FormatInt(q.meta.Created, 10)
	all["LastModifiedTimestamp"] = strconv.FormatInt(q.meta.Modified, 10)
	if _, set := all["SqsManagedSseEnabled"]; !set {
		all["SqsManagedSseEnabled"] = "false"
	}
	out := map[string]string{}
	for _, n := range req.AttributeNames {
		if n == "All" {
			out = all
			break
		}
		if v, ok := all[n]; ok {
			out[n] = v
		} else if _, known := attrLimits[n]; !known && !settableAttrs[n] && !strings.HasPrefix(n, "Approximate") {
			return errInvalidAttributeName("Unknown Attribute " + n + ".").result()
		}
	}
	if len(out) == 0 {
		return ok(struct{}{})
	}
	return ok(map[string]any{"Attributes": out})
}

func (s *sqsService) setQueueAttributes(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueUrl   string
		Attributes map[string]string
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	if e := checkQueueAttrs(req.Attributes); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	if q.meta.Attrs == nil {
		q.meta.Attrs = map[string]string{}
	}
	for k, v := range req.Attributes {
		if v == "" {
			delete(q.meta.Attrs, k)
		} else {
			q.meta.Attrs[k] = v
		}
	}
	q.meta.Modified = s.nowMs() / 1000
	var w write
	w.saveQueue(q)
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	return ok(struct{}{})
}

func (s *sqsService) tagQueue(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueUrl string
		Tags     map[string]string
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	if q.meta.Tags == nil {
		q.meta.Tags = map[string]string{}
	}
	for k, v := range req.Tags {
		q.meta.Tags[k] = v
	}
	var w write
	w.saveQueue(q)
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	return ok(struct{}{})
}

func (s *sqsService) untagQueue(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueUrl string
		TagKeys  []string
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	for _, k := range req.TagKeys {
		delete(q.meta.Tags, k)
	}
	var w write
	w.saveQueue(q)
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	return ok(struct{}{})
}

func (s *sqsService) listQueueTags(_ context.Context, body []byte) sqsResult {
	var req struct{ QueueUrl string }
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	if len(q.meta.Tags) == 0 {
		return ok(struct{}{})
	}
	return ok(map[string]any{"Tags": q.meta.Tags})
}

// sendEntry is one message to send (SendMessage or a batch entry).
type sendEntry struct {
	Id                string
	MessageBody       *string
	DelaySeconds      *int
	MessageAttributes map[string]msgAttr
}

type sendResult struct {
	Id                     string `json:"Id,omitempty"`
	MessageId              string `json:"MessageId"`
	MD5OfMessageBody       string `json:"MD5OfMessageBody"`
	MD5OfMessageAttributes string `json:"MD5OfMessageAttributes,omitempty"`
}

// send validates e and queues it; s.mu must be held.
func (s *sqsService) send(q *queue, e sendEntry, w *write) (sendResult, *sqsError) {
	if e.MessageBody == nil || *e.MessageBody == "" {
		return sendResult{}, errMissingParameter("MessageBody")
	}
	size, ae := checkMsgAttrs(e.MessageAttributes)
	if ae != nil {
		return sendResult{}, ae
	}
	if size+len(*e.MessageBody) > q.intAttr("MaximumMessageSize") {
		return sendResult{}, errInvalidParameter("One or more parameters are invalid. Reason: Message must be shorter than " +
			strconv.Itoa(q.intAttr("MaximumMessageSize")) + " bytes.")
	}
	delay := q.intAttr("DelaySeconds")
	if e.DelaySeconds != nil {
		delay = *e.DelaySeconds
	}
	if delay < 0 || delay > 900 {
		return sendResult{}, errInvalidParameter("Value " + strconv.Itoa(delay) + " for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided.")
	}
	now := s.nowMs()
	m := &message{Seq: q.meta.NextSeq, ID: newID(), MD5Body: md5Hex([]byte(*e.MessageBody)),
		MD5Attrs: md5OfAttributes(e.MessageAttributes), Sent: now, VisibleAt: now + int64(delay)*1000}
	q.add(m)
	w.putMsg(q, m)
	w.putBody(q, m.Seq, msgBody{Body: *e.MessageBody, Attrs: e.MessageAttributes})
	w.saveQueue(q) // NextSeq
	return sendResult{Id: e.Id, MessageId: m.ID, MD5OfMessageBody: m.MD5Body, MD5OfMessageAttributes: m.MD5Attrs}, nil
}

func (s *sqsService) sendMessage(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueUrl string
		sendEntry
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	var w write
	res, e := s.send(q, req.sendEntry, &w)
	if e != nil {
		return e.result()
	}
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	s.wakeLocked()
	res.Id = ""
	return ok(res)
}

// batchEntryID is the pattern SQS accepts for a batch entry Id.
var batchEntryID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

type batchFailure struct {
	Id          string `json:"Id"`
	Code        string `json:"Code"`
	Message     string `json:"Message,omitempty"`
	SenderFault bool   `json:"SenderFault"`
}

// checkBatch applies SQS's whole-batch rules to the entry ids.
// batchRequest is the body of a batch call: a queue and up to ten entries
// with distinct ids.
type batchRequest[E any] struct {
	QueueUrl string
	Entries  []E
}

// decode reads a batch call's body and checks its entries' ids.
func (r *batchRequest[E]) decode(body []byte, id func(E) string) *sqsError {
	if e := decode(body, r); e != nil {
		return e
	}
	ids := make([]string, len(r.Entries))
	for i, e := range r.Entries {
		ids[i] = id(e)
	}
	return checkBatch(ids)
}

func checkBatch(ids []string) *sqsError {
	switch {
	case len(ids) == 0:
		return &sqsError{"EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", 400, "The batch request doesn't contain any entries."}
	case len(ids) > 10:
		return &sqsError{"TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, "Maximum number of entries per request is 10."}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !batchEntryID.MatchString(id) {
			return &sqsError{"InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", 400,
				"A batch entry id can only contain alphanumeric characters, hyphens and underscores."}
		}
		if seen[id] {
			return &sqsError{"BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400, "Two or more batch entries have the same Id."}
		}
		seen[id] = true
	}
	return nil
}

func batchResult(successful any, failed []batchFailure) sqsResult {
	if failed == nil {
		failed = []batchFailure{}
	}
	return ok(map[string]any{"Successful": successful, "Failed": failed})
}

func (s *sqsService) sendMessageBatch(_ context.Context, body []byte) sqsResult {
	var req batchRequest[sendEntry]
	if e := req.decode(body, func(e sendEntry) string { return e.Id }); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	total := 0
	for _, e := range req.Entries {
		if e.MessageBody != nil {
			total += len(*e.MessageBody)
		}
	}
	if total > q.intAttr("MaximumMessageSize") {
		return (&sqsError{"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400,
			"Batch requests cannot be longer than the queue's maximum message size."}).result()
	}
	var w write
	successful := []sendResult{}
	var failed []batchFailure
	for _, entry := range req.Entries {
		res, e := s.send(q, entry, &w)
		if e != nil {
			failed = append(failed, batchFailure{Id: entry.Id, Code: e.Shape, Message: e.Message, SenderFault: true})
			continue
		}
		successful = append(successful, res)
	}
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	s.wakeLocked()
	return batchResult(successful, failed)
}

type receivedMessage struct {
	MessageId              string             `json:"MessageId"`
	ReceiptHandle          string             `json:"ReceiptHandle"`
	MD5OfBody              string             `json:"MD5OfBody"`
	Body                   string             `json:"Body"`
	Attributes             map[string]string  `json:"Attributes,omitempty"`
	MD5OfMessageAttributes string             `json:"MD5OfMessageAttributes,omitempty"`
	MessageAttributes      map[string]msgAttr `json:"MessageAttributes,omitempty"`
}

type receiveRequest struct {
	QueueUrl                    string
	AttributeNames              []string
	MessageSystemAttributeNames []string
	MessageAttributeNames       []string
	MaxNumberOfMessages         *int
	VisibilityTimeout           *int
	WaitTimeSeconds             *int
}

func (s *sqsService) receiveMessage(ctx context.Context, body []byte) sqsResult {
	var req receiveRequest
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	max := 1
	if req.MaxNumberOfMessages != nil {
		max = *req.MaxNumberOfMessages
	}
	if max < 1 || max > 10 {
		return errInvalidParameter("Value " + strconv.Itoa(max) + " for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.").result()
	}
	if req.VisibilityTimeout != nil && (*req.VisibilityTimeout < 0 || *req.VisibilityTimeout > 43200) {
		return errInvalidParameter("Value for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200.").result()
	}
	s.mu.Lock()
	q, e := s.lookup(req.QueueUrl)
	wait := 0
	if e == nil {
		wait = q.intAttr("ReceiveMessageWaitTimeSeconds")
	}
	s.mu.Unlock()
	if e != nil {
		return e.result()
	}
	if req.WaitTimeSeconds != nil {
		wait = *req.WaitTimeSeconds
	}
	if wait < 0 || wait > 20 {
		return errInvalidParameter("Value " + strconv.Itoa(wait) + " for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.").result()
	}
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		wake := s.woken()
		got, e := s.receiveNow(&req, max)
		if e != nil {
			return e.result()
		}
		left := time.Until(deadline)
		if len(got) > 0 || left <= 0 {
			if len(got) == 0 {
				return ok(struct{}{})
			}
			return ok(map[string]any{"Messages": got})
		}
		// A send or a release wakes the poll at once; leases that run out
		// and delays that end are seen on the next tick.
		t := time.NewTimer(min(left, 50*time.Millisecond))
		s.waiting.Add(1)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			s.waiting.Add(-1)
			t.Stop()
			return ok(struct{}{})
		}
		s.waiting.Add(-1)
		t.Stop()
	}
}

// receiveNow takes up to max visible messages, moving those over the
// redrive policy's receive count to the dead-letter queue instead.
func (s *sqsService) receiveNow(req *receiveRequest, max int) ([]receivedMessage, *sqsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return nil, e
	}
	now := s.nowMs()
	vis := q.intAttr("VisibilityTimeout")
	if req.VisibilityTimeout != nil {
		vis = *req.VisibilityTimeout
	}
	retention := int64(q.intAttr("MessageRetentionPeriod")) * 1000
	policy, hasPolicy := q.redrive()
	var dlq *queue
	if hasPolicy {
		dlq = s.queues[arnQueueName(policy.DeadLetterTargetArn)]
	}
	var w write
	var got []*message
	for _, m := range q.msgs {
		if len(got) == max {
			break
		}
		if m.deleted || m.VisibleAt > now {
			continue
		}
		if m.Sent+retention < now {
			w.delMsg(q, m)
			q.remove(m)
			continue
		}
		if dlq != nil && m.Receives >= policy.MaxReceiveCount {
			s.moveLocked(q, dlq, m, now, &w)
			continue
		}
		m.Receives++
		if m.FirstReceive == 0 {
			m.FirstReceive = now
		}
		m.Handle = newHandle(m.ID)
		m.VisibleAt = now + int64(vis)*1000
		w.putMsg(q, m)
		got = append(got, m)
	}
	if e := s.commit(&w); e != nil {
		return nil, e
	}
	if len(got) == 0 {
		return nil, nil
	}
	out := make([]receivedMessage, 0, len(got))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bodyBucket(q.meta.Name))
		for _, m := range got {
			var body msgBody
			if b != nil {
				if data := b.Get(seqKey(m.Seq)); data != nil {
					if err := json.Unmarshal(data, &body); err != nil {
						return fmt.Errorf("message %s: %w", m.ID, err)
					}
				}
			}
			out = append(out, s.render(m, body, req))
		}
		return nil
	})
	if err != nil {
		return nil, errInternal(err)
	}
	return out, nil
}

// moveLocked moves m from q to dst as a new message of dst with the same id,
// body and attributes (SQS keeps those, and the receive count, on redrive).
func (s *sqsService) moveLocked(q, dst *queue, m *message, now int64, w *write) {
	if w.del == nil {
		w.del = map[*queue][]uint64{}
	}
	w.del[q] = append(w.del[q], m.Seq)
	w.moves = append(w.moves, bodyMove{from: q, to: dst, fromSeq: m.Seq, toSeq: dst.meta.NextSeq})
	q.remove(m)
	moved := *m
	moved.deleted = false
	moved.Seq = dst.meta.NextSeq
	moved.Handle = ""
	moved.VisibleAt = now
	if moved.SourceArn == "" {
		moved.SourceArn = s.queueArn(q.meta.Name)
	} else if dst.meta.Name == arnQueueName(moved.SourceArn) {
		moved.SourceArn = ""
	}
	dst.add(&moved)
	w.putMsg(dst, &moved)
	w.saveQueue(dst)
}

func arnQueueName(arn string) string { return arn[strings.LastIndex(arn, ":")+1:] }

// render builds the answer for a received message, with the system and
// message attributes that were asked for (SQS returns none unless named).
func (s *sqsService) render(m *message, body msgBody, req *receiveRequest) receivedMessage {
	out := receivedMessage{MessageId: m.ID, ReceiptHandle: m.Handle, MD5OfBody: m.MD5Body, Body: body.Body}
	sys := map[string]string{
		"SentTimestamp":                    strconv.FormatInt(m.Sent, 10),
		"ApproximateReceiveCount":          strconv.Itoa(m.Receives),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.FirstReceive, 10),
		"SenderId":                         s.account,
	}
	if m.SourceArn != "" {
		sys["DeadLetterQueueSourceArn"] = m.SourceArn
	}
	for _, n := range append(append([]string(nil), req.AttributeNames...), req.MessageSystemAttributeNames...) {
		if n == "All" {
			out.Attributes = sys
			break
		}
		if v, ok := sys[n]; ok {
			if out.Attributes == nil {
				out.Attributes = map[string]string{}
			}
			out.Attributes[n] = v
		}
	}
	for k, v := range body.Attrs {
		for _, n := range req.MessageAttributeNames {
			if n == "All" || n == ".*" || k == n ||
				(strings.HasSuffix(n, ".*") && strings.HasPrefix(k, strings.TrimSuffix(n, "*"))) {
				if out.MessageAttributes == nil {
					out.MessageAttributes = map[string]msgAttr{}
				}
				out.MessageAttributes[k] = v
				break
			}
		}
	}
	out.MD5OfMessageAttributes = md5OfAttributes(out.MessageAttributes)
	return out
}

// byHandle finds the message a receipt handle names. A handle of a message
// that is gone, or that has been received again since, is invalid; one of a
// message back in the queue is not in flight.
func (q *queue) byHandle(h string, now int64) (*message, *sqsError) {
	if h == "" {
		return nil, errReceiptHandleIsInvalid()
	}
	m, found := q.byID[handleMessageID(h)]
	if !found {
		return nil, errReceiptHandleIsInvalid()
	}
	if m.Handle != h {
		return m, errMessageNotInflight()
	}
	if m.VisibleAt <= now {
		return m, errMessageNotInflight()
	}
	return m, nil
}

func (s *sqsService) deleteOne(q *queue, h string, w *write) *sqsError {
	m, e := q.byHandle(h, s.nowMs())
	if e != nil && (m == nil || m.Handle != h) {
		// SQS deletes with the latest handle even after the lease ran
		// out; an older one no longer refers to the message.
		return errReceiptHandleIsInvalid()
	}
	w.delMsg(q, m)
	q.remove(m)
	return nil
}

func (s *sqsService) deleteMessage(_ context.Context, body []byte) sqsResult {
	var req struct{ QueueUrl, ReceiptHandle string }
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	var w write
	if e := s.deleteOne(q, req.ReceiptHandle, &w); e != nil {
		return e.result()
	}
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	return ok(struct{}{})
}

type handleEntry struct {
	Id                string
	ReceiptHandle     string
	VisibilityTimeout int
}

func (s *sqsService) handleBatch(body []byte, one func(q *queue, e handleEntry, w *write) *sqsError) sqsResult {
	var req batchRequest[handleEntry]
	if e := req.decode(body, func(e handleEntry) string { return e.Id }); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	var w write
	successful := []map[string]string{}
	var failed []batchFailure
	for _, entry := range req.Entries {
		if e := one(q, entry, &w); e != nil {
			failed = append(failed, batchFailure{Id: entry.Id, Code: e.Shape, Message: e.Message, SenderFault: true})
			continue
		}
		successful = append(successful, map[string]string{"Id": entry.Id})
	}
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	s.wakeLocked()
	return batchResult(successful, failed)
}

func (s *sqsService) deleteMessageBatch(_ context.Context, body []byte) sqsResult {
	return s.handleBatch(body, func(q *queue, e handleEntry, w *write) *sqsError {
		return s.deleteOne(q, e.ReceiptHandle, w)
	})
}

func (s *sqsService) changeOne(q *queue, h string, timeout int, w *write) *sqsError {
	if timeout < 0 || timeout > 43200 {
		return errInvalidParameter("Value " + strconv.Itoa(timeout) + " for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200.")
	}
	now := s.nowMs()
	m, e := q.byHandle(h, now)
	if e != nil {
		return e
	}
	m.VisibleAt = now + int64(timeout)*1000
	w.putMsg(q, m)
	return nil
}

func (s *sqsService) changeVisibility(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueUrl, ReceiptHandle string
		VisibilityTimeout       int
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, e := s.lookup(req.QueueUrl)
	if e != nil {
		return e.result()
	}
	var w write
	if e := s.changeOne(q, req.ReceiptHandle, req.VisibilityTimeout, &w); e != nil {
		return e.result()
	}
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	s.wakeLocked()
	return ok(struct{}{})
}

func (s *sqsService) changeVisibilityBatch(_ context.Context, body []byte) sqsResult {
	return s.handleBatch(body, func(q *queue, e handleEntry, w *write) *sqsError {
		return s.changeOne(q, e.ReceiptHandle, e.VisibilityTimeout, w)
	})
}

func (s *sqsService) listDeadLetterSourceQueues(_ context.Context, body []byte) sqsResult {
	var req struct {
		QueueUrl   string
		MaxResults int
		NextToken  string
	}
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	q, e := s.lookup(req.QueueUrl)
	var names []string
	if e == nil {
		arn := s.queueArn(q.meta.Name)
		for n, src := range s.queues {
			if p, ok := src.redrive(); ok && p.DeadLetterTargetArn == arn {
				names = append(names, n)
			}
		}
	}
	s.mu.Unlock()
	if e != nil {
		return e.result()
	}
	res := s.urlPage(names, req.MaxResults, req.NextToken)
	if res.err == nil && string(res.body) == "{}" {
		return ok(map[string]any{"queueUrls": []string{}})
	}
	// This action alone names the list in lower camel case.
	res.body = []byte(strings.Replace(string(res.body), `"QueueUrls"`, `"queueUrls"`, 1))
	return res
}

// moveTask is a finished StartMessageMoveTask. Moves here are done at once,
// inside the call.
type moveTask struct {
	Handle, Source, Destination string
	Moved                       int
	Started                     int64
}

func (s *sqsService) startMessageMoveTask(_ context.Context, body []byte) sqsResult {
	var req struct{ SourceArn, DestinationArn string }
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	src, found := s.queues[arnQueueName(req.SourceArn)]
	if !found {
		return (&sqsError{"ResourceNotFoundException", "ResourceNotFoundException", 400, "The resource that you specified for the SourceArn parameter doesn't exist."}).result()
	}
	var dst *queue
	if req.DestinationArn != "" {
		if dst = s.queues[arnQueueName(req.DestinationArn)]; dst == nil {
			return (&sqsError{"ResourceNotFoundException", "ResourceNotFoundException", 400, "The resource that you specified for the DestinationArn parameter doesn't exist."}).result()
		}
	}
	now := s.nowMs()
	var w write
	moved := 0
	for _, m := range append([]*message(nil), src.msgs...) {
		if m.deleted || m.VisibleAt > now {
			continue
		}
		to := dst
		if to == nil {
			to = s.queues[arnQueueName(m.SourceArn)]
		}
		if to == nil || to == src {
			continue
		}
		m.Receives = 0
		m.FirstReceive = 0
		s.moveLocked(src, to, m, now, &w)
		moved++
	}
	if e := s.commit(&w); e != nil {
		return e.result()
	}
	s.wakeLocked()
	src.moveTask = &moveTask{Handle: newID(), Source: req.SourceArn, Destination: req.DestinationArn, Moved: moved, Started: now}
	return ok(map[string]string{"TaskHandle": src.moveTask.Handle})
}

func (s *sqsService) listMessageMoveTasks(_ context.Context, body []byte) sqsResult {
	var req struct{ SourceArn string }
	if e := decode(body, &req); e != nil {
		return e.result()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	src, found := s.queues[arnQueueName(req.SourceArn)]
	if !found {
		return (&sqsError{"ResourceNotFoundException", "ResourceNotFoundException", 400, "The resource that you specified for the SourceArn parameter doesn't exist."}).result()
	}
	results := []map[string]any{}
	if t := src.moveTask; t != nil {
		r := map[string]any{"Status": "COMPLETED", "SourceArn": t.Source, "ApproximateNumberOfMessagesMoved": t.Moved,
			"ApproximateNumberOfMessagesToMove": t.Moved, "StartedTimestamp": t.Started}
		if t.Destination != "" {
			r["DestinationArn"] = t.Destination
		}
		results = append(results, r)
	}
	return ok(map[string]any{"Results": results})
}
