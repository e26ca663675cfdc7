package devserver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// TestSQSQueueAdmin checks the queue calls beside the message path that
// init, dlq and the AWS CLI use: ListQueues by prefix and page by page,
// PurgeQueue, DeleteQueue and ListDeadLetterSourceQueues. Like TestSQS it
// also runs against moto_server (scripts/test-moto.sh); the message move
// task, which moto lacks, has a test of its own below.
func TestSQSQueueAdmin(t *testing.T) {
	s := newTarget(t, Options{Queues: []string{"adm-a", "adm-b", "adm-c"}})
	f := sqsFixture{s: s, c: sqsClient(t, s)}
	ctx := context.Background()
	urls := func(t *testing.T, in *sqs.ListQueuesInput) []string {
		t.Helper()
		var all []string
		for {
			out, err := f.c.ListQueues(ctx, in)
			if err != nil {
				t.Fatalf("ListQueues: %v", err)
			}
			if in.MaxResults != nil && len(out.QueueUrls) > int(*in.MaxResults) {
				t.Fatalf("ListQueues gave %d URLs for MaxResults %d", len(out.QueueUrls), *in.MaxResults)
			}
			all = append(all, out.QueueUrls...)
			if out.NextToken == nil {
				break
			}
			in.NextToken = out.NextToken
		}
		slices.Sort(all)
		return all
	}
	want := []string{s.QueueURL("adm-a"), s.QueueURL("adm-b"), s.QueueURL("adm-c")}

	t.Run("ListQueues", func(t *testing.T) {
		if got := urls(t, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(s.prefix + "adm-")}); !slices.Equal(got, want) {
			t.Fatalf("ListQueues by prefix = %v, want %v", got, want)
		}
		// Two pages: two URLs, then one.
		out, err := f.c.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(s.prefix + "adm-"), MaxResults: aws.Int32(2)})
		if err != nil || len(out.QueueUrls) != 2 || out.NextToken == nil {
			t.Fatalf("first page: %v %+v", err, out)
		}
		if got := urls(t, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(s.prefix + "adm-"), MaxResults: aws.Int32(2)}); !slices.Equal(got, want) {
			t.Fatalf("ListQueues page by page = %v, want %v", got, want)
		}
		if got := urls(t, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(s.prefix + "adm-x")}); len(got) != 0 {
			t.Fatalf("ListQueues of a prefix no queue has = %v", got)
		}
	})

	t.Run("ListDeadLetterSourceQueues", func(t *testing.T) {
		out, err := f.c.ListDeadLetterSourceQueues(ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: f.url("taskiq-dlq")})
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(slices.Values(out.QueueUrls))
		if !slices.Equal(got, want) {
			t.Fatalf("sources of the DLQ = %v, want %v", got, want)
		}
		out, err = f.c.ListDeadLetterSourceQueues(ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: f.url("adm-a")})
		if err != nil || len(out.QueueUrls) != 0 {
			t.Fatalf("sources of a queue no queue redrives to: %v %v", err, out.QueueUrls)
		}
	})

	t.Run("PurgeQueue", func(t *testing.T) {
		for _, b := range []string{"1", "2", "3"} {
			f.send(t, "adm-a", b)
		}
		if got := f.receive(t, "adm-a", 1, 0, 30); len(got) != 1 {
			t.Fatal("no message to hold in flight")
		}
		if _, err := f.c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: f.url("adm-a")}); err != nil {
			t.Fatal(err)
		}
		if v, nv, d := f.depth(t, "adm-a"); v != "0" || nv != "0" || d != "0" {
			t.Fatalf("depth after purge %s/%s/%s, want 0/0/0", v, nv, d)
		}
		if got := f.receive(t, "adm-a", 10, 0, 0); len(got) != 0 {
			t.Fatalf("received %d messages after purge", len(got))
		}
		// The queue itself stays, with its attributes.
		if a := f.attrs(t, "adm-a"); a["RedrivePolicy"] == "" {
			t.Fatalf("purge dropped the redrive policy: %v", a)
		}
	})

	t.Run("DeleteQueue", func(t *testing.T) {
		f.send(t, "adm-c", "gone with its queue")
		if _, err := f.c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: f.url("adm-c")}); err != nil {
			t.Fatal(err)
		}
		var qe *sqstypes.QueueDoesNotExist
		if _, err := f.c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(s.prefix + "adm-c")}); !errors.As(err, &qe) {
			t.Fatalf("GetQueueUrl of a deleted queue: %T %v", err, err)
		}
		if _, err := f.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: f.url("adm-c"), MessageBody: aws.String("x")}); !errors.As(err, &qe) {
			t.Fatalf("SendMessage to a deleted queue: %T %v", err, err)
		}
		if got := urls(t, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(s.prefix + "adm-")}); !slices.Equal(got, want[:2]) {
			t.Fatalf("ListQueues after delete = %v, want %v", got, want[:2])
		}
		// Made again under the same name, it starts empty.
		if _, err := f.c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(s.prefix + "adm-c")}); err != nil {
			t.Fatal(err)
		}
		if got := f.receive(t, "adm-c", 10, 0, 0); len(got) != 0 {
			t.Fatalf("a re-created queue holds %d old messages", len(got))
		}
	})
}

