package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/taskiq-go/taskiq-go/plan"
)

// signtask [-queue NAME] [-age D] [-set-id ID] [-set-argv A,B] KEYFILE ID ARGV...:
// print a task (of queue NAME, submitted D ago, default now) signed with
// KEYFILE, then (to forge it) change its id or argv after signing.
func mainSignTask() {
	fs := flag.NewFlagSet("signtask", flag.ExitOnError)
	setID := fs.String("set-id", "", "change the id after signing")
	setArgv := fs.String("set-argv", "", "change argv (comma-separated) after signing")
	queue := fs.String("queue", "", "the task's queue (default: the default queue)")
	age := fs.Duration("age", 0, "how long ago the task was submitted")
	fs.Parse(os.Args[1:])
	args := fs.Args()
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: signtask [-queue NAME] [-age D] [-set-id ID] [-set-argv A,B] KEYFILE ID ARGV...")
		os.Exit(2)
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k, err := plan.ParseSigningKey(data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t := &plan.Task{ID: args[1], Argv: args[2:], Queue: *queue, SubmittedAt: time.Now().Add(-*age).UTC()}
	t.Normalize()
	if err := k.Sign(t); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *setID != "" {
		t.ID = *setID
	}
	if *setArgv != "" {
		t.Argv = strings.Split(*setArgv, ",")
	}
	json.NewEncoder(os.Stdout).Encode(t)
}

// sqssendfile [-priority N] QUEUE_URL FILE: send FILE's content as one
// message, with the priority attribute N if given.
func cmdSQSSendFile(ts *testscript.TestScript, neg bool, args []string) {
	var attrs map[string]sqstypes.MessageAttributeValue
	if len(args) == 4 && args[0] == "-priority" {
		attrs = map[string]sqstypes.MessageAttributeValue{
			plan.AttrPriority: {DataType: aws.String("String"), StringValue: aws.String(args[1])},
		}
		args = args[2:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: sqssendfile [-priority N] QUEUE_URL FILE")
	}
	_, err := scriptSQS(ts).SendMessage(context.Background(), &awssqs.SendMessageInput{
		QueueUrl: aws.String(args[0]), MessageBody: aws.String(strings.TrimSpace(ts.ReadFile(args[1]))),
		MessageAttributes: attrs,
	})
	ts.Check(err)
}

// s3grep TEXT: read every object of the bucket and fail if none holds TEXT
// (with !, fail if any does), so a script can prove a secret is stored
// nowhere.
func cmdS3Grep(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: s3grep TEXT")
	}
	ctx := context.Background()
	_, s3c, err := clients(ctx, ts.Getenv("AWS_ENDPOINT_URL"), ts.Getenv("AWS_ACCESS_KEY_ID"), ts.Getenv("AWS_SECRET_ACCESS_KEY"))
	ts.Check(err)
	bucket := ts.Getenv("TASKIQ_GO_BUCKET")
	p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	var hits []string
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		ts.Check(err)
		for _, o := range page.Contents {
			n++
			obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			ts.Check(err)
			body, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			ts.Check(err)
			if strings.Contains(string(body), args[0]) || strings.Contains(*o.Key, args[0]) {
				hits = append(hits, *o.Key)
			}
		}
	}
	ts.Logf("read %d objects", n)
	if n == 0 {
		ts.Fatalf("the bucket is empty: nothing was checked")
	}
	if neg && len(hits) > 0 {
		ts.Fatalf("%q found in %v", args[0], hits)
	}
	if !neg && len(hits) == 0 {
		ts.Fatalf("%q found in none of %d objects", args[0], n)
	}
}

// ssmput NAME VALUE: store a SecureString parameter in SSM (moto only).
func cmdSSMPut(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: ssmput NAME VALUE")
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ts.Getenv("AWS_ACCESS_KEY_ID"), ts.Getenv("AWS_SECRET_ACCESS_KEY"), "")))
	ts.Check(err)
	c := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(ts.Getenv("AWS_ENDPOINT_URL")) })
	_, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(args[0]), Value: aws.String(args[1]),
		Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)})
	ts.Check(err)
}

