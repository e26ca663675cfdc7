package devserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Admiral-Piett/goaws/app/models"
	"github.com/Admiral-Piett/goaws/app/utils"
)

// The SQS side is goaws behind a thin JSON-protocol wrapper. goaws v0.5.4
// gets most single-message calls right but not everything the worker and the
// AWS SDK rely on, so the wrapper:
//
//   - answers errors in the shape the SDK decodes into typed errors
//     (*types.QueueDoesNotExist, *types.ReceiptHandleIsInvalid, ...); goaws's
//     own error body only ever yields a generic smithy.APIError;
//   - checks the queue of every call that names a QueueUrl, so that a missing
//     queue is QueueDoesNotExist everywhere (goaws says InvalidParameterValue
//     for GetQueueAttributes);
//   - runs SendMessageBatch, DeleteMessageBatch and the missing
//     ChangeMessageVisibilityBatch as one goaws call per entry: goaws's batch
//     send ignores DelaySeconds and answers under a key the SDK does not read,
//     and it has no batch visibility change at all;
//   - refuses an empty receipt handle, which goaws would match against every
//     visible message and delete;
//   - fills in ApproximateReceiveCount (always 1 in goaws) and SentTimestamp,
//     and filters returned attributes to the ones asked for, as SQS does;
//   - computes the queue depth attributes (goaws counts in-flight and delayed
//     messages as visible and has no ...Delayed);
//   - keeps the attributes a SetQueueAttributes call does not mention (goaws
//     resets VisibilityTimeout, DelaySeconds and MaximumMessageSize to 0);
//   - puts the region into queue ARNs.
//
// Requests in the old query protocol go to goaws untouched.

const (
	sqsTargetPrefix = "AmazonSQS."
	jsonContentType = "application/x-amz-json-1.0"
	// maxSQSBody bounds a request body: ten 1 MiB messages plus JSON framing.
	maxSQSBody = 16 << 20
)

// isSQS reports whether r is for the SQS API rather than S3: the JSON
// protocol names its operation in X-Amz-Target, the query protocol posts a
// form with no query string (S3's POST operations all carry one, e.g.
// ?uploads or ?delete, whatever content type the object has) or, rarely, GETs
// with an Action parameter.
func isSQS(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), sqsTargetPrefix) {
		return true
	}
	if r.Method == http.MethodPost && r.URL.RawQuery == "" {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		return err == nil && mt == "application/x-www-form-urlencoded"
	}
	return r.Method == http.MethodGet && r.URL.Query().Has("Action")
}

type sqsHandler struct {
	goaws   http.Handler
	region  string
	account string

	// wake is closed (and replaced) whenever a message may have become
	// visible, so that long polls waiting in receiveMessage look again at
	// once instead of on goaws's 100 ms tick.
	mu   sync.Mutex
	wake chan struct{}
}

func newSQSHandler(goaws http.Handler, region, account string) *sqsHandler {
	return &sqsHandler{goaws: goaws, region: region, account: account, wake: make(chan struct{})}
}

// woken returns the channel that the next wakeAll closes.
func (h *sqsHandler) woken() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wake
}

func (h *sqsHandler) wakeAll() {
	h.mu.Lock()
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
}

// sqsResult is a finished JSON-protocol answer: a success body or an error.
type sqsResult struct {
	status int
	body   []byte
	err    *sqsError
}

// sqsError is an SQS error as the JSON protocol carries it: the shape name in
// __type (which the SDK maps to a typed error) and the legacy query code in
// x-amzn-query-error (which becomes the error's ErrorCode()).
type sqsError struct {
	Shape     string
	QueryCode string
	Status    int
	Message   string
}

func (e *sqsError) result() sqsResult { return sqsResult{status: e.Status, err: e} }

func errQueueDoesNotExist() *sqsError {
	return &sqsError{"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400,
		"The specified queue does not exist."}
}

func errReceiptHandleIsInvalid() *sqsError {
	return &sqsError{"ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 400,
		"The input receipt handle is invalid or no longer refers to a message."}
}

func errInvalidParameter(msg string) *sqsError {
	return &sqsError{"InvalidParameterValue", "InvalidParameterValue", 400, msg}
}

