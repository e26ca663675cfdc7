package devserver

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// startServer runs a Server for one test and closes it at the end.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// target is the endpoint a test talks to: a local Server or, for the
// conformance tests with TASKIQ_GO_TEST_ENDPOINT set, that endpoint
// (moto_server in CI) with queues and a bucket of the test's own, named with
// a random prefix.
type target struct {
	endpoint, region, account string
	creds                     Credentials
	prefix, bucket            string
	local                     *Server // nil for an external endpoint
}

func localTarget(s *Server) *target {
	return &target{endpoint: s.Endpoint(), region: s.Region(), account: s.opts.AccountID, creds: s.Credentials(),
		bucket: s.Bucket(), local: s}
}

// external reports whether the tests run against another emulator.
func (tg *target) external() bool { return tg.local == nil }

func (tg *target) Endpoint() string { return tg.endpoint }
func (tg *target) Region() string   { return tg.region }
func (tg *target) Bucket() string   { return tg.bucket }
func (tg *target) QueueURL(name string) string {
	return tg.endpoint + "/" + tg.account + "/" + tg.prefix + name
}
func (tg *target) arn(name string) string {
	return "arn:aws:sqs:" + tg.region + ":" + tg.account + ":" + tg.prefix + name
}

// newTarget starts a local Server with opts, or sets up opts' queues (DLQ
// first, with the redrive policy) and a bucket on the external endpoint.
func newTarget(t *testing.T, opts Options) *target {
	t.Helper()
	ep := os.Getenv("TASKIQ_GO_TEST_ENDPOINT")
	if ep == "" {
		return localTarget(startServer(t, opts))
	}
	// The external endpoint's own default region: moto wants a
	// LocationConstraint for buckets in any other.
	region := cmp.Or(opts.Region, "us-east-1")
	opts = withDefaults(opts)
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	tg := &target{endpoint: ep, region: region, creds: Credentials{"test", "test"},
		prefix: "c" + hex.EncodeToString(rb[:]) + "-", bucket: "c" + hex.EncodeToString(rb[:]) + "-bucket"}
	ctx := context.Background()
	c := sqsClient(t, tg)
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(tg.prefix + opts.DeadLetterQueue)})
	if err != nil {
		t.Fatalf("create DLQ on %s: %v", ep, err)
	}
	u, _ := url.Parse(*out.QueueUrl)
	tg.account = strings.Split(strings.Trim(u.Path, "/"), "/")[0]
	policy := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, tg.arn(opts.DeadLetterQueue), opts.MaxReceiveCount)
	for _, q := range opts.Queues {
		if _, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(tg.prefix + q),
			Attributes: map[string]string{"RedrivePolicy": policy}}); err != nil {
			t.Fatalf("create queue on %s: %v", ep, err)
		}
	}
	if _, err := s3Client(t, tg).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(tg.bucket)}); err != nil {
		t.Fatalf("create bucket on %s: %v", ep, err)
	}
	return tg
}

func awsConfig(t *testing.T, tg *target) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(tg.Region()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(tg.creds.AccessKeyID, tg.creds.SecretAccessKey, "")),
	)
	if err != nil {
		t.Fatalf("load aws config: %v", err)
	}
	return cfg
}

func sqsClient(t *testing.T, tg *target) *sqs.Client {
	return sqs.NewFromConfig(awsConfig(t, tg), func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(tg.Endpoint())
	})
}

func s3Client(t *testing.T, tg *target) *s3.Client {
	return s3.NewFromConfig(awsConfig(t, tg), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(tg.Endpoint())
		o.UsePathStyle = true
	})
}

// errCode reports what the worker would see of an SDK error.
func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestDefaults(t *testing.T) {
	s := startServer(t, Options{})
	tg := localTarget(s)
	u, err := url.Parse(s.Endpoint())
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "0" || u.Port() == "" {
		t.Fatalf("Endpoint() = %q", s.Endpoint())
	}
	if s.Region() != DefaultRegion || s.Bucket() != "taskiq" {
		t.Fatalf("Region/Bucket = %q/%q", s.Region(), s.Bucket())
	}
	if got, want := s.QueueURL("taskiq"), s.Endpoint()+"/000000000000/taskiq"; got != want {
		t.Fatalf("QueueURL = %q, want %q", got, want)
	}
	ctx := context.Background()
	c := sqsClient(t, tg)
	for _, q := range []string{"taskiq", "taskiq-dlq"} {
		out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q)})
		if err != nil {
			t.Fatalf("GetQueueUrl %s: %v", q, err)
		}
		if *out.QueueUrl != s.QueueURL(q) {
			t.Fatalf("GetQueueUrl %s = %q, want %q", q, *out.QueueUrl, s.QueueURL(q))
		}
	}
	if _, err := s3Client(t, tg).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("taskiq")}); err != nil {
		t.Fatalf("HeadBucket: %v", err)
	}
}

// sqsFixture is one server with the queues the SQS tests use.
type sqsFixture struct {
	s *target
	c *sqs.Client
}

func (f sqsFixture) url(name string) *string { return aws.String(f.s.QueueURL(name)) }

func (f sqsFixture) receive(t *testing.T, queue string, max, wait, vis int32) []sqstypes.Message {
	t.Helper()
	out, err := f.c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl:                    f.url(queue),
		MaxNumberOfMessages:         max,
		WaitTimeSeconds:             wait,
		VisibilityTimeout:           vis,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		t.Fatalf("ReceiveMessage %s: %v", queue, err)
	}
	return out.Messages
}

func (f sqsFixture) send(t *testing.T, queue, body string) {
	t.Helper()
	if _, err := f.c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: f.url(queue), MessageBody: aws.String(body)}); err != nil {
		t.Fatalf("SendMessage %s: %v", queue, err)
	}
}

func (f sqsFixture) attrs(t *testing.T, queue string) map[string]string {
	t.Helper()
	out, err := f.c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl:       f.url(queue),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes %s: %v", queue, err)
	}
	return out.Attributes
}

func (f sqsFixture) depth(t *testing.T, queue string) (visible, notVisible, delayed string) {
	a := f.attrs(t, queue)
	return a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"], a["ApproximateNumberOfMessagesDelayed"]
}

// leaseExpiry is long enough for a 1 s visibility timeout to run out and be
// noticed by the periodic task.
const leaseExpiry = 1300 * time.Millisecond

