package s3results

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/taskiq-go/taskiq-go/internal/awserr"
	"github.com/taskiq-go/taskiq-go/plan"
)

// ErrBucketTaken is returned by CreateBucket when another AWS account owns
// a bucket of that name: bucket names are global.
var ErrBucketTaken = errors.New("the bucket name is taken by another AWS account")

// ErrNotSupported is returned when the endpoint does not implement a bucket
// configuration call (emulators often lack lifecycle rules).
var ErrNotSupported = errors.New("not supported by the endpoint")

// BucketExists reports whether the bucket exists and can be reached with the
// credentials in use.
func (s *Store) BucketExists(ctx context.Context) (bool, error) {
	_, err := s.api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) || apiCode(err) == "NoSuchBucket" {
		return false, nil
	}
	// HEAD answers carry no error code: a bare 403 is a bucket this
	// account may not use, most often one that another account owns.
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() == 403 {
		return false, fmt.Errorf("s3 head bucket %s: %w (the name may belong to another AWS account)", s.bucket, plan.ErrAccessDenied)
	}
	return false, s.wrapBucket("head bucket", err)
}

// CreateBucket creates the bucket in the client's region (us-east-1 takes no
// location constraint; every other region requires one). A bucket this
// account already owns is not an error.
func (s *Store) CreateBucket(ctx context.Context) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if r := s.api.Options().Region; r != "" && r != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	_, err := s.api.CreateBucket(ctx, in)
	switch code := apiCode(err); {
	case err == nil, code == "BucketAlreadyOwnedByYou":
		return nil
	case code == "BucketAlreadyExists":
		return fmt.Errorf("s3 create bucket %s: %w", s.bucket, ErrBucketTaken)
	}
	return s.wrapBucket("create bucket", err)
}

// expiryRuleID names the lifecycle rule that expires this prefix, so that
// deployments sharing a bucket under different prefixes keep their own.
func (s *Store) expiryRuleID() string {
	if root := s.keys.Root(); root != "" {
		return "taskiq-go-expire-" + root
	}
	return "taskiq-go-expire"
}

// ExpiryDays reads the lifecycle rule that expires objects under the prefix
// after some days: its days, or found false when there is none.
func (s *Store) ExpiryDays(ctx context.Context) (days int, found bool, err error) {
	rules, err := s.lifecycleRules(ctx)
	if err != nil {
		return 0, false, err
	}
	for _, r := range rules {
		if aws.ToString(r.ID) == s.expiryRuleID() && r.Expiration != nil && r.Status == types.ExpirationStatusEnabled {
			return int(aws.ToInt32(r.Expiration.Days)), true, nil
		}
	}
	return 0, false, nil
}

// SetExpiryDays puts the lifecycle rule that expires objects under the
// prefix after days, keeping the bucket's other rules: S3 replaces a
// bucket's whole lifecycle configuration at once.
func (s *Store) SetExpiryDays(ctx context.Context, days int) error {
	rules, err := s.lifecycleRules(ctx)
	if err != nil {
		return err
	}
	id := s.expiryRuleID()
	keep := rules[:0]
	for _, r := range rules {
		if aws.ToString(r.ID) != id {
			keep = append(keep, r)
		}
	}
	keep = append(keep, types.LifecycleRule{
		ID:         aws.String(id),
		Status:     types.ExpirationStatusEnabled,
		Filter:     &types.LifecycleRuleFilter{Prefix: aws.String(s.keys.Root())},
		Expiration: &types.LifecycleExpiration{Days: aws.Int32(int32(days))},
	})
	_, err = s.api.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket:                 aws.String(s.bucket),
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: keep},
	})
	return s.wrapBucket("put lifecycle configuration", err)
}

func (s *Store) lifecycleRules(ctx context.Context) ([]types.LifecycleRule, error) {
	out, err := s.api.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(s.bucket)})
	if apiCode(err) == "NoSuchLifecycleConfiguration" {
		return nil, nil
	}
	if err != nil {
		return nil, s.wrapBucket("get lifecycle configuration", err)
	}
	return out.Rules, nil
}

// wrapBucket names the bucket in a bucket-level error and marks calls the
// endpoint does not implement.
func (s *Store) wrapBucket(op string, err error) error {
	if err == nil {
		return nil
	}
	code := apiCode(err)
	var respErr *smithyhttp.ResponseError
	if code == "NotImplemented" || code == "MethodNotAllowed" ||
		errors.As(err, &respErr) && respErr.HTTPStatusCode() == 501 {
		return fmt.Errorf("s3 %s %s: %w", op, s.bucket, ErrNotSupported)
	}
	return fmt.Errorf("s3 %s %s: %w", op, s.bucket, awserr.Classify(err))
}

func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// Encryption is a bucket's default encryption: Algorithm "aws:kms" with the
// KMS key, or "AES256" (SSE-S3, which S3 applies when nothing else is set).
type Encryption struct {
	Algorithm string
	KMSKey    string
}

// DefaultEncryption reads the bucket's default encryption; the zero value
// when none is configured.
func (s *Store) DefaultEncryption(ctx context.Context) (Encryption, error) {
	out, err := s.api.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(s.bucket)})
	if apiCode(err) == "ServerSideEncryptionConfigurationNotFoundError" {
		return Encryption{}, nil
	}
	if err != nil {
		return Encryption{}, s.wrapBucket("get encryption", err)
	}
	if out.ServerSideEncryptionConfiguration == nil {
		return Encryption{}, nil
	}
	for _, r := range out.ServerSideEncryptionConfiguration.Rules {
		if d := r.ApplyServerSideEncryptionByDefault; d != nil {
			return Encryption{Algorithm: string(d.SSEAlgorithm), KMSKey: aws.ToString(d.KMSMasterKeyID)}, nil
		}
	}
	return Encryption{}, nil
}

// SetDefaultKMSEncryption makes SSE-KMS with kmsKey the bucket's default
// encryption, with S3 Bucket Keys on so that objects do not cost a KMS
// request each.
func (s *Store) SetDefaultKMSEncryption(ctx context.Context, kmsKey string) error {
	_, err := s.api.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{
		Bucket: aws.String(s.bucket),
		ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{
			Rules: []types.ServerSideEncryptionRule{{
				ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{
					SSEAlgorithm:   types.ServerSideEncryptionAwsKms,
					KMSMasterKeyID: aws.String(kmsKey),
				},
				BucketKeyEnabled: aws.Bool(true),
			}},
		},
	})
	return s.wrapBucket("put encryption", err)
}