// sqsgrep QUEUE_URL N TEXT: read the N messages of the queue (bodies and
// attribute values), then make them visible again, and fail if none holds
// TEXT (with !, fail if any does), so that a script can prove a secret is
// in no message. Fewer than N messages within 20 s fails either way:
// nothing would have been checked.
func cmdSQSGrep(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: sqsgrep QUEUE_URL N TEXT")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	ctx := context.Background()
	sq := scriptSQS(ts)
	var held []string
	hits := 0
	for deadline := time.Now().Add(20 * time.Second); len(held) < n && time.Now().Before(deadline); {
		out, err := sq.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(args[0]), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			VisibilityTimeout: 60, MessageAttributeNames: []string{"All"},
		})
		ts.Check(err)
		for _, m := range out.Messages {
			held = append(held, *m.ReceiptHandle)
			text := aws.ToString(m.Body)
			for _, a := range m.MessageAttributes {
				text += "\n" + aws.ToString(a.StringValue)
			}
			if strings.Contains(text, args[2]) {
				hits++
			}
		}
	}
	for _, h := range held {
		_, err := sq.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(args[0]), ReceiptHandle: aws.String(h), VisibilityTimeout: 0,
		})
		ts.Check(err)
	}
	ts.Logf("read %d messages, %d hold %q", len(held), hits, args[2])
	if len(held) != n {
		ts.Fatalf("read %d messages, want %d", len(held), n)
	}
	if neg && hits > 0 {
		ts.Fatalf("%q found in %d messages", args[2], hits)
	}
	if !neg && hits == 0 {
		ts.Fatalf("%q found in none of %d messages", args[2], n)
	}
}

// sqsattr QUEUE_URL NAME VALUE: fail unless the queue's attribute NAME is
// VALUE (with !, unless it is not), as the endpoint reports it.
func cmdSQSAttr(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: sqsattr QUEUE_URL NAME VALUE")
	}
	out, err := scriptSQS(ts).GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(args[0]), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	ts.Check(err)
	got, ok := out.Attributes[args[1]]
	ts.Logf("%s %s=%q (reported: %v)", args[0], args[1], got, ok)
	if (ok && got == args[2]) == neg {
		ts.Fatalf("%s: %s is %q (reported: %v), want %s%q", args[0], args[1], got, ok, map[bool]string{true: "not ", false: ""}[neg], args[2])
	}
}

// s3sse ALGORITHM [KEY]: fail unless the bucket's default
// encryption is ALGORITHM (aws:kms, AES256), with KMS key KEY if given.
func cmdS3SSE(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: s3sse ALGORITHM [KEY]")
	}
	_, s3c, err := clients(context.Background(), ts.Getenv("AWS_ENDPOINT_URL"), ts.Getenv("AWS_ACCESS_KEY_ID"), ts.Getenv("AWS_SECRET_ACCESS_KEY"))
	ts.Check(err)
	out, err := s3c.GetBucketEncryption(context.Background(), &s3.GetBucketEncryptionInput{Bucket: aws.String(ts.Getenv("TASKIQ_GO_BUCKET"))})
	ts.Check(err)
	if out.ServerSideEncryptionConfiguration == nil || len(out.ServerSideEncryptionConfiguration.Rules) == 0 {
		ts.Fatalf("the bucket has no default encryption")
	}
	d := out.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault
	if d == nil {
		ts.Fatalf("the bucket's encryption rule has no default")
	}
	ts.Logf("bucket encryption %s key %q", d.SSEAlgorithm, aws.ToString(d.KMSMasterKeyID))
	if string(d.SSEAlgorithm) != args[0] || (len(args) == 2 && aws.ToString(d.KMSMasterKeyID) != args[1]) {
		ts.Fatalf("bucket encryption is %s with key %q, want %v", d.SSEAlgorithm, aws.ToString(d.KMSMasterKeyID), args)
	}
}

// smput NAME VALUE: store a secret's string value in Secrets Manager,
// replacing the value of one that exists (moto only).
func cmdSMPut(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: smput NAME VALUE")
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ts.Getenv("AWS_ACCESS_KEY_ID"), ts.Getenv("AWS_SECRET_ACCESS_KEY"), "")))
	ts.Check(err)
	c := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(ts.Getenv("AWS_ENDPOINT_URL")) })
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(args[0]), SecretString: aws.String(args[1])})
	var exists *smtypes.ResourceExistsException
	if errors.As(err, &exists) {
		_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(args[0]), SecretString: aws.String(args[1])})
	}
	ts.Check(err)
}