func receiveCount(m sqstypes.Message) string {
	return m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]
}

// TestSQS checks, with the real SDK client, each SQS behaviour the worker
// relies on. Each subtest uses its own queue so that none sees another's
// leftovers.
func TestSQS(t *testing.T) {
	queues := []string{"attrs", "batch", "poll", "vis", "cmv", "cmvbatch", "del", "depth", "redrive"}
	s := newTarget(t, Options{Queues: queues, MaxReceiveCount: 3})
	f := sqsFixture{s: s, c: sqsClient(t, s)}
	ctx := context.Background()

	t.Run("QueueURLHostPort", func(t *testing.T) {
		out, err := f.c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(s.prefix + "attrs")})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(*out.QueueUrl)
		e, _ := url.Parse(s.Endpoint())
		if u.Host != e.Host || u.Path != "/"+s.account+"/"+s.prefix+"attrs" {
			t.Fatalf("queue URL %q does not point at %q", *out.QueueUrl, s.Endpoint())
		}
	})

	t.Run("GetQueueUrlMissing", func(t *testing.T) {
		_, err := f.c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")})
		var qe *sqstypes.QueueDoesNotExist
		if !errors.As(err, &qe) {
			t.Fatalf("got %T %v, want *types.QueueDoesNotExist", err, err)
		}
		t.Logf("missing queue: %T, ErrorCode %q, HTTP %d", qe, errCode(err), httpStatus(err))
		// Every call naming a missing queue says the same.
		_, err = f.c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: f.url("nope")})
		if !errors.As(err, &qe) {
			t.Fatalf("GetQueueAttributes on missing queue: got %T %v", err, err)
		}
		_, err = f.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: f.url("nope"), MessageBody: aws.String("x")})
		if !errors.As(err, &qe) {
			t.Fatalf("SendMessage to missing queue: got %T %v", err, err)
		}
	})

	t.Run("SendWithAttributesAndDelay", func(t *testing.T) {
		_, err := f.c.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl:     f.url("attrs"),
			MessageBody:  aws.String(`{"v":1}`),
			DelaySeconds: 1,
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				"kind":  {DataType: aws.String("String"), StringValue: aws.String("task")},
				"prio":  {DataType: aws.String("Number"), StringValue: aws.String("7")},
				"bytes": {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.receive(t, "attrs", 1, 0, 0); len(got) != 0 {
			t.Fatalf("delayed message received at once")
		}
		if v, nv, d := f.depth(t, "attrs"); v != "0" || nv != "0" || d != "1" {
			t.Fatalf("depth while delayed = %s/%s/%s, want 0/0/1", v, nv, d)
		}
		got := f.receive(t, "attrs", 1, 3, 0)
		if len(got) != 1 {
			t.Fatalf("delayed message not received after the delay")
		}
		m := got[0]
		if *m.Body != `{"v":1}` || *m.MessageAttributes["kind"].StringValue != "task" ||
			*m.MessageAttributes["prio"].StringValue != "7" || *m.MessageAttributes["prio"].DataType != "Number" ||
			!bytes.Equal(m.MessageAttributes["bytes"].BinaryValue, []byte{0, 1, 2}) {
			t.Fatalf("message mangled: body %q attrs %+v", *m.Body, m.MessageAttributes)
		}
		if receiveCount(m) != "1" {
			t.Fatalf("ApproximateReceiveCount = %q, want 1", receiveCount(m))
		}
		// Attributes that were not asked for are not returned, as on SQS.
		out, err := f.c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: f.url("attrs")})
		if err != nil || len(out.Messages) != 0 {
			t.Fatalf("in-flight message received again: %v %d", err, len(out.Messages))
		}
		if _, err := f.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: f.url("attrs"), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
		}); err != nil {
			t.Fatal(err)
		}
		out, err = f.c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: f.url("attrs")})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("receive without attribute names: %v %d", err, len(out.Messages))
		}
		if len(out.Messages[0].MessageAttributes) != 0 || len(out.Messages[0].Attributes) != 0 {
			t.Fatalf("unrequested attributes returned: %v %v", out.Messages[0].MessageAttributes, out.Messages[0].Attributes)
		}
	})

	t.Run("SendMessageBatch", func(t *testing.T) {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i := range 10 {
			e := sqstypes.SendMessageBatchRequestEntry{
				Id:          aws.String("e" + strconv.Itoa(i)),
				MessageBody: aws.String("m" + strconv.Itoa(i)),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{
					"n": {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(i))},
				},
			}
			if i == 9 {
				e.DelaySeconds = 30
			}
			entries = append(entries, e)
		}
		out, err := f.c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: f.url("batch"), Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Successful) != 10 || len(out.Failed) != 0 {
			t.Fatalf("SendMessageBatch: %d ok, %d failed", len(out.Successful), len(out.Failed))
		}
		for _, e := range out.Successful {
			if e.Id == nil || e.MessageId == nil || e.MD5OfMessageBody == nil || e.MD5OfMessageAttributes == nil {
				t.Fatalf("incomplete batch result entry %+v", e)
			}
		}
		got := f.receive(t, "batch", 10, 0, 30)
		if len(got) != 9 {
			t.Fatalf("received %d of the 9 undelayed batch messages", len(got))
		}
		if v, nv, d := f.depth(t, "batch"); v != "0" || nv != "9" || d != "1" {
			t.Fatalf("depth = %s/%s/%s, want 0/9/1", v, nv, d)
		}
		// Batch validation matches SQS.
		eleven := append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String("e10"), MessageBody: aws.String("m10")})
		_, err = f.c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: f.url("batch"), Entries: eleven})
		var tooMany *sqstypes.TooManyEntriesInBatchRequest
		if !errors.As(err, &tooMany) {
			t.Fatalf("11 entries: got %T %v", err, err)
		}
	})

	t.Run("SizeLimits", func(t *testing.T) {
		big := strings.Repeat("x", 1<<20+1)
		_, err := f.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: f.url("batch"), MessageBody: aws.String(big)})
		var ae smithy.APIError
		errors.As(err, &ae)
		t.Logf("message over 1 MiB: %T, ErrorCode %q", ae, errCode(err))
		if errCode(err) != "InvalidParameterValue" {
			t.Fatalf("message over 1 MiB: got %T %v", err, err)
		}
		half := strings.Repeat("y", 600<<10)
		_, err = f.c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: f.url("batch"), Entries: []sqstypes.SendMessageBatchRequestEntry{
			{Id: aws.String("a"), MessageBody: aws.String(half)},
			{Id: aws.String("b"), MessageBody: aws.String(half)},
		}})
		var tooLong *sqstypes.BatchRequestTooLong
		if !errors.As(err, &tooLong) {
			t.Fatalf("batch over 1 MiB: got %T %v", err, err)
		}
	})

	t.Run("LongPoll", func(t *testing.T) {
		go func() {
			time.Sleep(300 * time.Millisecond)
			_, _ = f.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: f.url("poll"), MessageBody: aws.String("late")})
		}()
		t0 := time.Now()
		got := f.receive(t, "poll", 10, 5, 0)
		if len(got) != 1 || time.Since(t0) > 2*time.Second {
			t.Fatalf("long poll: %d messages after %v", len(got), time.Since(t0))
		}
		t0 = time.Now()
		got = f.receive(t, "poll", 10, 1, 0)
		if el := time.Since(t0); len(got) != 0 || el < 900*time.Millisecond || el > 3*time.Second {
			t.Fatalf("empty long poll: %d messages after %v", len(got), el)
		}
	})

	t.Run("PerCallVisibilityTimeout", func(t *testing.T) {
		f.send(t, "vis", "v")
		first := f.receive(t, "vis", 1, 0, 1)
		if len(first) != 1 {
			t.Fatal("no message")
		}
		if len(f.receive(t, "vis", 1, 0, 0)) != 0 {
			t.Fatal("message visible during its 1 s visibility timeout")
		}
		t0 := time.Now()
		again := f.receive(t, "vis", 1, 3, 0)
		if len(again) != 1 || *again[0].MessageId != *first[0].MessageId {
			t.Fatal("message did not come back after its visibility timeout")
		}
		t.Logf("visibility 1 s: message back %v after the re-receive started", time.Since(t0))
		if receiveCount(again[0]) != "2" {
			t.Fatalf("ApproximateReceiveCount = %q, want 2", receiveCount(again[0]))
		}
		// The old receipt handle is dead: on SQS deleting with it may
		// succeed, here it is ReceiptHandleIsInvalid.
		_, err := f.c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: f.url("vis"), ReceiptHandle: first[0].ReceiptHandle})
		var rhi *sqstypes.ReceiptHandleIsInvalid
		switch {
		case f.s.external():
			// AWS documents that a delete with an older handle "might"
			// not delete the message: moto deletes it, this endpoint
			// refuses. Both are right; the worker must not count on
			// either, and the refusal is the stricter test of that.
			t.Logf("stale receipt handle on DeleteMessage (external): %v", err)
			if err == nil {
				return
			}
		case !errors.As(err, &rhi):
			t.Fatalf("delete with stale handle: got %T %v", err, err)
		}
		t.Logf("stale receipt handle on DeleteMessage: %T, ErrorCode %q", rhi, errCode(err))
		if _, err := f.c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: f.url("vis"), ReceiptHandle: again[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ChangeMessageVisibility", func(t *testing.T) {
		f.send(t, "cmv", "c")
		m := f.receive(t, "cmv", 1, 0, 1)
		if len(m) != 1 {
			t.Fatal("no message")
		}
		if _, err := f.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: f.url("cmv"), ReceiptHandle: m[0].ReceiptHandle, VisibilityTimeout: 30,
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(leaseExpiry)
		if got := f.receive(t, "cmv", 1, 0, 0); len(got) != 0 {
			t.Fatal("extended message came back after its original 1 s timeout")
		}
		if _, err := f.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: f.url("cmv"), ReceiptHandle: m[0].ReceiptHandle, VisibilityTimeout: 0,
		}); err != nil {
			t.Fatal(err)
		}
		got := f.receive(t, "cmv", 1, 0, 0)
		if len(got) != 1 {
			t.Fatal("message not visible at once after visibility 0")
		}
		if receiveCount(got[0]) != "2" {
			t.Fatalf("ApproximateReceiveCount = %q, want 2", receiveCount(got[0]))
		}
		// A handle that is no longer in flight.
		_, err := f.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: f.url("cmv"), ReceiptHandle: m[0].ReceiptHandle, VisibilityTimeout: 10,
		})
		var nif *sqstypes.MessageNotInflight
		if f.s.external() {
			// moto applies a stale handle to the message's current
			// lease; AWS does not say, this endpoint refuses it (as
			// the lease it named is over).
			t.Logf("stale receipt handle on ChangeMessageVisibility (external): %v", err)
			return
		}
		if !errors.As(err, &nif) {
			t.Fatalf("stale handle: got %T %v", err, err)
		}
		t.Logf("stale receipt handle on ChangeMessageVisibility: %T, ErrorCode %q", nif, errCode(err))
	})

	t.Run("ChangeMessageVisibilityBatch", func(t *testing.T) {
		f.send(t, "cmvbatch", "a")
		f.send(t, "cmvbatch", "b")
		got := f.receive(t, "cmvbatch", 10, 0, 30)
		if len(got) != 2 {
			t.Fatalf("received %d, want 2", len(got))
		}
		out, err := f.c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{
			QueueUrl: f.url("cmvbatch"),
			Entries: []sqstypes.ChangeMessageVisibilityBatchRequestEntry{
				{Id: aws.String("a"), ReceiptHandle: got[0].ReceiptHandle, VisibilityTimeout: 0},
				{Id: aws.String("b"), ReceiptHandle: got[1].ReceiptHandle, VisibilityTimeout: 0},
				{Id: aws.String("bad"), ReceiptHandle: aws.String("no-such-handle"), VisibilityTimeout: 0},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Successful) != 2 || len(out.Failed) != 1 || *out.Failed[0].Id != "bad" {
			t.Fatalf("batch result %+v", out)
		}
		again := f.receive(t, "cmvbatch", 10, 0, 1)
		if len(again) != 2 {
			t.Fatalf("after batch release received %d, want 2", len(again))
		}
		// Extending in a batch keeps them hidden past the 1 s lease.
		out, err = f.c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{
			QueueUrl: f.url("cmvbatch"),
			Entries: []sqstypes.ChangeMessageVisibilityBatchRequestEntry{
				{Id: aws.String("a"), ReceiptHandle: again[0].ReceiptHandle, VisibilityTimeout: 30},
				{Id: aws.String("b"), ReceiptHandle: again[1].ReceiptHandle, VisibilityTimeout: 30},
			},
		})
		if err != nil || len(out.Successful) != 2 {
			t.Fatalf("batch extend: %v %+v", err, out)
		}
		time.Sleep(leaseExpiry)
		if got := f.receive(t, "cmvbatch", 10, 0, 0); len(got) != 0 {
			t.Fatalf("batch-extended messages came back")
		}
	})

	t.Run("DeleteAndDeleteBatch", func(t *testing.T) {
		for i := range 3 {
			f.send(t, "del", strconv.Itoa(i))
		}
		got := f.receive(t, "del", 10, 0, 30)
		if len(got) != 3 {
			t.Fatalf("received %d, want 3", len(got))
		}
		if _, err := f.c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: f.url("del"), ReceiptHandle: got[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		out, err := f.c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
			QueueUrl: f.url("del"),
			Entries: []sqstypes.DeleteMessageBatchRequestEntry{
				{Id: aws.String("one"), ReceiptHandle: got[1].ReceiptHandle},
				{Id: aws.String("two"), ReceiptHandle: got[2].ReceiptHandle},
				{Id: aws.String("gone"), ReceiptHandle: got[0].ReceiptHandle},
				{Id: aws.String("empty"), ReceiptHandle: aws.String("")},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		// A handle of a message already deleted: AWS and moto answer
		// success (deletes are idempotent), this endpoint a failure
		// entry, as it keeps no record of deleted messages. Either way
		// the empty handle fails.
		if wantFailed := map[bool]int{true: 1, false: 2}[f.s.external()]; len(out.Successful) != 4-wantFailed || len(out.Failed) != wantFailed {
			t.Fatalf("DeleteMessageBatch: %d ok, %d failed", len(out.Successful), len(out.Failed))
		}
		if v, nv, d := f.depth(t, "del"); v != "0" || nv != "0" || d != "0" {
			t.Fatalf("depth after delete = %s/%s/%s", v, nv, d)
		}
		// An empty receipt handle must not delete a visible message.
		f.send(t, "del", "keep")
		_, err = f.c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: f.url("del"), ReceiptHandle: aws.String("")})
		var rhi *sqstypes.ReceiptHandleIsInvalid
		if !errors.As(err, &rhi) {
			t.Fatalf("empty receipt handle: got %T %v", err, err)
		}
		if v, _, _ := f.depth(t, "del"); v != "1" {
			t.Fatalf("visible after empty-handle delete = %s, want 1", v)
		}
	})

	t.Run("GetQueueAttributes", func(t *testing.T) {
		for i := range 3 {
			f.send(t, "depth", strconv.Itoa(i))
		}
		if _, err := f.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: f.url("depth"), MessageBody: aws.String("d"), DelaySeconds: 60}); err != nil {
			t.Fatal(err)
		}
		f.receive(t, "depth", 1, 0, 30)
		a := f.attrs(t, "depth")
		if a["ApproximateNumberOfMessages"] != "2" || a["ApproximateNumberOfMessagesNotVisible"] != "1" || a["ApproximateNumberOfMessagesDelayed"] != "1" {
			t.Fatalf("depth attributes %v", a)
		}
		var rp struct {
			DeadLetterTargetArn string `json:"deadLetterTargetArn"`
			MaxReceiveCount     int    `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(a["RedrivePolicy"]), &rp); err != nil {
			t.Fatalf("RedrivePolicy %q: %v", a["RedrivePolicy"], err)
		}
		if rp.DeadLetterTargetArn != f.s.arn("taskiq-dlq") || rp.MaxReceiveCount != 3 {
			t.Fatalf("RedrivePolicy %+v", rp)
		}
		if a["QueueArn"] != f.s.arn("depth") || a["VisibilityTimeout"] != "30" {
			t.Fatalf("QueueArn %q VisibilityTimeout %q", a["QueueArn"], a["VisibilityTimeout"])
		}
		// Only what is asked for.
		out, err := f.c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       f.url("depth"),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed},
		})
		if err != nil || len(out.Attributes) != 1 || out.Attributes["ApproximateNumberOfMessagesDelayed"] != "1" {
			t.Fatalf("single attribute: %v %v", err, out)
		}
		// SetQueueAttributes leaves the attributes it does not name alone.
		if _, err := f.c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
			QueueUrl:   f.url("depth"),
			Attributes: map[string]string{"ReceiveMessageWaitTimeSeconds": "1"},
		}); err != nil {
			t.Fatal(err)
		}
		if a := f.attrs(t, "depth"); a["VisibilityTimeout"] != "30" || a["MaximumMessageSize"] != "1048576" {
			t.Fatalf("SetQueueAttributes reset others: %v", a)
		}
	})

	t.Run("RedriveToDLQ", func(t *testing.T) {
		f.send(t, "redrive", "poison")
		var id string
		// Two receives end in a release, the third in an expired lease.
		for i := 1; i <= 3; i++ {
			got := f.receive(t, "redrive", 1, 2, 1)
			if len(got) != 1 {
				t.Fatalf("receive %d: no message", i)
			}
			if receiveCount(got[0]) != strconv.Itoa(i) {
				t.Fatalf("receive %d: ApproximateReceiveCount %q", i, receiveCount(got[0]))
			}
			id = *got[0].MessageId
			if i < 3 {
				if _, err := f.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
					QueueUrl: f.url("redrive"), ReceiptHandle: got[0].ReceiptHandle, VisibilityTimeout: 0,
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(leaseExpiry)
		if got := f.receive(t, "redrive", 1, 0, 0); len(got) != 0 {
			t.Fatalf("message received a 4th time with maxReceiveCount 3")
		}
		dlq := f.receive(t, "taskiq-dlq", 1, 0, 0)
		if len(dlq) != 1 || *dlq[0].MessageId != id || *dlq[0].Body != "poison" {
			t.Fatalf("message not in DLQ: %+v", dlq)
		}
		t.Logf("in DLQ: ApproximateReceiveCount %s", receiveCount(dlq[0]))
	})
}

// TestCloseCutsLongPoll checks that Close does not wait for a long poll.
func TestCloseCutsLongPoll(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := sqsClient(t, localTarget(s))
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(s.QueueURL("taskiq")), WaitTimeSeconds: 20,
		}, func(o *sqs.Options) { o.RetryMaxAttempts = 1 })
		done <- err
	}()
	<-started
	// Wait (boundedly) until the poll is waiting inside the handler.
	for deadline := time.Now().Add(5 * time.Second); s.sqs.waiting.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("long poll never reached the handler")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > 2*time.Second {
		t.Fatalf("Close took %v with a long poll open", el)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("long poll succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long poll still open after Close")
	}
}

// TestUnsupportedAction checks that an action not implemented fails cleanly.
func TestUnsupportedAction(t *testing.T) {
	s := startServer(t, Options{})
	_, err := sqsClient(t, localTarget(s)).AddPermission(context.Background(), &sqs.AddPermissionInput{
		QueueUrl: aws.String(s.QueueURL("taskiq")), Label: aws.String("l"),
		AWSAccountIds: []string{"111111111111"}, Actions: []string{"SendMessage"}})
	var uo *sqstypes.UnsupportedOperation
	if !errors.As(err, &uo) {
		t.Fatalf("AddPermission: got %T %v", err, err)
	}
}

func TestS3(t *testing.T) {
	s := newTarget(t, Options{})
	c := s3Client(t, s)
	ctx := context.Background()
	b := aws.String(s.Bucket())

	t.Run("PutIfNoneMatch", func(t *testing.T) {
		put := func(body string) error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("results/t1.json"),
				Body: strings.NewReader(body), IfNoneMatch: aws.String("*")})
			return err
		}
		if err := put("first"); err != nil {
			t.Fatal(err)
		}
		err := put("second")
		if err == nil || httpStatus(err) != http.StatusPreconditionFailed {
			t.Fatalf("second conditional put: %v", err)
		}
		var ae smithy.APIError
		errors.As(err, &ae)
		t.Logf("412: %T, ErrorCode %q, HTTP %d", ae, errCode(err), httpStatus(err))
		if errCode(err) != "PreconditionFailed" {
			t.Fatalf("ErrorCode = %q", errCode(err))
		}
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("results/t1.json")})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		if got, _ := io.ReadAll(out.Body); string(got) != "first" {
			t.Fatalf("object overwritten: %q", got)
		}
	})

	t.Run("GetHeadDelete", func(t *testing.T) {
		key := aws.String("logs/t2.out")
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: key, Body: strings.NewReader("hello"),
			ContentType: aws.String("text/plain"), Metadata: map[string]string{"attempt": "2"}}); err != nil {
			t.Fatal(err)
		}
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if *h.ContentLength != 5 || h.Metadata["attempt"] != "2" || h.ETag == nil {
			t.Fatalf("HeadObject %+v", h)
		}
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: key}); err != nil {
			t.Fatal(err)
		}
		_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: key})
		var nf *s3types.NotFound
		if !errors.As(err, &nf) {
			t.Fatalf("HeadObject missing: got %T %v", err, err)
		}
		t.Logf("HeadObject missing key: %T, ErrorCode %q, HTTP %d", nf, errCode(err), httpStatus(err))
		_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: key})
		var nsk *s3types.NoSuchKey
		if !errors.As(err, &nsk) {
			t.Fatalf("GetObject missing: got %T %v", err, err)
		}
		t.Logf("GetObject missing key: %T, ErrorCode %q, HTTP %d", nsk, errCode(err), httpStatus(err))
	})

	t.Run("ListObjectsV2", func(t *testing.T) {
		for _, k := range []string{"g/run1/a", "g/run1/b", "g/run2/a", "g/top", "other/x"} {
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
				t.Fatal(err)
			}
		}
		out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("g/run1/")})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Contents) != 2 || *out.Contents[0].Key != "g/run1/a" || *out.Contents[1].Key != "g/run1/b" {
			t.Fatalf("prefix listing %+v", out.Contents)
		}
		out, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("g/"), Delimiter: aws.String("/")})
		if err != nil {
			t.Fatal(err)
		}
		var prefixes []string
		for _, p := range out.CommonPrefixes {
			prefixes = append(prefixes, *p.Prefix)
		}
		if len(out.Contents) != 1 || *out.Contents[0].Key != "g/top" || strings.Join(prefixes, ",") != "g/run1/,g/run2/" {
			t.Fatalf("delimiter listing: contents %d prefixes %v", len(out.Contents), prefixes)
		}
		// Paging, as a LIST over a big group does.
		out, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("g/"), MaxKeys: aws.Int32(2)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Contents) != 2 || !*out.IsTruncated || out.NextContinuationToken == nil {
			t.Fatalf("first page: %d keys, truncated %v", len(out.Contents), out.IsTruncated)
		}
		out, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("g/"), MaxKeys: aws.Int32(2), ContinuationToken: out.NextContinuationToken})
		if err != nil || len(out.Contents) != 2 {
			t.Fatalf("second page: %v %d", err, len(out.Contents))
		}
	})

	t.Run("FiveMiB", func(t *testing.T) {
		data := make([]byte, 5<<20)
		_, _ = rand.Read(data)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("big"), Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("big")})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		got, err := io.ReadAll(out.Body)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("5 MiB round trip: %v, %d bytes back", err, len(got))
		}
	})

	t.Run("NoSuchBucket", func(t *testing.T) {
		nb := aws.String("no-such-bucket")
		var nsb *s3types.NoSuchBucket
		// GetObject's model lists only NoSuchKey and InvalidObjectState, so
		// the SDK (against AWS too) gives a generic API error here.
		_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: nb, Key: aws.String("k")})
		var ae smithy.APIError
		errors.As(err, &ae)
		t.Logf("GetObject on missing bucket: %T, ErrorCode %q, HTTP %d", ae, errCode(err), httpStatus(err))
		if errCode(err) != "NoSuchBucket" || httpStatus(err) != http.StatusNotFound {
			t.Fatalf("GetObject: got %T %v", err, err)
		}
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: nb, Key: aws.String("k"), Body: strings.NewReader("x")})
		errors.As(err, &ae)
		t.Logf("PutObject on missing bucket: %T, ErrorCode %q, HTTP %d", ae, errCode(err), httpStatus(err))
		if errCode(err) != "NoSuchBucket" {
			t.Fatalf("PutObject: got %T %v", err, err)
		}
		_, err = c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: nb})
		if !errors.As(err, &nsb) {
			t.Fatalf("ListObjectsV2: got %T %v", err, err)
		}
		t.Logf("ListObjectsV2 on missing bucket: %T, ErrorCode %q, HTTP %d", nsb, errCode(err), httpStatus(err))
		_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: nb, Key: aws.String("k")})
		errors.As(err, &ae)
		t.Logf("HeadObject on missing bucket: %T, ErrorCode %q, HTTP %d", ae, errCode(err), httpStatus(err))
		if httpStatus(err) != http.StatusNotFound {
			t.Fatalf("HeadObject on missing bucket: %v", err)
		}
	})
}

// sign signs req for service with creds the way an SDK does.
func sign(t *testing.T, req *http.Request, creds Credentials, service string, body []byte) {
	t.Helper()
	h := sha256.Sum256(body)
	payload := hex.EncodeToString(h[:])
	if service == "s3" {
		req.Header.Set("X-Amz-Content-Sha256", payload)
	}
	err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = service == "s3" }).SignHTTP(context.Background(),
		aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}, req, payload, service, "us-east-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
}

// rawSQS builds a JSON-protocol SQS request.
func rawSQS(t *testing.T, s *Server, action, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.Endpoint()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", jsonContentType)
	req.Header.Set("X-Amz-Target", sqsTargetPrefix+action)
	return req
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func queueDepth(t *testing.T, s *Server, name string) int {
	t.Helper()
	s.sqs.mu.Lock()
	defer s.sqs.mu.Unlock()
	v, nv, d := s.sqs.queues[name].depth(time.Now().UnixMilli())
	return v + nv + d
}

// TestAuthentication sends signed, unsigned and wrongly signed requests to
// each service: only the first kind gets through, and nothing of the others
// changes state.
func TestAuthentication(t *testing.T) {
	s := startServer(t, Options{})
	good := s.Credentials()
	wrongSecret := Credentials{good.AccessKeyID, strings.Repeat("0", len(good.SecretAccessKey))}
	wrongKey := Credentials{"AKIAOTHER", good.SecretAccessKey}
	send := fmt.Sprintf(`{"QueueUrl":%q,"MessageBody":"hi"}`, s.QueueURL("taskiq"))

	cases := []struct {
		name   string
		creds  *Credentials
		status int
		code   string
	}{
		{"signed", &good, 200, ""},
		{"unsigned", nil, 403, "MissingAuthenticationToken"},
		{"wrong secret", &wrongSecret, 403, "SignatureDoesNotMatch"},
		{"wrong key id", &wrongKey, 403, "InvalidClientTokenId"},
	}
	for _, tc := range cases {
		t.Run("SQS/"+tc.name, func(t *testing.T) {
			before := queueDepth(t, s, "taskiq")
			req := rawSQS(t, s, "SendMessage", send)
			if tc.creds != nil {
				sign(t, req, *tc.creds, "sqs", []byte(send))
			}
			status, body := do(t, req)
			if status != tc.status || !strings.Contains(body, tc.code) {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.code)
			}
			want := before
			if tc.status == 200 {
				want++
			}
			if got := queueDepth(t, s, "taskiq"); got != want {
				t.Fatalf("queue depth %d, want %d", got, want)
			}
		})
		t.Run("S3/"+tc.name, func(t *testing.T) {
			key := "auth/" + strings.ReplaceAll(tc.name, " ", "-")
			body := []byte("data")
			req, _ := http.NewRequest(http.MethodPut, s.Endpoint()+"/"+s.Bucket()+"/"+key, bytes.NewReader(body))
			if tc.creds != nil {
				sign(t, req, *tc.creds, "s3", body)
			}
			status, out := do(t, req)
			if status != tc.status || !strings.Contains(out, tc.code) {
				t.Fatalf("got %d %s, want %d %s", status, out, tc.status, tc.code)
			}
			_, err := s3Client(t, localTarget(s)).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(key)})
			if (err == nil) != (tc.status == 200) {
				t.Fatalf("object stored %v after a %d", err == nil, status)
			}
		})
	}

	t.Run("S3/body other than signed", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, s.Endpoint()+"/"+s.Bucket()+"/auth/tampered", strings.NewReader("evil"))
		sign(t, req, good, "s3", []byte("good"))
		if status, out := do(t, req); status != 400 || !strings.Contains(out, "XAmzContentSHA256Mismatch") {
			t.Fatalf("got %d %s", status, out)
		}
		_, err := s3Client(t, localTarget(s)).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("auth/tampered")})
		if err == nil {
			t.Fatal("tampered body stored")
		}
	})
	t.Run("SQS/signed for s3", func(t *testing.T) {
		req := rawSQS(t, s, "SendMessage", send)
		sign(t, req, good, "s3", []byte(send))
		if status, _ := do(t, req); status != 403 {
			t.Fatalf("got %d", status)
		}
	})
	t.Run("S3/presigned URL", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, s.Endpoint()+"/"+s.Bucket()+"/auth/signed?X-Amz-Signature=00", nil)
		if status, out := do(t, req); status != 403 || !strings.Contains(out, "AccessDenied") {
			t.Fatalf("got %d %s", status, out)
		}
	})
}

// TestBrowserRequestsRefused sends what a web page can make a browser send:
// a cross-site form POST in the SQS query protocol (no preflight needed),
// and a JSON request carrying Origin, even correctly signed.
func TestBrowserRequestsRefused(t *testing.T) {
	s := startServer(t, Options{})
	form := url.Values{"Action": {"SendMessage"}, "QueueUrl": {s.QueueURL("taskiq")}, "MessageBody": {"rm -rf ~"}, "Version": {"2012-11-05"}}
	req, _ := http.NewRequest(http.MethodPost, s.Endpoint()+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if status, _ := do(t, req); status != 403 {
		t.Fatalf("cross-site form post: %d", status)
	}
	// The same form, signed and without Origin: the query protocol is off.
	req, _ = http.NewRequest(http.MethodPost, s.Endpoint()+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sign(t, req, s.Credentials(), "sqs", []byte(form.Encode()))
	if status, _ := do(t, req); status != 403 {
		t.Fatalf("signed form post: %d", status)
	}
	req, _ = http.NewRequest(http.MethodGet, s.Endpoint()+"/?"+form.Encode(), nil)
	if status, _ := do(t, req); status != 403 {
		t.Fatalf("query protocol GET: %d", status)
	}
	send := fmt.Sprintf(`{"QueueUrl":%q,"MessageBody":"hi"}`, s.QueueURL("taskiq"))
	req = rawSQS(t, s, "SendMessage", send)
	req.Header.Set("Origin", "http://evil.example")
	sign(t, req, s.Credentials(), "sqs", []byte(send))
	if status, body := do(t, req); status != 403 || !strings.Contains(body, "AccessDenied") {
		t.Fatalf("JSON request with Origin: %d %s", status, body)
	}
	req, _ = http.NewRequest(http.MethodPut, s.Endpoint()+"/"+s.Bucket()+"/x", strings.NewReader("x"))
	req.Header.Set("Origin", "http://evil.example")
	sign(t, req, s.Credentials(), "s3", []byte("x"))
	if status, _ := do(t, req); status != 403 {
		t.Fatalf("S3 PUT with Origin: %d", status)
	}
	if n := queueDepth(t, s, "taskiq"); n != 0 {
		t.Fatalf("%d messages queued by refused requests", n)
	}
}

// TestLoopbackOnly checks that only loopback addresses are accepted unless
// AllowRemote is set.
func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.com:0"} {
		if _, err := New(Options{Addr: addr}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("New(%q): %v, want ErrNotLoopback", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "127.0.0.2:0"} {
		s, err := New(Options{Addr: addr})
		if err != nil {
			t.Errorf("New(%q): %v", addr, err)
			continue
		}
		_ = s.Close()
	}
	var logBuf bytes.Buffer
	s := startServer(t, Options{Addr: "0.0.0.0:0", AllowRemote: true, Log: zerolog.New(&logBuf)})
	if strings.Count(logBuf.String(), "beyond loopback") != 1 {
		t.Fatalf("want one warning, log: %s", logBuf.String())
	}
	if _, err := sqsClient(t, localTarget(s)).ListQueues(context.Background(), &sqs.ListQueuesInput{}); err != nil {
		t.Fatal(err)
	}
}

// TestTwoEndpoints runs two endpoints in one process: each has its own
// queues, objects and credentials.
func TestTwoEndpoints(t *testing.T) {
	a := startServer(t, Options{})
	b := startServer(t, Options{})
	if a.Credentials() == b.Credentials() {
		t.Fatal("two endpoints share credentials")
	}
	ctx := context.Background()
	ta, tb := localTarget(a), localTarget(b)
	if _, err := sqsClient(t, ta).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(a.QueueURL("taskiq")), MessageBody: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3Client(t, ta).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("taskiq"), Key: aws.String("k"), Body: strings.NewReader("a")}); err != nil {
		t.Fatal(err)
	}
	out, err := sqsClient(t, tb).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(b.QueueURL("taskiq"))})
	if err != nil || len(out.Messages) != 0 {
		t.Fatalf("b sees a's message: %v %v", err, out)
	}
	if _, err := s3Client(t, tb).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("taskiq"), Key: aws.String("k")}); err == nil {
		t.Fatal("b sees a's object")
	}
	// a's credentials do not open b.
	cross := &target{endpoint: b.Endpoint(), region: b.Region(), creds: a.Credentials()}
	if _, err := sqsClient(t, cross).ListQueues(ctx, &sqs.ListQueuesInput{}, func(o *sqs.Options) { o.RetryMaxAttempts = 1 }); httpStatus(err) != 403 {
		t.Fatalf("a's credentials on b: %v", err)
	}
	out, err = sqsClient(t, ta).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(a.QueueURL("taskiq"))})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("a lost its message: %v %v", err, out)
	}
}

// TestRestartKeepsState restarts the endpoint on the same DataDir with a
// queued, an in-flight and a delayed message and an object: all come back,
// receive counts, visibility and delays included, and the credentials stay.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := New(Options{DataDir: dir, Queues: []string{"p"}, MaxReceiveCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	creds := s.Credentials()
	f := sqsFixture{s: localTarget(s), c: sqsClient(t, localTarget(s))}
	if _, err := s3Client(t, localTarget(s)).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("results/keep"),
		Body: strings.NewReader("kept"), IfNoneMatch: aws.String("*")}); err != nil {
		t.Fatal(err)
	}
	// in flight, received twice: released once, then held for 30 s.
	f.send(t, "p", "inflight")
	if got := f.receive(t, "p", 1, 0, 0); len(got) != 1 {
		t.Fatal("no message")
	} else if _, err := f.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: f.url("p"), ReceiptHandle: got[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	held := f.receive(t, "p", 1, 0, 30)
	if len(held) != 1 || receiveCount(held[0]) != "2" {
		t.Fatalf("second receive: %+v", held)
	}
	f.send(t, "p", "queued")
	if _, err := f.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: f.url("p"), MessageBody: aws.String("delayed"), DelaySeconds: 2}); err != nil {
		t.Fatal(err)
	}
	if v, nv, d := f.depth(t, "p"); v != "1" || nv != "1" || d != "1" {
		t.Fatalf("depth before restart %s/%s/%s", v, nv, d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = startServer(t, Options{DataDir: dir, Queues: []string{"p"}, MaxReceiveCount: 3})
	if s.Credentials() != creds {
		t.Fatal("credentials changed across restart")
	}
	f = sqsFixture{s: localTarget(s), c: sqsClient(t, localTarget(s))}
	if v, nv, d := f.depth(t, "p"); v != "1" || nv != "1" || d != "1" {
		t.Fatalf("depth after restart %s/%s/%s, want 1/1/1", v, nv, d)
	}
	got := f.receive(t, "p", 10, 0, 30)
	if len(got) != 1 || *got[0].Body != "queued" || receiveCount(got[0]) != "1" {
		t.Fatalf("after restart got %+v, want the queued message only", got)
	}
	got = f.receive(t, "p", 10, 5, 30)
	if len(got) != 1 || *got[0].Body != "delayed" {
		t.Fatalf("delayed message after restart: %+v", got)
	}
	// The in-flight message's lease, taken before the restart, still holds
	// it; its handle still works and its receive count goes on from 2.
	if _, err := f.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: f.url("p"), ReceiptHandle: held[0].ReceiptHandle}); err != nil {
		t.Fatalf("pre-restart receipt handle: %v", err)
	}
	got = f.receive(t, "p", 10, 0, 30)
	if len(got) != 1 || *got[0].Body != "inflight" || receiveCount(got[0]) != "3" {
		t.Fatalf("in-flight message after restart: %+v", got)
	}
	c := s3Client(t, localTarget(s))
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("results/keep")})
	if err != nil {
		t.Fatalf("object lost across restart: %v", err)
	}
	defer out.Body.Close()
	if b, _ := io.ReadAll(out.Body); string(b) != "kept" {
		t.Fatalf("object after restart: %q", b)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("results/keep"),
		Body: strings.NewReader("again"), IfNoneMatch: aws.String("*")})
	if httpStatus(err) != http.StatusPreconditionFailed {
		t.Fatalf("conditional put after restart: %v", err)
	}
}

// TestTemporaryStateRemoved checks that without DataDir nothing outlives
// the endpoint.
func TestTemporaryStateRemoved(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.state.path
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state dir %s left behind: %v", dir, err)
	}
}

// TestListCostIgnoresOtherPrefixes lists one small prefix of a bucket that
// holds many objects elsewhere: the index is read from the prefix on, so the
// LIST reads only what it returns.
func TestListCostIgnoresOtherPrefixes(t *testing.T) {
	s := startServer(t, Options{})
	if err := s.state.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(objBucket(s.Bucket()))
		for i := range 20000 {
			if err := b.Put([]byte(fmt.Sprintf("a/%06d", i)), []byte(`{"size":1}`)); err != nil {
				return err
			}
			if err := b.Put([]byte(fmt.Sprintf("z/%06d", i)), []byte(`{"size":1}`)); err != nil {
				return err
			}
		}
		return b.Put([]byte("m/only"), []byte(`{"size":1}`))
	}); err != nil {
		t.Fatal(err)
	}
	before := s.s3.listReads.Load()
	out, err := s3Client(t, localTarget(s)).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket()), Prefix: aws.String("m/")})
	if err != nil {
		t.Fatal(err)
	}
	reads := s.s3.listReads.Load() - before
	if keys := len(out.Contents); keys != 1 {
		t.Fatalf("listed %d keys, want 1", keys)
	}
	if reads > 2 {
		t.Fatalf("LIST of one key read %d index entries", reads)
	}
}

// TestLogsStayOffStdout runs traffic with debug logging on and checks that
// the endpoint logs to its logger and nothing reaches stdout.
func TestLogsStayOffStdout(t *testing.T) {
	stdout := os.Stdout
	tmp, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = tmp
	defer func() { os.Stdout = stdout }()

	var mu sync.Mutex
	var logBuf bytes.Buffer
	w := zerolog.SyncWriter(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logBuf.Write(p)
	}))
	s, err := New(Options{Log: zerolog.New(w).Level(zerolog.DebugLevel)})
	if err == nil {
		err = s.Start()
	}
	if err != nil {
		os.Stdout = stdout
		t.Fatal(err)
	}
	ctx := context.Background()
	sc := sqsClient(t, localTarget(s))
	_, _ = sc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.QueueURL("taskiq")), MessageBody: aws.String("x")})
	_, _ = sc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(s.QueueURL("taskiq"))})
	_, _ = sc.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("missing")})
	_, _ = http.Get(s.Endpoint() + "/taskiq/unsigned")
	_, _ = s3Client(t, localTarget(s)).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("taskiq"), Key: aws.String("nope")})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	os.Stdout = stdout

	if fi, _ := tmp.Stat(); fi.Size() != 0 {
		b, _ := os.ReadFile(tmp.Name())
		t.Fatalf("wrote to stdout: %q", b)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logBuf.String(), `request refused`) {
		t.Fatalf("refused request not logged: %s", logBuf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// patternReader is size bytes of a repeating pattern, readable at any offset
// without being held in memory.
type patternReader struct{}

func (patternReader) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = byte((off + int64(i)) % 251)
	}
	return len(p), nil
}

// TestLargeObjectStreamed puts and gets an object much larger than the heap
// may grow by: the body goes to a file as it arrives and back from it.
func TestLargeObjectStreamed(t *testing.T) {
	s := startServer(t, Options{})
	c := s3Client(t, localTarget(s))
	ctx := context.Background()
	const size = 96 << 20
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("big"),
		Body: io.NewSectionReader(patternReader{}, 0, size), ContentLength: aws.Int64(size)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	out.Body.Close()
	close(stop)
	<-sampled
	if err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	want := sha256.New()
	_, _ = io.Copy(want, io.NewSectionReader(patternReader{}, 0, size))
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatal("object read back differs")
	}
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by %d KiB for a %d MiB object", grew>>10, size>>20)
	if grew > 24<<20 {
		t.Fatalf("heap grew by %d MiB for a %d MiB object: held in memory", grew>>20, size>>20)
	}
}

// TestChunkedUpload puts an object in the aws-chunked framing an SDK uses
// for streaming uploads (with a trailing checksum) and reads it back whole.
func TestChunkedUpload(t *testing.T) {
	s := startServer(t, Options{})
	framed := "5\r\nhello\r\n7\r\n, world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
	req, _ := http.NewRequest(http.MethodPut, s.Endpoint()+"/"+s.Bucket()+"/chunked", strings.NewReader(framed))
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", "12")
	req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
	const payload = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	req.Header.Set("X-Amz-Content-Sha256", payload)
	creds := s.Credentials()
	if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(context.Background(),
		aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}, req, payload, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if status, body := do(t, req); status != 200 {
		t.Fatalf("chunked put: %d %s", status, body)
	}
	out, err := s3Client(t, localTarget(s)).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("chunked")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	if b, _ := io.ReadAll(out.Body); string(b) != "hello, world" || out.ContentEncoding != nil {
		t.Fatalf("read back %q, Content-Encoding %v", b, aws.ToString(out.ContentEncoding))
	}
	// A truncated frame stores nothing.
	req, _ = http.NewRequest(http.MethodPut, s.Endpoint()+"/"+s.Bucket()+"/torn", strings.NewReader("5\r\nhel"))
	req.Header.Set("X-Amz-Content-Sha256", payload)
	_ = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(context.Background(),
		aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}, req, payload, "s3", "us-east-1", time.Now())
	if status, _ := do(t, req); status != 400 {
		t.Fatalf("torn chunked put: %d", status)
	}
	if _, err := s3Client(t, localTarget(s)).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("torn")}); err == nil {
		t.Fatal("torn upload stored")
	}
}
