package devserver

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// queue is one SQS queue. Its messages are kept in send order; a deleted
// message is marked and dropped from the slice once enough of them piled up,
// so that a receive scans live messages only.
type queue struct {
	meta     queueMeta
	msgs     []*message
	byID     map[string]*message
	deleted  int
	moveTask *moveTask // last StartMessageMoveTask on this queue as a source
}

// queueMeta is what is stored of a queue: its name, its settable attributes
// and its timestamps.
type queueMeta struct {
	Name     string            `json:"name"`
	Attrs    map[string]string `json:"attrs"`
	Tags     map[string]string `json:"tags,omitempty"`
	Created  int64             `json:"created"`
	Modified int64             `json:"modified"`
	NextSeq  uint64            `json:"next_seq"`
}

// message is the state SQS keeps of one message (its body is in the store).
type message struct {
	Seq          uint64 `json:"seq"`
	ID           string `json:"id"`
	MD5Body      string `json:"md5_body"`
	MD5Attrs     string `json:"md5_attrs,omitempty"`
	Sent         int64  `json:"sent"`          // unix ms
	FirstReceive int64  `json:"first_receive"` // unix ms, 0 before the first receive
	Receives     int    `json:"receives"`
	VisibleAt    int64  `json:"visible_at"` // unix ms; later than now: delayed or in flight
	Handle       string `json:"handle,omitempty"`
	SourceArn    string `json:"source_arn,omitempty"` // set in a dead-letter queue
	deleted      bool
}

// msgBody is what a message carries: stored apart from its state, once at
// send, and read only to answer a receive, so that the process holds no
// message bodies however deep the queues are.
type msgBody struct {
	Body  string             `json:"body"`
	Attrs map[string]msgAttr `json:"attrs,omitempty"`
}

// msgAttr is a message attribute as the JSON protocol carries it; BinaryValue
// is base64 in JSON, which encoding/json does for []byte.
type msgAttr struct {
	DataType    string `json:"DataType"`
	StringValue string `json:"StringValue,omitempty"`
	BinaryValue []byte `json:"BinaryValue,omitempty"`
}

// Queue attribute defaults, as on AWS (1 MiB is the message size limit since
// 2025).
var defaultQueueAttrs = map[string]string{
	"VisibilityTimeout":             "30",
	"DelaySeconds":                  "0",
	"MaximumMessageSize":            "1048576",
	"MessageRetentionPeriod":        "345600",
	"ReceiveMessageWaitTimeSeconds": "0",
}

// attrLimits bounds the numeric queue attributes.
var attrLimits = map[string][2]int{
	"VisibilityTimeout":             {0, 43200},
	"DelaySeconds":                  {0, 900},
	"MaximumMessageSize":            {1024, 1048576},
	"MessageRetentionPeriod":        {60, 1209600},
	"ReceiveMessageWaitTimeSeconds": {0, 20},
}

// settableAttrs are the queue attributes CreateQueue and SetQueueAttributes
// accept besides the numeric ones.
var settableAttrs = map[string]bool{"RedrivePolicy": true, "RedriveAllowPolicy": true, "Policy": true,
	"SqsManagedSseEnabled": true, "KmsMasterKeyId": true, "KmsDataKeyReusePeriodSeconds": true}

// checkQueueAttrs validates attributes for CreateQueue or SetQueueAttributes.
func checkQueueAttrs(attrs map[string]string) *sqsError {
	for k, v := range attrs {
		if lim, ok := attrLimits[k]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < lim[0] || n > lim[1] {
				return errInvalidAttributeValue(fmt.Sprintf("Invalid value for the parameter %s.", k))
			}
			continue
		}
		if k == "FifoQueue" || k == "ContentBasedDeduplication" {
			return errInvalidAttributeName("FIFO queues are not supported by the local endpoint.")
		}
		if !settableAttrs[k] {
			return errInvalidAttributeName("Unknown Attribute " + k + ".")
		}
		if k == "RedrivePolicy" && v != "" {
			if _, err := parseRedrive(v); err != nil {
				return errInvalidAttributeValue("Invalid value for the parameter RedrivePolicy: " + err.Error())
			}
		}
	}
	return nil
}

// redrivePolicy is a queue's RedrivePolicy; maxReceiveCount may come as a
// number or a string.
type redrivePolicy struct {
	DeadLetterTargetArn string
	MaxReceiveCount     int
}

func parseRedrive(s string) (redrivePolicy, error) {
	var raw struct {
		DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return redrivePolicy{}, fmt.Errorf("not JSON: %w", err)
	}
	n, err := strconv.Atoi(strings.Trim(string(raw.MaxReceiveCount), `"`))
	if err != nil || n < 1 || n > 1000 {
		return redrivePolicy{}, fmt.Errorf("maxReceiveCount must be 1..1000")
	}
	if !strings.HasPrefix(raw.DeadLetterTargetArn, "arn:") {
		return redrivePolicy{}, fmt.Errorf("deadLetterTargetArn must be a queue ARN")
	}
	return redrivePolicy{raw.DeadLetterTargetArn, n}, nil
}

