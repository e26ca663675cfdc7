package devserver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// signedChunkedPut builds a PUT of chunks in the signed aws-chunked framing
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), every signature made by the SDK's
// own signers: v4.Signer for the seed, v4.StreamSigner for the chain (an
// S3 chunk is an event-stream message with no headers). tamper, when not
// nil, may change a chunk's data after it was signed.
func signedChunkedPut(t *testing.T, s *Server, key string, secret string, chunks []string, tamper func(i int, data string) string) *http.Request {
	t.Helper()
	creds := aws.Credentials{AccessKeyID: s.Credentials().AccessKeyID, SecretAccessKey: secret}
	now := time.Now().UTC().Truncate(time.Second)
	decoded := 0
	for _, c := range chunks {
		decoded += len(c)
	}
	req, _ := http.NewRequest(http.MethodPut, s.Endpoint()+"/"+s.Bucket()+"/"+key, nil)
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(decoded))
	req.Header.Set("X-Amz-Content-Sha256", streamingSigned)
	if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(context.Background(),
		creds, req, streamingSigned, "s3", s.Region(), now); err != nil {
		t.Fatal(err)
	}
	a, err := parseAuthorization(req.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := hex.DecodeString(a.signature)
	ss := v4.NewStreamSigner(creds, "s3", s.Region(), seed)
	var body bytes.Buffer
	for i, c := range append(chunks, "") {
		sig, err := ss.GetSignature(context.Background(), nil, []byte(c), now)
		if err != nil {
			t.Fatal(err)
		}
		if tamper != nil {
			c = tamper(i, c)
		}
		fmt.Fprintf(&body, "%x;chunk-signature=%x\r\n%s\r\n", len(c), sig, c)
	}
	req.Body = io.NopCloser(bytes.NewReader(body.Bytes()))
	req.ContentLength = int64(body.Len())
	return req
}

// TestChunkedUploadSigned: every chunk of a signed streaming upload is
// checked against the signature chain that starts at the request's seed
// signature; a changed, unsigned or foreign chunk is refused with S3's
// SignatureDoesNotMatch and nothing is stored.
func TestChunkedUploadSigned(t *testing.T) {
	s := startServer(t, Options{})
	secret := s.Credentials().SecretAccessKey
	chunks := []string{strings.Repeat("a", 70<<10), "hello", ", world"}
	if status, body := do(t, signedChunkedPut(t, s, "signed", secret, chunks, nil)); status != 200 {
		t.Fatalf("signed chunked put: %d %s", status, body)
	}
	out, err := s3Client(t, localTarget(s)).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("signed")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(got) != strings.Join(chunks, "") {
		t.Fatalf("read back %d bytes, want %d", len(got), len(strings.Join(chunks, "")))
	}

	for name, tamper := range map[string]func(int, string) string{
		// Same length, one byte changed: only the signature can tell.
		"changed": func(i int, c string) string {
			if i == 1 {
				return "jello"
			}
			return c
		},
		// The chunks swapped: each signature is right for the other place.
		"reordered": func(i int, c string) string {
			switch i {
			case 1:
				return ", world"
			case 2:
				return "hello"
			}
			return c
		},
		// A chunk added at the end, in place of the empty last one.
		"appended": func(i int, c string) string {
			if i == 3 {
				return "!"
			}
			return c
		},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := do(t, signedChunkedPut(t, s, "bad-"+name, secret, chunks, tamper))
			if status != 403 || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") {
				t.Fatalf("tampered upload: %d %s", status, body)
			}
			if _, err := s3Client(t, localTarget(s)).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("bad-" + name)}); err == nil {
				t.Fatal("tampered upload stored")
			}
		})
	}

	// A chunk without a signature.
	req := signedChunkedPut(t, s, "unsigned-chunk", secret, []string{"hello"}, nil)
	raw, _ := io.ReadAll(req.Body)
	i := bytes.Index(raw, []byte(";chunk-signature="))
	raw = append(raw[:i:i], raw[i+len(";chunk-signature=")+64:]...)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
	if status, body := do(t, req); status != 403 || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Fatalf("chunk without signature: %d %s", status, body)
	}

	// The seed signed with another secret: refused before any chunk.
	if status, body := do(t, signedChunkedPut(t, s, "foreign", "not-"+secret, chunks, nil)); status != 403 || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Fatalf("foreign seed: %d %s", status, body)
	}
}

