package main

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/rogpeppe/go-internal/testscript"
)

// sqsreceive QUEUE_URL VISIBILITY: receive one message and keep it hidden
// for VISIBILITY without deleting it, as a worker that died right after
// its receive (before it claimed the task) would. It waits up to 20 s for
// a message.
func cmdSQSReceive(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sqsreceive QUEUE_URL VISIBILITY")
	}
	vis, err := time.ParseDuration(args[1])
	ts.Check(err)
	sq := scriptSQS(ts)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		out, err := sq.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(args[0]), MaxNumberOfMessages: 1,
			WaitTimeSeconds: 1, VisibilityTimeout: int32(vis / time.Second),
		})
		ts.Check(err)
		if len(out.Messages) == 1 {
			return
		}
	}
	ts.Fatalf("no message on %s within 20s", args[0])
}
