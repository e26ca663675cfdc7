package main

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/rogpeppe/go-internal/testscript"
)

// sqssendattr QUEUE_URL NAME=VALUE BODY: send a raw message body with one
// string attribute, as a buggy or hostile producer of packs might.
func cmdSQSSendAttr(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: sqssendattr QUEUE_URL NAME=VALUE BODY")
	}
	name, value, ok := strings.Cut(args[1], "=")
	if !ok {
		ts.Fatalf("usage: sqssendattr QUEUE_URL NAME=VALUE BODY")
	}
	_, err := scriptSQS(ts).SendMessage(context.Background(), &awssqs.SendMessageInput{
		QueueUrl: aws.String(args[0]), MessageBody: aws.String(args[2]),
		MessageAttributes: map[string]types.MessageAttributeValue{
			name: {DataType: aws.String("String"), StringValue: aws.String(value)},
		},
	})
	ts.Check(err)
}