// goawsErrors maps goaws's error codes to the SQS shapes. goaws reuses the
// QueueExists code, typed "Not Found", for an unknown receipt handle.
var goawsErrors = map[string]*sqsError{
	"AWS.SimpleQueueService.NonExistentQueue":      errQueueDoesNotExist(),
	"Not Found/AWS.SimpleQueueService.QueueExists": errReceiptHandleIsInvalid(),
	"AWS.SimpleQueueService.QueueExists": {"QueueNameExists", "QueueAlreadyExists", 400,
		"A queue with this name already exists."},
	"AWS.SimpleQueueService.MessageNotInFlight": {"MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", 400,
		"The message referred to isn't in flight."},
	"AWS.SimpleQueueService.TooManyEntriesInBatchRequest": {"TooManyEntriesInBatchRequest",
		"AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, "Maximum number of entries per request is 10."},
	"AWS.SimpleQueueService.BatchEntryIdsNotDistinct": {"BatchEntryIdsNotDistinct",
		"AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400, "Two or more batch entries have the same Id."},
	"AWS.SimpleQueueService.EmptyBatchRequest": {"EmptyBatchRequest",
		"AWS.SimpleQueueService.EmptyBatchRequest", 400, "The batch request doesn't contain any entries."},
	"AWS.SimpleQueueService.InvalidAttributeValue": {"InvalidAttributeValue", "InvalidAttributeValue", 400,
		"Invalid value for a queue attribute."},
}

// translateGoawsError turns a goaws error answer into an sqsError.
func translateGoawsError(status int, body []byte) *sqsError {
	var ge struct{ Type, Code, Message string }
	if err := json.Unmarshal(body, &ge); err != nil || ge.Code == "" {
		if status == http.StatusBadRequest && strings.HasPrefix(string(body), "Bad Request") {
			// goaws's answer to an action it does not route.
			return &sqsError{"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", 400,
				"This operation is not supported by the local endpoint."}
		}
		// goaws answers some validation failures (e.g. a visibility timeout
		// over 12 hours) with an error key it never defined: status 0.
		return errInvalidParameter("An invalid or out-of-range value was supplied for the input parameter.")
	}
	if e, ok := goawsErrors[ge.Type+"/"+ge.Code]; ok {
		return e
	}
	if e, ok := goawsErrors[ge.Code]; ok {
		return e
	}
	code := strings.TrimPrefix(ge.Code, "AWS.SimpleQueueService.")
	if status < 400 || status > 599 {
		status = http.StatusBadRequest
	}
	return &sqsError{code, code, status, ge.Message}
}

func (res sqsResult) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", jsonContentType)
	h.Set("x-amzn-RequestId", requestID())
	if res.err != nil {
		h.Set("x-amzn-query-error", res.err.QueryCode+";Sender")
		body, _ := json.Marshal(map[string]string{
			"__type":  "com.amazonaws.sqs#" + res.err.Shape,
			"message": res.err.Message,
		})
		w.WriteHeader(res.err.Status)
		_, _ = w.Write(body)
		return
	}
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

func (h *sqsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(target, sqsTargetPrefix) || mt != jsonContentType {
		h.goaws.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSQSBody+1))
	if err != nil {
		errInvalidParameter("cannot read request body").result().write(w)
		return
	}
	if len(body) > maxSQSBody {
		(&sqsError{"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400,
			"Request body too large."}).result().write(w)
		return
	}
	h.dispatch(r.Context(), strings.TrimPrefix(target, sqsTargetPrefix), body).write(w)
}

func (h *sqsHandler) dispatch(ctx context.Context, action string, body []byte) sqsResult {
	var common struct{ QueueUrl string }
	_ = json.Unmarshal(body, &common)
	if common.QueueUrl != "" && !queueExists(queueNameFromURL(common.QueueUrl)) {
		return errQueueDoesNotExist().result()
	}
	switch action {
	case "SendMessage", "SendMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch":
		defer h.wakeAll()
	}
	switch action {
	case "CreateQueue":
		return h.createQueue(ctx, body)
	case "SetQueueAttributes":
		return h.setQueueAttributes(ctx, body, common.QueueUrl)
	case "GetQueueAttributes":
		return h.getQueueAttributes(ctx, body, common.QueueUrl)
	case "ReceiveMessage":
		return h.receiveMessage(ctx, body, common.QueueUrl)
	case "SendMessageBatch":
		return h.batch(ctx, body, "SendMessage", true)
	case "DeleteMessageBatch":
		return h.batch(ctx, body, "DeleteMessage", false)
	case "ChangeMessageVisibilityBatch":
		return h.batch(ctx, body, "ChangeMessageVisibility", false)
	default:
		return h.single(ctx, action, body)
	}
}

// single runs one goaws operation, refusing an empty receipt handle first.
func (h *sqsHandler) single(ctx context.Context, action string, body []byte) sqsResult {
	if action == "DeleteMessage" || action == "ChangeMessageVisibility" {
		var rh struct{ ReceiptHandle string }
		_ = json.Unmarshal(body, &rh)
		if rh.ReceiptHandle == "" {
			return errReceiptHandleIsInvalid().result()
		}
	}
	return h.call(ctx, action, body)
}

// call runs one operation through goaws's router in-process and captures the
// answer, so that it can be checked or amended before the client sees it.
func (h *sqsHandler) call(ctx context.Context, action string, body []byte) sqsResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return errInvalidParameter(err.Error()).result()
	}
	req.Header.Set("Content-Type", jsonContentType)
	req.Header.Set("X-Amz-Target", sqsTargetPrefix+action)
	rec := &recorder{header: make(http.Header)}
	h.goaws.ServeHTTP(rec, req)
	if !rec.wrote {
		rec.status = http.StatusOK
	}
	if rec.status < 200 || rec.status > 299 {
		return translateGoawsError(rec.status, rec.body.Bytes()).result()
	}
	return sqsResult{status: http.StatusOK, body: rec.body.Bytes()}
}