// TestMessageMoveTask dead-letters a message, then moves it back to its
// source queue with StartMessageMoveTask (no destination: each message goes
// back where it came from), as the SQS console's redrive does. moto_server
// does not implement the call, so this runs on the local endpoint only.
func TestMessageMoveTask(t *testing.T) {
	s := localTarget(startServer(t, Options{Queues: []string{"src"}, MaxReceiveCount: 1}))
	f := sqsFixture{s: s, c: sqsClient(t, s)}
	ctx := context.Background()
	f.send(t, "src", "poison")
	if got := f.receive(t, "src", 1, 0, 1); len(got) != 1 {
		t.Fatal("no message")
	}
	time.Sleep(leaseExpiry)
	if got := f.receive(t, "src", 1, 0, 0); len(got) != 0 {
		t.Fatal("received twice with maxReceiveCount 1")
	}
	if v, _, _ := f.depth(t, "taskiq-dlq"); v != "1" {
		t.Fatalf("DLQ holds %s messages, want 1", v)
	}

	if _, err := f.c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(s.arn("missing"))}); err == nil {
		t.Fatal("move task from a missing queue started")
	}
	out, err := f.c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(s.arn("taskiq-dlq"))})
	if err != nil || aws.ToString(out.TaskHandle) == "" {
		t.Fatalf("StartMessageMoveTask: %v %+v", err, out)
	}
	if v, nv, _ := f.depth(t, "taskiq-dlq"); v != "0" || nv != "0" {
		t.Fatalf("DLQ after the move %s/%s, want empty", v, nv)
	}
	got := f.receive(t, "src", 1, 0, 30)
	if len(got) != 1 || *got[0].Body != "poison" || receiveCount(got[0]) != "1" {
		t.Fatalf("moved message on its source queue: %+v", got)
	}
	tasks, err := f.c.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: aws.String(s.arn("taskiq-dlq"))})
	if err != nil || len(tasks.Results) != 1 {
		t.Fatalf("ListMessageMoveTasks: %v %+v", err, tasks)
	}
	r := tasks.Results[0]
	if aws.ToString(r.Status) != "COMPLETED" || r.ApproximateNumberOfMessagesMoved != 1 || aws.ToString(r.SourceArn) != s.arn("taskiq-dlq") {
		t.Fatalf("move task %+v", r)
	}
}

// TestRestartKeepsDeadLetterState restarts the endpoint on its DataDir with a
// queue made through the API (its own redrive policy, which New does not set
// again) and a message already dead-lettered from it: the policy, the dead
// letter and the queue it came from all come back, so a move task after the
// restart sends the message home.
func TestRestartKeepsDeadLetterState(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := New(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	tg := localTarget(s)
	f := sqsFixture{s: tg, c: sqsClient(t, tg)}
	policy := `{"deadLetterTargetArn":"` + tg.arn("taskiq-dlq") + `","maxReceiveCount":1}`
	if _, err := f.c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("custom"),
		Attributes: map[string]string{"RedrivePolicy": policy, "VisibilityTimeout": "7"}}); err != nil {
		t.Fatal(err)
	}
	f.send(t, "custom", "poison")
	if got := f.receive(t, "custom", 1, 0, 1); len(got) != 1 {
		t.Fatal("no message")
	}
	time.Sleep(leaseExpiry)
	if got := f.receive(t, "custom", 1, 0, 0); len(got) != 0 {
		t.Fatal("received twice with maxReceiveCount 1")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, Options{DataDir: dir})
	tg = localTarget(s)
	f = sqsFixture{s: tg, c: sqsClient(t, tg)}
	a := f.attrs(t, "custom")
	if a["VisibilityTimeout"] != "7" || !strings.Contains(a["RedrivePolicy"], `"maxReceiveCount":1`) ||
		!strings.Contains(a["RedrivePolicy"], tg.arn("taskiq-dlq")) {
		t.Fatalf("custom queue's attributes after restart: %v", a)
	}
	src, err := f.c.ListDeadLetterSourceQueues(ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: f.url("taskiq-dlq")})
	if err != nil || !slices.Contains(src.QueueUrls, s.QueueURL("custom")) {
		t.Fatalf("dead-letter sources after restart: %v %v", err, src)
	}
	if v, _, _ := f.depth(t, "taskiq-dlq"); v != "1" {
		t.Fatalf("DLQ holds %s messages after restart, want 1", v)
	}
	if _, err := f.c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(tg.arn("taskiq-dlq"))}); err != nil {
		t.Fatal(err)
	}
	got := f.receive(t, "custom", 1, 0, 30)
	if len(got) != 1 || *got[0].Body != "poison" {
		t.Fatalf("dead letter not moved back to its queue after restart: %+v", got)
	}
}
