package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/taskiq-go/taskiq-go/plan"
)

// signtask [-queue NAME] [-set-id ID] [-set-argv A,B] KEYFILE ID ARGV...:
// print a task (of queue NAME) signed with KEYFILE, then (to forge it)
// change its id or argv after signing.
func mainSignTask() {
	fs := flag.NewFlagSet("signtask", flag.ExitOnError)
	setID := fs.String("set-id", "", "change the id after signing")
	setArgv := fs.String("set-argv", "", "change argv (comma-separated) after signing")
	queue := fs.String("queue", "", "the task's queue (default: the default queue)")
	fs.Parse(os.Args[1:])
	args := fs.Args()
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: signtask [-queue NAME] [-set-id ID] [-set-argv A,B] KEYFILE ID ARGV...")
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
	t := &plan.Task{ID: args[1], Argv: args[2:], Queue: *queue}
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

// sqssendfile QUEUE_URL FILE: send FILE's content as one message.
func cmdSQSSendFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: sqssendfile QUEUE_URL FILE")
	}
	_, err := scriptSQS(ts).SendMessage(context.Background(), &awssqs.SendMessageInput{
		QueueUrl: aws.String(args[0]), MessageBody: aws.String(strings.TrimSpace(ts.ReadFile(args[1]))),
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
