// Package awserr translates errors from the AWS SDK into the plan package's
// error kinds, keeping the original error in the chain for the message.
package awserr

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/taskiq-go/taskiq-go/plan"
)

// kindError carries both the kind (for errors.Is) and the cause (for the
// message) without repeating the cause's long SDK text.
type kindError struct {
	kind  error
	cause error
}

func (e *kindError) Error() string {
	return e.kind.Error() + ": " + Brief(e.cause)
}

func (e *kindError) Is(target error) bool { return target == e.kind }
func (e *kindError) Unwrap() error        { return e.cause }

// Classify returns err marked with a plan error kind when one fits, else err.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	if k := kind(err); k != nil {
		return &kindError{kind: k, cause: err}
	}
	return err
}

func kind(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NonExistentQueue":
			return plan.ErrQueueNotFound
		case "NoSuchBucket":
			return plan.ErrBucketNotFound
		case "PreconditionFailed", "ConditionalRequestConflict":
			return plan.ErrExists
		case "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
			"InvalidAccessKeyId", "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException":
			return plan.ErrAccessDenied
		}
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() == 412 {
		return plan.ErrExists
	}
	if IsConnection(err) {
		return plan.ErrUnreachable
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") ||
		strings.Contains(err.Error(), "no EC2 IMDS role found") {
		return plan.ErrAccessDenied
	}
	return nil
}

// IsConnection reports whether err is a failure to connect or a dropped
// connection, as opposed to an answer from the service.
func IsConnection(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "connection reset") ||
		strings.Contains(s, "EOF") && strings.Contains(s, "send request failed")
}

// Brief shortens an SDK error to its most useful part: the service's code and
// message, or the innermost network error, instead of the whole chain with
// request ids and retry counts.
func Brief(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		msg := apiErr.ErrorMessage()
		if msg == "" {
			return apiErr.ErrorCode()
		}
		return fmt.Sprintf("%s: %s", apiErr.ErrorCode(), msg)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	return err.Error()
}
