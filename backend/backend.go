// Package backend opens the AWS side for the commands: it loads the SDK
// configuration once (credentials chain, region, endpoints, retries) and
// builds the queue client and the store from it, so that no AWS type reaches
// the commands package.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/secrets"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Options are the resolved settings the AWS side needs.
type Options struct {
	Region      string
	Profile     string
	EndpointURL string // both services
	EndpointSQS string // overrides EndpointURL for SQS
	EndpointS3  string // overrides EndpointURL for S3
	Bucket      string
	Prefix      string
	// QueueURL is the default queue; its host gives the region when none is set.
	QueueURL string
	// MaxAttempts bounds the SDK's retries of one call (connection refused,
	// throttling, 5xx); commands keep it small so they fail fast.
	MaxAttempts int
}

// Backend holds the clients built from one loaded configuration.
type Backend struct {
	Queue *sqs.Client
	Store *s3results.Store
	// Secrets resolves tasks' secret references (SSM and Secrets Manager
	// clients are made on first use).
	Secrets *secrets.Resolver
}

// MaxIdleConnsPerHost is how many idle connections to one endpoint are kept
// for reuse: enough for the requests a command or a serve process makes at
// once.
const MaxIdleConnsPerHost = 64

// ErrNoRegion is returned when no region is configured and none can be
// derived from the queue URL.
var ErrNoRegion = errors.New("no AWS region: set --region or AWS_REGION (or use a queue URL of the form https://sqs.REGION.amazonaws.com/...)")

// Open loads the AWS configuration and builds the clients. It makes no
// network call: credentials are resolved on first use, and the instance
// metadata endpoint is asked with a short timeout so that a laptop with no
// credentials gets an error at once instead of a hang.
func Open(ctx context.Context, o Options) (*Backend, error) {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	region := o.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = RegionFromQueueURL(o.QueueURL)
	}
	loads := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = time.Second
				// The token bucket would turn an outage into "quota exceeded"
				// errors that hide the real cause; callers bound retries.
				so.RateLimiter = ratelimit.None
			})
		}),
		// Calls made at once (a batch's records, a serve process's
		// requests) each keep their connection for the next call: the
		// SDK's default keeps 10 per host and dials again past that.
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
		})),
		config.WithEC2RoleCredentialOptions(func(eo *ec2rolecreds.Options) {
			eo.Client = imds.New(imds.Options{
				HTTPClient: &http.Client{Timeout: time.Second},
				Retryer:    aws.NopRetryer{},
			})
		}),
	}
	if region != "" {
		loads = append(loads, config.WithRegion(region))
	}
	if o.Profile != "" {
		loads = append(loads, config.WithSharedConfigProfile(o.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, ErrNoRegion
	}
	sqsEndpoint := first(o.EndpointSQS, o.EndpointURL)
	s3Endpoint := first(o.EndpointS3, o.EndpointURL)
	custom := s3Endpoint != "" || os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	sqsAPI := awssqs.NewFromConfig(cfg, func(so *awssqs.Options) {
		if sqsEndpoint != "" {
			so.BaseEndpoint = aws.String(sqsEndpoint)
		}
	})
	s3API := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if s3Endpoint != "" {
			so.BaseEndpoint = aws.String(s3Endpoint)
		}
		if custom {
			// Emulators and most S3-compatible stores serve path-style
			// only, and some cannot read streamed checksum trailers.
			so.UsePathStyle = true
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	return &Backend{
		Queue:   sqs.New(sqsAPI),
		Store:   s3results.New(s3API, o.Bucket, o.Prefix),
		Secrets: secrets.New(cfg),
	}, nil
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// RegionFromQueueURL returns the region in an AWS queue URL such as
// https://sqs.eu-west-1.amazonaws.com/123456789012/taskiq, or "".
func RegionFromQueueURL(queueURL string) string {
	u, err := url.Parse(queueURL)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) >= 4 && parts[0] == "sqs" && strings.HasPrefix(strings.Join(parts[2:], "."), "amazonaws.com") {
		return parts[1]
	}
	return ""
}
