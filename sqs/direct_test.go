package sqs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/taskiq-go/taskiq-go/devserver"
	"github.com/taskiq-go/taskiq-go/plan"
)

// devClient starts an in-process dev endpoint and returns a client on it
// signing with secret ("" for the endpoint's own), and the endpoint.
func devClient(tb testing.TB, secret string) (*Client, *devserver.Server) {
	tb.Helper()
	srv, err := devserver.New(devserver.Options{Queues: []string{"q"}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	c := srv.Credentials()
	if secret == "" {
		secret = c.SecretAccessKey
	}
	api := awssqs.New(awssqs.Options{
		Region: srv.Region(), BaseEndpoint: aws.String(srv.Endpoint()),
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(c.AccessKeyID, secret, "")),
	})
	return New(api), srv
}

// Sends through the direct path arrive as the SDK would have sent them:
// body, attributes and delay; a batch of more than ten is split, each
// entry sent once.
func TestDirectSendsWhatTheSDKWould(t *testing.T) {
	c, srv := devClient(t, "")
	if c.fast == nil {
		t.Fatal("no direct path for a custom endpoint")
	}
	sdk := &Client{api: c.api}
	ctx := context.Background()
	q := srv.QueueURL("q")
	body := `{"id":"t1","argv":["echo","é \"x\" <&>"]}`
	id, err := c.Send(ctx, q, Entry{Body: body, Attributes: map[string]string{"taskiq_priority": "7", "k": "v w"}})
	if err != nil || id == "" {
		t.Fatalf("send: %q, %v", id, err)
	}
	msgs, err := sdk.Receive(ctx, q, 10, time.Second, 30*time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %v, %v", msgs, err)
	}
	m := msgs[0]
	if m.Body != body || m.MessageID != id || m.Attributes["taskiq_priority"] != "7" || m.Attributes["k"] != "v w" {
		t.Fatalf("received %+v, sent %q with id %s", m, body, id)
	}

	var entries []Entry
	for i := range 12 {
		entries = append(entries, Entry{Body: fmt.Sprintf("b%02d", i)})
	}
	entries[3].Delay = 2 * time.Second
	errs, err := c.SendBatch(ctx, q, entries)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("entry %d: %v", i, e)
		}
	}
	st, err := sdk.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if st.Visible != 11 || st.Delayed != 1 {
		t.Fatalf("after the batch: %+v, want 11 visible and the delayed one", st)
	}
	var got []string
	for len(got) < 11 {
		msgs, err := sdk.Receive(ctx, q, 10, time.Second, 30*time.Second)
		if err != nil || len(msgs) == 0 {
			t.Fatalf("receive: %v, %v (have %v)", msgs, err, got)
		}
		for _, m := range msgs {
			got = append(got, m.Body)
		}
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[b00 b01 b02 b04 b05 b06 b07 b08 b09 b10 b11]" {
		t.Fatalf("received %v", got)
	}
}

// Errors keep their kinds: a queue that does not exist, a wrong secret,
// an endpoint that is gone.
func TestDirectSendErrorKinds(t *testing.T) {
	c, srv := devClient(t, "")
	ctx := context.Background()
	_, err := c.Send(ctx, srv.QueueURL("nope"), Entry{Body: "x"})
	if !errors.Is(err, plan.ErrQueueNotFound) {
		t.Fatalf("missing queue: %v, want ErrQueueNotFound", err)
	}
	if _, err := c.SendBatch(ctx, srv.QueueURL("nope"), []Entry{{Body: "x"}}); !errors.Is(err, plan.ErrQueueNotFound) {
		t.Fatalf("batch to a missing queue: %v, want ErrQueueNotFound", err)
	}

	bad, srv2 := devClient(t, "not-the-secret")
	if _, err := bad.Send(ctx, srv2.QueueURL("q"), Entry{Body: "x"}); !errors.Is(err, plan.ErrAccessDenied) {
		t.Fatalf("wrong secret: %v, want ErrAccessDenied", err)
	}
	q := srv2.QueueURL("q")
	srv2.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = bad.Send(cctx, q, Entry{Body: "x"})
	if !errors.Is(err, plan.ErrUnreachable) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("endpoint gone: %v, want ErrUnreachable", err)
	}
}
