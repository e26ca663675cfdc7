package s3results

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"
)

// direct sends the store's object PUTs and GETs, its hottest requests, as
// one signed HTTP request each, without the SDK's middleware stack: about
// 250 µs of CPU less per request, which is most of a submit's and a short
// task's client-side cost. Everything else (LIST, HEAD, DELETE, bucket
// calls, logs) goes through the SDK.
//
// It is set up once from the SDK client's own options: the bucket's URL
// comes from the SDK's endpoint rules (so path style, FIPS, dual-stack and
// custom endpoints resolve as the SDK would), the credentials, HTTP client
// and retry policy are the client's. When the rules give anything but plain
// SigV4 (S3 Express, access points, multi-region) the store keeps the SDK.
type direct struct {
	client  s3.HTTPClient
	creds   aws.CredentialsProvider
	signer  *v4.Signer
	region  string
	base    *url.URL
	retryer func() aws.Retryer
	now     func() time.Time
}

// newDirect returns the direct path for bucket, or nil when the SDK must
// keep every request.
func newDirect(api *s3.Client, bucket string) *direct {
	if api == nil || bucket == "" {
		return nil
	}
	o := api.Options()
	if o.Credentials == nil || o.HTTPClient == nil || o.Region == "" || len(o.APIOptions) > 0 ||
		o.UseAccelerate || strings.HasSuffix(bucket, "--x-s3") || strings.HasPrefix(bucket, "arn:") {
		return nil
	}
	params := s3.EndpointParameters{
		Bucket:         aws.String(bucket),
		Region:         aws.String(o.Region),
		Endpoint:       o.BaseEndpoint,
		ForcePathStyle: aws.Bool(o.UsePathStyle),
		UseFIPS:        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		Accelerate:     aws.Bool(false),
	}
	resolver := o.EndpointResolverV2
	if resolver == nil {
		resolver = s3.NewDefaultEndpointResolverV2()
	}
	ep, err := resolver.ResolveEndpoint(context.Background(), params)
	if err != nil {
		return nil
	}
	region, ok := sigv4Region(ep.Properties.Get("authSchemes"), o.Region)
	if !ok {
		return nil
	}
	base := ep.URI
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = strings.TrimSuffix(base.RawPath, "/")
	retryer := func() aws.Retryer {
		if o.Retryer != nil {
			return o.Retryer
		}
		return retry.NewStandard()
	}
	return &direct{
		client: o.HTTPClient,
		creds:  o.Credentials,
		// S3 signs the path as sent, not escaped a second time.
		signer:  v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }),
		region:  region,
		base:    &base,
		retryer: retryer,
		now:     time.Now,
	}
}

// sigv4Region reads the endpoint's auth schemes and returns the signing
// region when plain SigV4 with signing name s3 comes first; no schemes at
// all means SigV4 in the client's region.
func sigv4Region(schemes any, region string) (string, bool) {
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
	if name, _ := first["signingName"].(string); name != "" && name != "s3" {
		return "", false
	}
	if r, _ := first["signingRegion"].(string); r != "" {
		region = r
	}
	return region, true
}

// apiError is an S3 error answer, in the shape the SDK's own errors have:
// a code for awserr and the store, a status for the retryer.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("api error %s (HTTP %d)", e.Code, e.Status)
	}
	return fmt.Sprintf("api error %s: %s", e.Code, e.Message)
}

// ErrorCode is the S3 error code, as smithy.APIError has it.
func (e *apiError) ErrorCode() string { return e.Code }

// ErrorMessage is S3's message.
func (e *apiError) ErrorMessage() string { return e.Message }

// ErrorFault says whose fault the error is.
func (e *apiError) ErrorFault() smithy.ErrorFault {
	if e.Status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// HTTPStatusCode is the answer's status, which the SDK's retryer reads.
func (e *apiError) HTTPStatusCode() int { return e.Status }

var _ smithy.APIError = (*apiError)(nil)

// errorFromResponse reads an error answer: S3's XML error document when
// there is one, else a code from the status (HEAD-like answers, proxies).
func errorFromResponse(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &apiError{Status: resp.StatusCode}
	var doc struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(body, &doc) == nil {
		e.Code, e.Message = doc.Code, doc.Message
	}
	if e.Code == "" {
		switch resp.StatusCode {
		case http.StatusNotFound:
			e.Code = "NotFound"
		case http.StatusPreconditionFailed:
			e.Code = "PreconditionFailed"
		case http.StatusForbidden:
			e.Code = "AccessDenied"
		case http.StatusServiceUnavailable:
			e.Code = "ServiceUnavailable"
		default:
			e.Code = fmt.Sprintf("%d", resp.StatusCode)
		}
	}
	return e
}

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// do sends one request (with the SDK's retry policy) and returns the body
// of a 2xx answer, read whole.
func (d *direct) do(ctx context.Context, method, key string, body []byte, header http.Header) ([]byte, error) {
	u := *d.base
	u.Path = d.base.Path + "/" + key
	u.RawPath = d.base.EscapedPath() + "/" + httpbinding.EscapePath(key, false)
	hash := emptySHA256
	if body != nil {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	retryer := d.retryer()
	for attempt := 1; ; attempt++ {
		data, err := d.once(ctx, method, &u, body, hash, header)
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

func (d *direct) once(ctx context.Context, method string, u *url.URL, body []byte, hash string, header http.Header) ([]byte, error) {
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
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds, err := d.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to retrieve credentials: %w", err)
	}
	if err := d.signer.SignHTTP(ctx, creds, req, hash, "s3", d.region, d.now().UTC()); err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, errorFromResponse(resp)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return data, nil
}

// put writes one object; ifAbsent makes it a conditional create.
func (d *direct) put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	if data == nil {
		data = []byte{}
	}
	var h http.Header
	if ifAbsent {
		h = http.Header{"If-None-Match": {"*"}}
	}
	_, err := d.do(ctx, http.MethodPut, key, data, h)
	return err
}

// get reads one object whole.
func (d *direct) get(ctx context.Context, key string) ([]byte, error) {
	return d.do(ctx, http.MethodGet, key, nil, nil)
}
