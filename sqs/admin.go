package sqs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Queue attribute names used by init and dlq. SQS spells them this way on
// every endpoint; they are plain strings so that callers need no AWS type.
const (
	AttrQueueArn               = "QueueArn"
	AttrRedrivePolicy          = "RedrivePolicy"
	AttrVisibilityTimeout      = "VisibilityTimeout"
	AttrMessageRetentionPeriod = "MessageRetentionPeriod"
	// AttrKmsMasterKeyID turns on SSE-KMS with that key.
	AttrKmsMasterKeyID = "KmsMasterKeyId"
	// AttrSqsManagedSseEnabled turns on SSE-SQS (keys SQS owns).
	AttrSqsManagedSseEnabled = "SqsManagedSseEnabled"
)

// QueueURL looks a queue up by name. A queue that does not exist is
// plan.ErrQueueNotFound. owner is the account id of another account's
// queue, or "" for the caller's own.
func (c *Client) QueueURL(ctx context.Context, name, owner string) (string, error) {
	in := &awssqs.GetQueueUrlInput{QueueName: aws.String(name)}
	if owner != "" {
		in.QueueOwnerAWSAccountId = aws.String(owner)
	}
	out, err := c.api.GetQueueUrl(ctx, in)
	if err != nil {
		return "", wrap("get queue url", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// MaxReceiveCount is the maxReceiveCount of a queue's redrive policy: how
// many receives SQS allows before it moves a message to the dead-letter
// queue on the next. 0 when the queue has no redrive policy.
func (c *Client) MaxReceiveCount(ctx context.Context, queueURL string) (int, error) {
	attrs, err := c.QueueAttributes(ctx, queueURL, AttrRedrivePolicy)
	if err != nil {
		return 0, err
	}
	raw := attrs[AttrRedrivePolicy]
	if raw == "" {
		return 0, nil
	}
	var p struct {
		Count any `json:"maxReceiveCount"` // a number, or a string on some endpoints
	}
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return 0, fmt.Errorf("sqs redrive policy of %s: %w", queueURL, err)
	}
	n, err := strconv.Atoi(fmt.Sprint(p.Count))
	if err != nil {
		return 0, fmt.Errorf("sqs redrive policy of %s: maxReceiveCount %v", queueURL, p.Count)
	}
	return n, nil
}

// CreateQueue creates a standard queue with attrs and returns its URL. SQS
// answers QueueAlreadyExists when a queue of that name exists with other
// attributes, so callers that want to be idempotent look the name up first.
func (c *Client) CreateQueue(ctx context.Context, name string, attrs map[string]string) (string, error) {
	out, err := c.api.CreateQueue(ctx, &awssqs.CreateQueueInput{
		QueueName:  aws.String(name),
		Attributes: attrs,
	})
	if err != nil {
		return "", wrap("create queue", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// QueueAttributes reads the named queue attributes (all of them when none is
// named). Attributes the queue does not have are absent from the map.
func (c *Client) QueueAttributes(ctx context.Context, queueURL string, names ...string) (map[string]string, error) {
	in := &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL)}
	if len(names) == 0 {
		in.AttributeNames = []types.QueueAttributeName{types.QueueAttributeNameAll}
	}
	for _, n := range names {
		in.AttributeNames = append(in.AttributeNames, types.QueueAttributeName(n))
	}
	out, err := c.api.GetQueueAttributes(ctx, in)
	if err != nil {
		return nil, wrap("get attributes", queueURL, err)
	}
	if out.Attributes == nil {
		return map[string]string{}, nil
	}
	return out.Attributes, nil
}

// SetQueueAttributes changes queue attributes; those not named keep their
// values.
func (c *Client) SetQueueAttributes(ctx context.Context, queueURL string, attrs map[string]string) error {
	_, err := c.api.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{
		QueueUrl:   aws.String(queueURL),
		Attributes: attrs,
	})
	return wrap("set attributes", queueURL, err)
}

// Detailed is a received message with the system attributes that tell where
// it comes from, for inspecting a dead-letter queue.
type Detailed struct {
	Message
	// SentAt is when the message was first sent (SQS's SentTimestamp; a
	// message moved by a redrive policy keeps its original time).
	SentAt time.Time
	// SourceQueueARN is SQS's DeadLetterQueueSourceArn: the queue whose
	// redrive policy moved the message here, when SQS did the moving and
	// the endpoint reports it.
	SourceQueueARN string
}

// ReceiveDetailed is Receive with the message's sent time and dead-letter
// source asked for as well.
func (c *Client) ReceiveDetailed(ctx context.Context, queueURL string, max int, wait, visibility time.Duration) ([]Detailed, error) {
	raw, err := c.receive(ctx, queueURL, max, wait, visibility,
		types.MessageSystemAttributeNameSentTimestamp, types.MessageSystemAttributeNameDeadLetterQueueSourceArn)
	if err != nil {
		return nil, err
	}
	msgs := make([]Detailed, 0, len(raw))
	for _, m := range raw {
		d := Detailed{
			Message:        toMessage(queueURL, m),
			SourceQueueARN: m.Attributes[string(types.MessageSystemAttributeNameDeadLetterQueueSourceArn)],
		}
		if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
			d.SentAt = time.UnixMilli(ms).UTC()
		}
		msgs = append(msgs, d)
	}
	return msgs, nil
}

// SetVisibilityBatch changes the visibility of up to any number of messages
// of one queue, MaxBatch per call; zero makes them visible again at once. It
// returns one error slot per receipt and a non-nil error only when a whole
// call failed.
func (c *Client) SetVisibilityBatch(ctx context.Context, queueURL string, receipts []string, d time.Duration) ([]error, error) {
	changes := make([]VisibilityChange, len(receipts))
	for i, r := range receipts {
		changes[i] = VisibilityChange{Receipt: r, D: d}
	}
	return c.ChangeVisibilities(ctx, queueURL, changes)
}
