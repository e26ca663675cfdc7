// Package sqs is the queue: sending tasks (one or in batches), receiving them
// with long polling, keeping their leases (visibility timeouts) alive,
// acknowledging and releasing them, and reading queue depths. AWS errors are
// translated into the plan package's error kinds here so that callers above
// never see AWS types.
package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/taskiq-go/taskiq-go/internal/awserr"
)

// MaxBatch is the most entries SQS takes in one batch call, and the most
// messages one receive can return.
const MaxBatch = 10

// MaxBodyBytes is the body size above which a task is carried through S3
// instead (claim-check). SQS allows 1 MiB, but 256 KiB is what every region
// and every emulator accept.
const MaxBodyBytes = 256 * 1024

// Message is one received message.
type Message struct {
	QueueURL      string
	MessageID     string
	Body          string
	ReceiptHandle string
	// ReceiveCount is SQS's ApproximateReceiveCount: 1 on first delivery.
	ReceiveCount int
	Attributes   map[string]string
}

// Entry is one message to send.
type Entry struct {
	Body       string
	Attributes map[string]string
	Delay      time.Duration
}

// Stats are a queue's approximate depths.
type Stats struct {
	Visible  int `json:"visible"`
	InFlight int `json:"in_flight"`
	Delayed  int `json:"delayed"`
}

// Client sends and receives on SQS queues named by URL.
type Client struct {
	api  *awssqs.Client
	fast *direct // sends, when set up (see direct)
}

// New wraps an SDK client.
func New(api *awssqs.Client) *Client { return &Client{api: api, fast: newDirect(api)} }

func wrap(op, queueURL string, err error) error {
	if err == nil {
		return nil
	}
	err = fmt.Errorf("sqs %s %s: %w", op, queueURL, awserr.Classify(err))
	if isPermanentAPI(err) {
		return markPermanent(err)
	}
	return err
}

// entryError is the error of one failed entry of a batch call: permanent
// when SQS blames the request (sender fault) or the code says so.
func entryError(op string, code, msg *string, senderFault bool) error {
	err := fmt.Errorf("sqs %s: %s: %s", op, aws.ToString(code), aws.ToString(msg))
	if senderFault || permanentCode(aws.ToString(code)) {
		return markPermanent(err)
	}
	return err
}

