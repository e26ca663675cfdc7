package s3results

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/taskiq-go/taskiq-go/devserver"
	"github.com/taskiq-go/taskiq-go/plan"
)

// devStore starts an in-process dev endpoint and returns a store on it
// whose client points at endpoint (the dev endpoint itself when "").
func devStore(tb testing.TB, endpoint string, secret string) (*Store, *devserver.Server) {
	tb.Helper()
	srv, err := devserver.New(devserver.Options{Bucket: "taskiq"})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	if endpoint == "" {
		endpoint = srv.Endpoint()
	}
	c := srv.Credentials()
	if secret == "" {
		secret = c.SecretAccessKey
	}
	api := s3.New(s3.Options{
		Region: srv.Region(), BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials:                aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(c.AccessKeyID, secret, "")),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return New(api, "taskiq", "pre"), srv
}

// The direct path signs what the endpoint checks (the dev endpoint verifies
// every SigV4 signature), keeps S3's conditional create and not-found
// answers, and reads back what the SDK wrote and the other way round, for
// keys with characters that need escaping.
func TestDirectPutGetAgreesWithTheSDK(t *testing.T) {
	st, _ := devStore(t, "", "")
	if st.fast == nil {
		t.Fatal("no direct path for a path-style custom endpoint")
	}
	sdk := &Store{api: st.api, bucket: st.bucket, keys: st.keys}
	ctx := context.Background()
	for _, key := range []string{"pre/tasks/a.b-c_1/task.json", "pre/odd key/+=,;@$&~!'()*/é/ü%20x", "pre/a//b"} {
		body := []byte("data of " + key)
		if err := st.put(ctx, key, body, true); err != nil {
			t.Fatalf("direct put %q: %v", key, err)
		}
		got, err := sdk.get(ctx, key)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("SDK get of direct put %q = %q, %v", key, got, err)
		}
		if err := st.put(ctx, key, []byte("other"), true); !errors.Is(err, plan.ErrExists) {
			t.Fatalf("second conditional put of %q: %v, want ErrExists", key, err)
		}
		if err := sdk.put(ctx, key+".sdk", body, false); err != nil {
			t.Fatal(err)
		}
		if got, err := st.get(ctx, key+".sdk"); err != nil || !bytes.Equal(got, body) {
			t.Fatalf("direct get of SDK put %q = %q, %v", key, got, err)
		}
	}
	if err := st.put(ctx, "pre/empty", nil, false); err != nil {
		t.Fatal(err)
	}
	if got, err := st.get(ctx, "pre/empty"); err != nil || len(got) != 0 {
		t.Fatalf("empty object = %q, %v", got, err)
	}
	if _, err := st.get(ctx, "pre/missing"); !errors.Is(err, ErrNoObject) {
		t.Fatalf("get of a missing key: %v, want ErrNoObject", err)
	}
}

// Errors keep their kinds: a wrong secret is access denied, a closed port
// is unreachable.
func TestDirectErrorKinds(t *testing.T) {
	st, _ := devStore(t, "", "not-the-secret")
	err := st.put(context.Background(), "pre/x", []byte("x"), false)
	if !errors.Is(err, plan.ErrAccessDenied) {
		t.Fatalf("wrong secret: %v, want ErrAccessDenied", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	st, _ = devStore(t, "http://"+addr, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = st.put(ctx, "pre/x", []byte("x"), false)
	if !errors.Is(err, plan.ErrUnreachable) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("closed port: %v, want ErrUnreachable", err)
	}
}

// A 503 is retried under the SDK's policy, and the request that finally
// gets through is signed afresh and accepted.
func TestDirectRetriesServerErrors(t *testing.T) {
	srv, err := devserver.New(devserver.Options{Bucket: "taskiq"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	target, _ := url.Parse(srv.Endpoint())
	proxy := httputil.NewSingleHostReverseProxy(target)
	var calls atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "<Error><Code>SlowDown</Code><Message>try later</Message></Error>")
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	c := srv.Credentials()
	api := s3.New(s3.Options{
		Region: srv.Region(), BaseEndpoint: aws.String(front.URL), UsePathStyle: true,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")),
	})
	st := New(api, "taskiq", "")
	if err := st.put(context.Background(), "k", []byte("v"), true); err != nil {
		t.Fatalf("put through two 503s: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d requests, want 3 (two refused, one retried through)", n)
	}
	if got, err := st.get(context.Background(), "k"); err != nil || string(got) != "v" {
		t.Fatalf("get = %q, %v", got, err)
	}
}

// Setups the direct path cannot serve keep the SDK.
func TestDirectStaysOffWhereTheSDKMustSign(t *testing.T) {
	creds := aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("a", "b", ""))
	on := s3.New(s3.Options{Region: "eu-west-1", Credentials: creds})
	if d := newDirect(on, "my-bucket"); d == nil || d.base.Host != "my-bucket.s3.eu-west-1.amazonaws.com" || d.c.Region != "eu-west-1" {
		t.Fatalf("AWS bucket: %+v", d)
	}
	for name, bucket := range map[string]string{
		"S3 Express":   "data--euw1-az1--x-s3",
		"access point": "arn:aws:s3:eu-west-1:123456789012:accesspoint/ap",
	} {
		if d := newDirect(on, bucket); d != nil {
			t.Errorf("%s bucket got a direct path to %s", name, d.base)
		}
	}
	acc := s3.New(s3.Options{Region: "eu-west-1", Credentials: creds, UseAccelerate: true})
	if newDirect(acc, "my-bucket") != nil {
		t.Error("accelerated bucket got a direct path")
	}
}

// BenchmarkStorePut compares one conditional PUT of a task-sized object
// through the SDK and through the direct path, against an in-process dev
// endpoint; cpu-us/op is the process's CPU (client and endpoint) per PUT.
func BenchmarkStorePut(b *testing.B) {
	st, _ := devStore(b, "", "")
	sdk := &Store{api: st.api, bucket: st.bucket, keys: st.keys}
	body := bytes.Repeat([]byte("x"), 600)
	for name, s := range map[string]*Store{"sdk": sdk, "direct": st} {
		b.Run(name, func(b *testing.B) {
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			for i := 0; i < b.N; i++ {
				if err := s.put(context.Background(), fmt.Sprintf("%s/%d", name, i), body, true); err != nil {
					b.Fatal(err)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
			b.ReportMetric(float64(cpu)/1e3/float64(b.N), "cpu-us/op")
		})
	}
}