// TestChunkedUploadSDK: the SDK's own PutObject of a body it cannot seek,
// with a checksum, is sent as STREAMING-UNSIGNED-PAYLOAD-TRAILER (over TLS
// only, so through a TLS front of the same handler) and stored as sent.
func TestChunkedUploadSDK(t *testing.T) {
	s := startServer(t, Options{})
	front := httptest.NewTLSServer(http.HandlerFunc(s.route))
	defer front.Close()
	var sent atomic.Value
	c := s3.NewFromConfig(awsConfig(t, localTarget(s)), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(front.URL)
		o.UsePathStyle = true
		o.HTTPClient = front.Client()
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("recordPayload", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					sent.Store(req.Header.Get("X-Amz-Content-Sha256"))
				}
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
		})
	})
	body := strings.Repeat("taskiq ", 20000)
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(s.Bucket()), Key: aws.String("sdk"),
		Body: io.MultiReader(strings.NewReader(body)), ContentLength: aws.Int64(int64(len(body))),
		ChecksumAlgorithm: "CRC32",
	}); err != nil {
		t.Fatal(err)
	}
	if got := sent.Load(); got != streamingUnsignedTrailer {
		t.Fatalf("the SDK sent x-amz-content-sha256 %v, want %s", got, streamingUnsignedTrailer)
	}
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("sdk")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(got) != body {
		t.Fatalf("read back %d bytes, want %d", len(got), len(body))
	}
}

// TestChunkedUploadSignedTrailer: with STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER
// the trailing checksum header is signed too, after the last chunk; a
// changed trailer is refused. The trailer signature is computed here from
// AWS's description (string to sign "AWS4-HMAC-SHA256-TRAILER", the date,
// the scope, the last chunk signature, the SHA-256 of "name:value\n"),
// with the signing key derived independently of the endpoint's code.
func TestChunkedUploadSignedTrailer(t *testing.T) {
	s := startServer(t, Options{})
	creds := aws.Credentials{AccessKeyID: s.Credentials().AccessKeyID, SecretAccessKey: s.Credentials().SecretAccessKey}
	put := func(key, trailerValue string) (int, string) {
		now := time.Now().UTC().Truncate(time.Second)
		req, _ := http.NewRequest(http.MethodPut, s.Endpoint()+"/"+s.Bucket()+"/"+key, nil)
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Decoded-Content-Length", "5")
		req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		req.Header.Set("X-Amz-Content-Sha256", streamingSignedTrailer)
		if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(context.Background(),
			creds, req, streamingSignedTrailer, "s3", s.Region(), now); err != nil {
			t.Fatal(err)
		}
		a, _ := parseAuthorization(req.Header.Get("Authorization"))
		seed, _ := hex.DecodeString(a.signature)
		ss := v4.NewStreamSigner(creds, "s3", s.Region(), seed)
		var body bytes.Buffer
		var last []byte
		for _, c := range []string{"hello", ""} {
			sig, _ := ss.GetSignature(context.Background(), nil, []byte(c), now)
			last = sig
			fmt.Fprintf(&body, "%x;chunk-signature=%x\r\n%s", len(c), sig, c)
			if c != "" {
				body.WriteString("\r\n")
			}
		}
		mac := func(key []byte, data string) []byte {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(data))
			return m.Sum(nil)
		}
		date := now.Format("20060102")
		k := mac(mac(mac(mac([]byte("AWS4"+creds.SecretAccessKey), date), s.Region()), "s3"), "aws4_request")
		signed := sha256.Sum256([]byte("x-amz-checksum-crc32:NhCmhg==\n"))
		sts := "AWS4-HMAC-SHA256-TRAILER\n" + now.Format("20060102T150405Z") + "\n" + date + "/" + s.Region() + "/s3/aws4_request\n" +
			hex.EncodeToString(last) + "\n" + hex.EncodeToString(signed[:])
		fmt.Fprintf(&body, "x-amz-checksum-crc32:%s\r\nx-amz-trailer-signature:%x\r\n\r\n", trailerValue, mac(k, sts))
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body.Bytes())), int64(body.Len())
		return do(t, req)
	}
	if status, body := put("trailer", "NhCmhg=="); status != 200 {
		t.Fatalf("signed trailer: %d %s", status, body)
	}
	if status, body := put("trailer-bad", "AAAAAA=="); status != 403 || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Fatalf("changed trailer: %d %s", status, body)
	}
	if _, err := s3Client(t, localTarget(s)).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("trailer-bad")}); err == nil {
		t.Fatal("upload with a changed trailer stored")
	}
}