// recorder is a minimal http.ResponseWriter that keeps the answer. Unlike
// net/http it accepts WriteHeader(0), which goaws sends for an unknown error.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.body.Write(p)
}

func queueNameFromURL(u string) string {
	return u[strings.LastIndex(u, "/")+1:]
}

func queueExists(name string) bool {
	models.SyncQueues.RLock()
	defer models.SyncQueues.RUnlock()
	_, ok := models.SyncQueues.Queues[name]
	return ok
}

func (h *sqsHandler) queueArn(name string) string {
	return "arn:aws:sqs:" + h.region + ":" + h.account + ":" + name
}

// createQueues creates the DLQ, then each queue with a redrive policy to it.
func (h *sqsHandler) createQueues(opts Options) error {
	create := func(name string, attrs map[string]string) error {
		body, err := json.Marshal(map[string]any{"QueueName": name, "Attributes": attrs})
		if err != nil {
			return fmt.Errorf("devserver: create queue %q: %w", name, err)
		}
		if res := h.createQueue(context.Background(), body); res.err != nil {
			return fmt.Errorf("devserver: create queue %q: %s: %s", name, res.err.Shape, res.err.Message)
		}
		return nil
	}
	if err := create(opts.DeadLetterQueue, nil); err != nil {
		return err
	}
	policy, err := json.Marshal(map[string]any{
		"deadLetterTargetArn": h.queueArn(opts.DeadLetterQueue),
		"maxReceiveCount":     strconv.Itoa(opts.MaxReceiveCount),
	})
	if err != nil {
		return fmt.Errorf("devserver: redrive policy: %w", err)
	}
	for _, name := range opts.Queues {
		if name == opts.DeadLetterQueue {
			continue
		}
		if err := create(name, map[string]string{"RedrivePolicy": string(policy)}); err != nil {
			return err
		}
	}
	return nil
}

func (h *sqsHandler) createQueue(ctx context.Context, body []byte) sqsResult {
	res := h.call(ctx, "CreateQueue", body)
	if res.err != nil {
		return res
	}
	var req struct{ QueueName string }
	_ = json.Unmarshal(body, &req)
	models.SyncQueues.Lock()
	if q, ok := models.SyncQueues.Queues[req.QueueName]; ok {
		q.Arn = h.queueArn(req.QueueName)
	}
	models.SyncQueues.Unlock()
	return res
}