func stringAttrs(m map[string]string) map[string]types.MessageAttributeValue {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]types.MessageAttributeValue, len(m))
	for k, v := range m {
		out[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return out
}

// Send puts one message on the queue and returns its SQS message id.
func (c *Client) Send(ctx context.Context, queueURL string, e Entry) (string, error) {
	if c.fast != nil {
		id, err := c.fast.send(ctx, queueURL, sendEntry{
			MessageBody: e.Body, MessageAttributes: attrs(e.Attributes), DelaySeconds: int32(e.Delay / time.Second),
		})
		return id, wrap("send", queueURL, err)
	}
	out, err := c.api.SendMessage(ctx, &awssqs.SendMessageInput{
		QueueUrl:          aws.String(queueURL),
		MessageBody:       aws.String(e.Body),
		MessageAttributes: stringAttrs(e.Attributes),
		DelaySeconds:      int32(e.Delay / time.Second),
	})
	if err != nil {
		return "", wrap("send", queueURL, err)
	}
	return aws.ToString(out.MessageId), nil
}

// SendBatch sends entries in batches of up to MaxBatch, keeping each batch
// under the 256 KiB total SQS allows. It returns one error slot per entry
// (nil for sent ones) and a non-nil error only when a whole call failed;
// then every entry not sent by an earlier call has that error in its slot.
func (c *Client) SendBatch(ctx context.Context, queueURL string, entries []Entry) ([]error, error) {
	errs := make([]error, len(entries))
	for start := 0; start < len(entries); {
		end, size := start, 0
		for end < len(entries) && end-start < MaxBatch && (end == start || size+entrySize(entries[end]) <= MaxBodyBytes) {
			size += entrySize(entries[end])
			end++
		}
		failed, err := c.sendBatch(ctx, queueURL, entries, start, end)
		if err != nil {
			err = wrap("send batch", queueURL, err)
			for i := start; i < len(entries); i++ {
				errs[i] = err
			}
			return errs, err
		}
		for _, f := range failed {
			i, _ := strconv.Atoi(f.Id)
			if i >= start && i < end {
				errs[i] = fmt.Errorf("sqs send batch: %s: %s", f.Code, f.Message)
			}
		}
		start = end
	}
	return errs, nil
}

// entrySize is what an entry counts towards SQS's limit on a batch: its
// body and its attributes (a pack's name its tasks).
func entrySize(e Entry) int {
	n := len(e.Body)
	for k, v := range e.Attributes {
		n += len(k) + len(v) + len("String")
	}
	return n
}

// sendBatch sends entries[start:end] in one SendMessageBatch, each entry
// identified by its index, and returns the failed ones.
func (c *Client) sendBatch(ctx context.Context, queueURL string, entries []Entry, start, end int) ([]batchFailure, error) {
	if c.fast != nil {
		batch := make([]sendEntry, 0, end-start)
		for i := start; i < end; i++ {
			batch = append(batch, sendEntry{
				Id: strconv.Itoa(i), MessageBody: entries[i].Body,
				MessageAttributes: attrs(entries[i].Attributes), DelaySeconds: int32(entries[i].Delay / time.Second),
			})
		}
		return c.fast.sendBatch(ctx, queueURL, batch)
	}
	in := &awssqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL)}
	for i := start; i < end; i++ {
		in.Entries = append(in.Entries, types.SendMessageBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			MessageBody:       aws.String(entries[i].Body),
			MessageAttributes: stringAttrs(entries[i].Attributes),
			DelaySeconds:      int32(entries[i].Delay / time.Second),
		})
	}
	out, err := c.api.SendMessageBatch(ctx, in)
	if err != nil {
		return nil, err
	}
	failed := make([]batchFailure, len(out.Failed))
	for i, f := range out.Failed {
		failed[i] = batchFailure{Id: aws.ToString(f.Id), Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: f.SenderFault}
	}
	return failed, nil
}

// Receive long-polls for up to max messages (at most MaxBatch), hiding each
// for visibility. It returns early when messages arrive and empty after wait.
func (c *Client) Receive(ctx context.Context, queueURL string, max int, wait, visibility time.Duration) ([]Message, error) {
	raw, err := c.receive(ctx, queueURL, max, wait, visibility)
	msgs := make([]Message, len(raw))
	for i, m := range raw {
		msgs[i] = toMessage(queueURL, m)
	}
	return msgs, err
}

// receive is ReceiveMessage with the message attributes and the receive
// count, plus the extra system attributes named.
func (c *Client) receive(ctx context.Context, queueURL string, max int, wait, visibility time.Duration, extra ...types.MessageSystemAttributeName) ([]types.Message, error) {
	if max > MaxBatch {
		max = MaxBatch
	}
	if max < 1 {
		return nil, nil
	}
	out, err := c.api.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(queueURL),
		MaxNumberOfMessages:         int32(max),
		WaitTimeSeconds:             int32(wait / time.Second),
		VisibilityTimeout:           int32(visibility / time.Second),
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: append([]types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}, extra...),
	})
	if err != nil {
		return nil, wrap("receive", queueURL, err)
	}
	return out.Messages, nil
}

func toMessage(queueURL string, m types.Message) Message {
	n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	attrs := make(map[string]string, len(m.MessageAttributes))
	for k, v := range m.MessageAttributes {
		attrs[k] = aws.ToString(v.StringValue)
	}
	return Message{
		QueueURL:      queueURL,
		MessageID:     aws.ToString(m.MessageId),
		Body:          aws.ToString(m.Body),
		ReceiptHandle: aws.ToString(m.ReceiptHandle),
		ReceiveCount:  n,
		Attributes:    attrs,
	}
}

// SetVisibility changes how long a received message stays hidden: a longer
// time extends its lease, zero releases it to other workers at once.
func (c *Client) SetVisibility(ctx context.Context, queueURL, receipt string, d time.Duration) error {
	if d < 0 {
		d = 0
	}
	_, err := c.api.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(queueURL),
		ReceiptHandle:     aws.String(receipt),
		VisibilityTimeout: int32((d + time.Second - 1) / time.Second),
	})
	return wrap("change visibility", queueURL, err)
}

