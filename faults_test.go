package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/rogpeppe/go-internal/testscript"
)

// mainS3Fault is `s3fault ENVFILE CONTROL TARGET`: an HTTP proxy to TARGET
// on 127.0.0.1:0 that writes `export S3FAULT_URL=http://ADDR` to ENVFILE
// and passes SQS requests (they carry X-Amz-Target) through, while S3
// requests get 500 InternalError for as long as CONTROL holds (a duration;
// CONTROL.ack exists meanwhile). An empty CONTROL lasts $TEST_S3_OUTAGE.
func mainS3Fault() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: s3fault ENVFILE CONTROL TARGET")
		os.Exit(2)
	}
	envFile, control, target := os.Args[1], os.Args[2], os.Args[3]
	u, err := url.Parse("http://" + target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3fault:", err)
		os.Exit(2)
	}
	var until atomic.Int64 // unix nanoseconds; 0 while up
	var refused atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(u)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "" && time.Now().UnixNano() < until.Load() {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3fault:", err)
		os.Exit(1)
	}
	go srv.Serve(ln)
	os.WriteFile(envFile+".tmp", []byte("export S3FAULT_URL=http://"+ln.Addr().String()+"\n"), 0o644)
	os.Rename(envFile+".tmp", envFile)
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "s3fault %s: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	logf("up on %s, to %s", ln.Addr(), target)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			logf("stopping")
			os.Exit(0)
		case <-tick.C:
		}
		end := until.Load()
		if end == 0 {
			data, err := os.ReadFile(control)
			if err != nil {
				continue
			}
			spec := strings.TrimSpace(string(data))
			if spec == "" {
				spec = os.Getenv("TEST_S3_OUTAGE")
			}
			d, err := time.ParseDuration(spec)
			if err != nil {
				logf("bad duration %q in %s", spec, control)
				os.Exit(2)
			}
			until.Store(time.Now().Add(d).UnixNano())
			os.WriteFile(control+".ack", nil, 0o644)
			logf("S3 answers 500 for %s", d)
			continue
		}
		if time.Now().UnixNano() >= end {
			until.Store(0)
			os.Remove(control)
			os.Remove(control + ".ack")
			logf("S3 works again; %d requests refused", refused.Load())
		}
	}
}

// sqsredrive QUEUE DLQ N: dead-letter QUEUE's messages to DLQ once they
// have been received N times.
func cmdSQSRedrive(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: sqsredrive QUEUE DLQ N")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	sq := scriptSQS(ts)
	ctx := context.Background()
	out, err := sq.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(args[1]), AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"},
	})
	ts.Check(err)
	policy := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, out.Attributes["QueueArn"], n)
	_, err = sq.SetQueueAttributes(ctx, &awssqs.SetQueueAttributesInput{
		QueueUrl: aws.String(args[0]), Attributes: map[string]string{"RedrivePolicy": policy},
	})
	ts.Check(err)
}