// setQueueAttributes forwards the call with the attributes it leaves out set
// to their current values, because goaws applies every field of its request
// struct, zeros included.
func (h *sqsHandler) setQueueAttributes(ctx context.Context, body []byte, queueURL string) sqsResult {
	var req struct {
		QueueUrl   string
		Attributes map[string]string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return errInvalidParameter("malformed request").result()
	}
	if req.Attributes == nil {
		req.Attributes = map[string]string{}
	}
	models.SyncQueues.RLock()
	if q, ok := models.SyncQueues.Queues[queueNameFromURL(queueURL)]; ok {
		keep := map[string]int{
			"DelaySeconds":       q.DelaySeconds,
			"MaximumMessageSize": q.MaximumMessageSize,
			"VisibilityTimeout":  q.VisibilityTimeout,
		}
		for k, v := range keep {
			if _, set := req.Attributes[k]; !set {
				req.Attributes[k] = strconv.Itoa(v)
			}
		}
	}
	models.SyncQueues.RUnlock()
	fixed, err := json.Marshal(req)
	if err != nil {
		return errInvalidParameter(err.Error()).result()
	}
	return h.call(ctx, "SetQueueAttributes", fixed)
}

// getQueueAttributes lets goaws answer, then replaces the depth counts and
// the redrive policy with values computed from the queue itself.
func (h *sqsHandler) getQueueAttributes(ctx context.Context, body []byte, queueURL string) sqsResult {
	var req struct{ AttributeNames []string }
	_ = json.Unmarshal(body, &req)
	res := h.call(ctx, "GetQueueAttributes", body)
	if res.err != nil {
		return res
	}
	var out struct{ Attributes map[string]string }
	if err := json.Unmarshal(res.body, &out); err != nil {
		return errInvalidParameter("malformed goaws answer").result()
	}
	if out.Attributes == nil {
		out.Attributes = map[string]string{}
	}
	all := len(req.AttributeNames) == 0
	wanted := map[string]bool{}
	for _, n := range req.AttributeNames {
		wanted[n] = true
		all = all || n == "All"
	}
	set := func(name, value string) {
		if all || wanted[name] {
			out.Attributes[name] = value
		}
	}

	models.SyncQueues.RLock()
	q, ok := models.SyncQueues.Queues[queueNameFromURL(queueURL)]
	if ok {
		visible, notVisible, delayed := 0, 0, 0
		for i := range q.Messages {
			m := &q.Messages[i]
			switch {
			case m.ReceiptHandle != "":
				notVisible++
			case !m.IsReadyForReceipt():
				delayed++
			default:
				visible++
			}
		}
		set("ApproximateNumberOfMessages", strconv.Itoa(visible))
		set("ApproximateNumberOfMessagesNotVisible", strconv.Itoa(notVisible))
		set("ApproximateNumberOfMessagesDelayed", strconv.Itoa(delayed))
		if q.DeadLetterQueue != nil {
			policy, _ := json.Marshal(struct {
				DeadLetterTargetArn string `json:"deadLetterTargetArn"`
				MaxReceiveCount     int    `json:"maxReceiveCount"`
			}{q.DeadLetterQueue.Arn, q.MaxReceiveCount})
			set("RedrivePolicy", string(policy))
		}
	}
	models.SyncQueues.RUnlock()

	b, err := json.Marshal(out)
	if err != nil {
		return errInvalidParameter(err.Error()).result()
	}
	return sqsResult{status: http.StatusOK, body: b}
}

type receivedMessage struct {
	MessageId              string                             `json:"MessageId,omitempty"`
	ReceiptHandle          string                             `json:"ReceiptHandle,omitempty"`
	MD5OfBody              string                             `json:"MD5OfBody,omitempty"`
	Body                   string                             `json:"Body,omitempty"`
	MD5OfMessageAttributes string                             `json:"MD5OfMessageAttributes,omitempty"`
	MessageAttributes      map[string]models.MessageAttribute `json:"MessageAttributes,omitempty"`
	Attributes             map[string]string                  `json:"Attributes,omitempty"`
}