// VisibilityChange is one entry of ChangeVisibilities: a received message
// and how long it is to stay hidden from now.
type VisibilityChange struct {
	Receipt string
	D       time.Duration
}

// ChangeVisibilities changes the visibility of messages of one queue, each
// its own, MaxBatch to a call: the heartbeat extends every running task's lease with
// one call per ten tasks. It returns one error slot per entry (nil for
// those changed; permanent for a receipt SQS refuses for good) and a
// non-nil error only when a whole call failed (the entries of the calls not
// made keep a nil slot, so callers test the error first).
func (c *Client) ChangeVisibilities(ctx context.Context, queueURL string, changes []VisibilityChange) ([]error, error) {
	errs := make([]error, len(changes))
	for start := 0; start < len(changes); start += MaxBatch {
		end := min(start+MaxBatch, len(changes))
		in := &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(queueURL)}
		for i := start; i < end; i++ {
			d := max(changes[i].D, 0)
			in.Entries = append(in.Entries, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(changes[i].Receipt),
				VisibilityTimeout: int32((d + time.Second - 1) / time.Second),
			})
		}
		out, err := c.api.ChangeMessageVisibilityBatch(ctx, in)
		if err != nil {
			return errs, wrap("change visibility batch", queueURL, err)
		}
		for _, f := range out.Failed {
			if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= start && i < end {
				errs[i] = entryError("change visibility batch", f.Code, f.Message, f.SenderFault)
			}
		}
	}
	return errs, nil
}

// Delete acknowledges a message for good.
func (c *Client) Delete(ctx context.Context, queueURL, receipt string) error {
	_, err := c.api.DeleteMessage(ctx, &awssqs.DeleteMessageInput{
		QueueUrl:      aws.String(queueURL),
		ReceiptHandle: aws.String(receipt),
	})
	return wrap("delete", queueURL, err)
}

// Stats reads a queue's approximate depths.
func (c *Client) Stats(ctx context.Context, queueURL string) (Stats, error) {
	out, err := c.api.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return Stats{}, wrap("get attributes", queueURL, err)
	}
	get := func(n types.QueueAttributeName) int {
		v, _ := strconv.Atoi(out.Attributes[string(n)])
		return v
	}
	return Stats{
		Visible:  get(types.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: get(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  get(types.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}

// Check verifies that the queue exists and is reachable, so that commands
// can fail with a clear message before doing any other work.
func (c *Client) Check(ctx context.Context, queueURL string) error {
	_, err := c.Stats(ctx, queueURL)
	return err
}

// DeriveQueueURL maps a logical queue name to a queue URL by the naming rule:
// the default queue's URL with "-NAME" appended to its last path segment
// (same account and region). "default" maps to the default URL itself.
func DeriveQueueURL(defaultURL, name string) (string, error) {
	if name == "" || name == "default" {
		return defaultURL, nil
	}
	i := strings.LastIndexByte(defaultURL, '/')
	if i < 0 || i == len(defaultURL)-1 {
		return "", errors.New("default queue URL has no queue name to derive from")
	}
	return defaultURL + "-" + name, nil
}

// DeleteBatch acknowledges up to MaxBatch messages of one queue in one call.
// It returns one error slot per receipt (nil for deleted ones) and a non-nil
// error only when the whole call failed.
func (c *Client) DeleteBatch(ctx context.Context, queueURL string, receipts []string) ([]error, error) {
	errs := make([]error, len(receipts))
	for start := 0; start < len(receipts); start += MaxBatch {
		end := min(start+MaxBatch, len(receipts))
		in := &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL)}
		for i := start; i < end; i++ {
			in.Entries = append(in.Entries, types.DeleteMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(receipts[i]),
			})
		}
		out, err := c.api.DeleteMessageBatch(ctx, in)
		if err != nil {
			return errs, wrap("delete batch", queueURL, err)
		}
		for _, f := range out.Failed {
			if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= start && i < end {
				errs[i] = entryError("delete batch", f.Code, f.Message, f.SenderFault)
			}
		}
	}
	return errs, nil
}