func newQueue(meta queueMeta) *queue {
	return &queue{meta: meta, byID: map[string]*message{}}
}

func (q *queue) intAttr(name string) int {
	v, ok := q.meta.Attrs[name]
	if !ok {
		v = defaultQueueAttrs[name]
	}
	n, _ := strconv.Atoi(v)
	return n
}

func (q *queue) redrive() (redrivePolicy, bool) {
	v := q.meta.Attrs["RedrivePolicy"]
	if v == "" {
		return redrivePolicy{}, false
	}
	p, err := parseRedrive(v)
	return p, err == nil
}

// add appends m (loaded from the store or just sent).
func (q *queue) add(m *message) {
	if len(q.msgs) > 0 && q.msgs[len(q.msgs)-1].Seq > m.Seq {
		i := sort.Search(len(q.msgs), func(i int) bool { return q.msgs[i].Seq > m.Seq })
		q.msgs = append(q.msgs[:i], append([]*message{m}, q.msgs[i:]...)...)
	} else {
		q.msgs = append(q.msgs, m)
	}
	q.byID[m.ID] = m
	if m.Seq >= q.meta.NextSeq {
		q.meta.NextSeq = m.Seq + 1
	}
}

// remove drops m from the queue.
func (q *queue) remove(m *message) {
	if m.deleted {
		return
	}
	m.deleted = true
	delete(q.byID, m.ID)
	q.deleted++
	if q.deleted > 64 && q.deleted > len(q.msgs)/2 {
		live := q.msgs[:0]
		for _, x := range q.msgs {
			if !x.deleted {
				live = append(live, x)
			}
		}
		clear(q.msgs[len(live):])
		q.msgs = live
		q.deleted = 0
	}
}

// depth counts visible, in-flight and delayed messages at now (unix ms).
func (q *queue) depth(now int64) (visible, inflight, delayed int) {
	for _, m := range q.msgs {
		switch {
		case m.deleted:
		case m.VisibleAt <= now:
			visible++
		case m.Receives > 0:
			inflight++
		default:
			delayed++
		}
	}
	return visible, inflight, delayed
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// newHandle makes a receipt handle that names its message, so that a stale
// handle can be told from a made-up one.
func newHandle(id string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return id + "#" + hex.EncodeToString(b[:])
}

func handleMessageID(h string) string {
	id, _, _ := strings.Cut(h, "#")
	return id
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// md5OfAttributes is SQS's checksum of message attributes, which the SDKs
// verify: names sorted, each field length-prefixed, a transport byte per
// value.
func md5OfAttributes(attrs map[string]msgAttr) string {
	if len(attrs) == 0 {
		return ""
	}
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	h := md5.New()
	put := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, k := range names {
		a := attrs[k]
		put([]byte(k))
		put([]byte(a.DataType))
		if strings.HasPrefix(a.DataType, "Binary") {
			h.Write([]byte{2})
			put(a.BinaryValue)
		} else {
			h.Write([]byte{1})
			put([]byte(a.StringValue))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkMsgAttrs validates message attributes as SQS does (at most 10, a
// known data type, a value of that type).
func checkMsgAttrs(attrs map[string]msgAttr) (size int, e *sqsError) {
	if len(attrs) > 10 {
		return 0, errInvalidParameter("Number of message attributes [" + strconv.Itoa(len(attrs)) + "] exceeds the allowed maximum [10].")
	}
	for k, a := range attrs {
		base, _, _ := strings.Cut(a.DataType, ".")
		switch {
		case k == "" || len(k) > 256:
			return 0, errInvalidParameter("Message attribute name is invalid.")
		case base == "String" || base == "Number":
			if a.StringValue == "" {
				return 0, errInvalidParameter("Message attribute '" + k + "' must contain a non-empty value of message attribute type '" + a.DataType + "'.")
			}
			if base == "Number" {
				if _, err := strconv.ParseFloat(a.StringValue, 64); err != nil {
					return 0, errInvalidParameter("Can't cast the value of message attribute '" + k + "' to a number.")
				}
			}
		case base == "Binary":
			if len(a.BinaryValue) == 0 {
				return 0, errInvalidParameter("Message attribute '" + k + "' must contain a non-empty value of message attribute type 'Binary'.")
			}
		default:
			return 0, errInvalidParameter("The type of message attribute '" + k + "' is invalid.")
		}
		size += len(k) + len(a.DataType) + len(a.StringValue) + len(a.BinaryValue)
	}
	return size, nil
}

func unixMs(t time.Time) int64 { return t.UnixMilli() }