// receiveWaiting does the long poll itself: goaws is asked without waiting,
// and asked again when a send or a visibility change wakes the waiters (or
// every 100 ms, for leases that run out), until messages come or the wait is
// over. goaws's own long poll looks only every 100 ms, which made every
// pickup on an idle dev worker wait 50 ms on average.
func (h *sqsHandler) receiveWaiting(ctx context.Context, body []byte, out any) *sqsResult {
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil {
		r := errInvalidParameter("malformed request").result()
		return &r
	}
	wait, _ := fields["WaitTimeSeconds"].(float64)
	fields["WaitTimeSeconds"] = 0
	now, _ := json.Marshal(fields)
	deadline := time.Now().Add(time.Duration(wait * float64(time.Second)))
	for {
		wake := h.woken()
		res := h.call(ctx, "ReceiveMessage", now)
		if res.err != nil {
			return &res
		}
		var got struct{ Messages []json.RawMessage }
		if err := json.Unmarshal(res.body, &got); err != nil {
			r := errInvalidParameter("malformed goaws answer").result()
			return &r
		}
		left := time.Until(deadline)
		if len(got.Messages) > 0 || left <= 0 {
			if err := json.Unmarshal(res.body, out); err != nil {
				r := errInvalidParameter("malformed goaws answer").result()
				return &r
			}
			return nil
		}
		t := time.NewTimer(min(left, 100*time.Millisecond))
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return &sqsResult{status: http.StatusOK, body: []byte("{}")}
		}
		t.Stop()
	}
}

