package s3results

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/taskiq-go/taskiq-go/internal/signedhttp"
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
	c    signedhttp.Client
	base *url.URL
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
	region, ok := signedhttp.SigV4Region(ep.Properties.Get("authSchemes"), "s3", o.Region)
	if !ok {
		return nil
	}
	base := ep.URI
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = strings.TrimSuffix(base.RawPath, "/")
	return &direct{
		c: signedhttp.Client{
			HTTP:  o.HTTPClient,
			Creds: o.Credentials,
			// S3 signs the path as sent, not escaped a second time.
			Signer:  v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }),
			Service: "s3",
			Region:  region,
			Retryer: o.Retryer,
			Error:   errorFromResponse,
		},
		base: &base,
	}
}

// errorFromResponse reads an S3 error answer: its XML error document when
// there is one, else a code from the status (HEAD-like answers, proxies).
func errorFromResponse(resp *http.Response, body []byte) error {
	e := &signedhttp.APIError{Status: resp.StatusCode}
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

// url is the object's URL, escaped as S3 signs it.
func (d *direct) url(key string) *url.URL {
	u := *d.base
	u.Path = d.base.Path + "/" + key
	u.RawPath = d.base.EscapedPath() + "/" + httpbinding.EscapePath(key, false)
	return &u
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
	_, err := d.c.Do(ctx, http.MethodPut, d.url(key), h, data)
	return err
}

// get reads one object whole.
func (d *direct) get(ctx context.Context, key string) ([]byte, error) {
	return d.c.Do(ctx, http.MethodGet, d.url(key), nil, nil)
}
