// Package signedhttp sends single SigV4-signed HTTP requests to AWS APIs,
// for the few calls on the hot path where the SDK's middleware stack costs
// more CPU than the request itself (about 250 µs per call). The endpoint,
// credentials, HTTP client and retry policy are the SDK client's own; the
// packages that talk to S3 and SQS build the request and read the answer.
package signedhttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// Doer is the HTTP client the SDK uses.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Client signs and sends requests for one service in one region.
type Client struct {
	HTTP    Doer
	Creds   aws.CredentialsProvider
	Signer  *v4.Signer
	Service string
	Region  string
	// Retryer is the SDK client's retry policy; nil means the SDK's
	// standard one.
	Retryer aws.Retryer
	// Error turns a non-2xx answer (its body read, at most 64 KiB) into an
	// error; it should return an *APIError so that the retryer and the
	// error kinds can read it.
	Error func(resp *http.Response, body []byte) error
	// Now is the signing clock; nil means time.Now.
	Now func() time.Time
}

// APIError is a service's error answer, in the shape of the SDK's own: a
// code (smithy.APIError) and the HTTP status (which the retryer reads).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("api error %s (HTTP %d)", e.Code, e.Status)
	}
	return fmt.Sprintf("api error %s: %s", e.Code, e.Message)
}

// ErrorCode is the service's error code.
func (e *APIError) ErrorCode() string { return e.Code }

// ErrorMessage is the service's message.
func (e *APIError) ErrorMessage() string { return e.Message }

// ErrorFault says whose fault the error is.
func (e *APIError) ErrorFault() smithy.ErrorFault {
	if e.Status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// HTTPStatusCode is the answer's status.
func (e *APIError) HTTPStatusCode() int { return e.Status }

var _ smithy.APIError = (*APIError)(nil)

// Do sends method u with header and body (nil for none), signed, retried
// under the retry policy, and returns the body of a 2xx answer.
func (c *Client) Do(ctx context.Context, method string, u *url.URL, header http.Header, body []byte) ([]byte, error) {
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	retryer := c.Retryer
	if retryer == nil {
		retryer = retry.NewStandard()
	}
	for attempt := 1; ; attempt++ {
		data, err := c.once(ctx, method, u, header, body, hash)
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil || attempt >= retryer.MaxAttempts() || !retryer.IsErrorRetryable(err) {
			return nil, err
		}
		delay, derr := retryer.RetryDelay(attempt, err)
		if derr != nil {
			return nil, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, method string, u *url.URL, header http.Header, body []byte, hash string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	if c.Service == "s3" {
		req.Header.Set("X-Amz-Content-Sha256", hash)
	}
	creds, err := c.Creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to retrieve credentials: %w", err)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if err := c.Signer.SignHTTP(ctx, creds, req, hash, c.Service, c.Region, now().UTC()); err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, c.Error(resp, data)
	}
	return io.ReadAll(resp.Body)
}

// SigV4Region reads an endpoint's auth schemes (the endpoint rules'
// "authSchemes" property) and returns the signing region when plain SigV4
// for service comes first; no schemes at all means SigV4 in region.
func SigV4Region(schemes any, service, region string) (string, bool) {
	if schemes == nil {
		return region, true
	}
	list, ok := schemes.([]interface{})
	if !ok || len(list) == 0 {
		return "", false
	}
	first, ok := list[0].(map[string]interface{})
	if !ok || first["name"] != "sigv4" {
		return "", false
	}
	if name, _ := first["signingName"].(string); name != "" && name != service {
		return "", false
	}
	if r, _ := first["signingRegion"].(string); r != "" {
		region = r
	}
	return region, true
}