// receiveMessage lets goaws pick and hide the messages, then corrects their
// system attributes and filters both attribute sets to what was asked for.
func (h *sqsHandler) receiveMessage(ctx context.Context, body []byte, queueURL string) sqsResult {
	var req struct {
		AttributeNames              []string
		MessageSystemAttributeNames []string
		MessageAttributeNames       []string
	}
	_ = json.Unmarshal(body, &req)
	var out struct{ Messages []*receivedMessage }
	if res := h.receiveWaiting(ctx, body, &out); res != nil {
		return *res
	}
	if len(out.Messages) == 0 {
		return sqsResult{status: http.StatusOK, body: []byte("{}")}
	}

	byHandle := make(map[string]*receivedMessage, len(out.Messages))
	for _, m := range out.Messages {
		byHandle[m.ReceiptHandle] = m
	}
	models.SyncQueues.RLock()
	if q, ok := models.SyncQueues.Queues[queueNameFromURL(queueURL)]; ok {
		for i := range q.Messages {
			sm := &q.Messages[i]
			m, ok := byHandle[sm.ReceiptHandle]
			if !ok || sm.ReceiptHandle == "" {
				continue
			}
			if m.Attributes == nil {
				m.Attributes = map[string]string{}
			}
			// goaws bumps Retry each time a received message comes back
			// (lease expired or visibility set to 0), so Retry+1 is the
			// number of receives including this one.
			m.Attributes["ApproximateReceiveCount"] = strconv.Itoa(sm.Retry + 1)
			m.Attributes["SentTimestamp"] = strconv.FormatInt(sm.SentTime.UnixMilli(), 10)
		}
	}
	models.SyncQueues.RUnlock()

	sysNames := append(append([]string(nil), req.AttributeNames...), req.MessageSystemAttributeNames...)
	for _, m := range out.Messages {
		m.Attributes = filterSystemAttributes(m.Attributes, sysNames)
		filtered := filterMessageAttributes(m.MessageAttributes, req.MessageAttributeNames)
		if len(filtered) != len(m.MessageAttributes) {
			m.MessageAttributes = filtered
			m.MD5OfMessageAttributes = ""
			if len(filtered) > 0 {
				m.MD5OfMessageAttributes = utils.HashAttributes(filtered)
			}
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return errInvalidParameter(err.Error()).result()
	}
	return sqsResult{status: http.StatusOK, body: b}
}

// filterSystemAttributes keeps the system attributes that were asked for:
// SQS returns none unless named (or "All").
func filterSystemAttributes(attrs map[string]string, names []string) map[string]string {
	keep := map[string]string{}
	for _, n := range names {
		if n == "All" {
			return attrs
		}
		if v, ok := attrs[n]; ok {
			keep[n] = v
		}
	}
	return keep
}

// filterMessageAttributes applies SQS's MessageAttributeNames rules: "All"
// or ".*" for every attribute, "prefix.*" for a prefix, else exact names.
func filterMessageAttributes(attrs map[string]models.MessageAttribute, names []string) map[string]models.MessageAttribute {
	keep := map[string]models.MessageAttribute{}
	for k, v := range attrs {
		for _, n := range names {
			if n == "All" || n == ".*" || k == n ||
				(strings.HasSuffix(n, ".*") && strings.HasPrefix(k, strings.TrimSuffix(n, "*"))) {
				keep[k] = v
				break
			}
		}
	}
	return keep
}

// batchEntryID is the pattern SQS accepts for a batch entry Id.
var batchEntryID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

type batchFailure struct {
	Id          string `json:"Id"`
	Code        string `json:"Code"`
	Message     string `json:"Message,omitempty"`
	SenderFault bool   `json:"SenderFault"`
}

// batch runs a batch operation as one goaws call of action per entry, with
// SQS's whole-batch validation first. withResult copies each entry's answer
// (message id, checksums) into its Successful record.
func (h *sqsHandler) batch(ctx context.Context, body []byte, action string, withResult bool) sqsResult {
	var req struct {
		QueueUrl string
		Entries  []map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return errInvalidParameter("malformed request").result()
	}
	switch {
	case len(req.Entries) == 0:
		return goawsErrors["AWS.SimpleQueueService.EmptyBatchRequest"].result()
	case len(req.Entries) > 10:
		return goawsErrors["AWS.SimpleQueueService.TooManyEntriesInBatchRequest"].result()
	}
	ids := make([]string, len(req.Entries))
	seen := map[string]bool{}
	total := 0
	for i, e := range req.Entries {
		_ = json.Unmarshal(e["Id"], &ids[i])
		if !batchEntryID.MatchString(ids[i]) {
			return (&sqsError{"InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", 400,
				"A batch entry id can only contain alphanumeric characters, hyphens and underscores."}).result()
		}
		if seen[ids[i]] {
			return goawsErrors["AWS.SimpleQueueService.BatchEntryIdsNotDistinct"].result()
		}
		seen[ids[i]] = true
		var mb string
		_ = json.Unmarshal(e["MessageBody"], &mb)
		total += len(mb)
	}
	if action == "SendMessage" && total > maxMessageSize(queueNameFromURL(req.QueueUrl)) {
		return (&sqsError{"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400,
			"Batch requests cannot be longer than the queue's maximum message size."}).result()
	}

	successful := []map[string]any{}
	failed := []batchFailure{}
	for i, e := range req.Entries {
		delete(e, "Id")
		url, _ := json.Marshal(req.QueueUrl)
		e["QueueUrl"] = url
		one, err := json.Marshal(e)
		if err != nil {
			return errInvalidParameter(err.Error()).result()
		}
		res := h.single(ctx, action, one)
		if res.err != nil {
			failed = append(failed, batchFailure{Id: ids[i], Code: res.err.Shape, Message: res.err.Message, SenderFault: true})
			continue
		}
		ok := map[string]any{}
		if withResult && len(res.body) > 0 {
			if err := json.Unmarshal(res.body, &ok); err != nil {
				return errInvalidParameter("malformed goaws answer").result()
			}
			for k, v := range ok {
				if s, isStr := v.(string); isStr && s == "" {
					delete(ok, k)
				}
			}
		}
		ok["Id"] = ids[i]
		successful = append(successful, ok)
	}
	b, err := json.Marshal(map[string]any{"Successful": successful, "Failed": failed})
	if err != nil {
		return errInvalidParameter(err.Error()).result()
	}
	return sqsResult{status: http.StatusOK, body: b}
}

func maxMessageSize(queue string) int {
	models.SyncQueues.RLock()
	defer models.SyncQueues.RUnlock()
	if q, ok := models.SyncQueues.Queues[queue]; ok && q.MaximumMessageSize > 0 {
		return q.MaximumMessageSize
	}
	return defaultMaximumMessageSize
}
