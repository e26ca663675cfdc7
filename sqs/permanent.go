package sqs

import (
	"errors"
	"strings"

	"github.com/aws/smithy-go"
)

// ErrPermanent marks an SQS answer that a retry cannot change: a receipt
// handle that is no longer valid, a message no longer in flight, a request
// SQS refuses as malformed, a queue that does not exist. Callers that retry
// through outages test for it with errors.Is (or Permanent) and stop at
// once: retrying these only blocks the acknowledger and a worker's exit.
var ErrPermanent = errors.New("permanent sqs error")

// permanentCodes are the error codes, without the "AWS.SimpleQueueService."
// prefix of the query protocol, that never succeed on retry.
var permanentCodes = map[string]bool{
	"ReceiptHandleIsInvalid":       true,
	"InvalidReceiptHandle":         true,
	"MessageNotInflight":           true,
	"InvalidParameterValue":        true,
	"InvalidParameterCombination":  true,
	"MissingParameter":             true,
	"InvalidAddress":               true,
	"InvalidIdFormat":              true,
	"InvalidBatchEntryId":          true,
	"BatchEntryIdsNotDistinct":     true,
	"TooManyEntriesInBatchRequest": true,
	"EmptyBatchRequest":            true,
	"InvalidMessageContents":       true,
	"UnsupportedOperation":         true,
	"QueueDoesNotExist":            true,
	"NonExistentQueue":             true,
	"AccessDenied":                 true,
	"AccessDeniedException":        true,
}

// permanentCode reports whether an SQS error code is one that a retry cannot
// change.
func permanentCode(code string) bool {
	return permanentCodes[strings.TrimPrefix(code, "AWS.SimpleQueueService.")]
}

// permanentError carries ErrPermanent beside the classified cause.
type permanentError struct{ cause error }

func (e *permanentError) Error() string   { return e.cause.Error() }
func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.cause} }
func markPermanent(err error) error       { return &permanentError{cause: err} }
func isPermanentAPI(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && permanentCode(apiErr.ErrorCode())
}

// Permanent reports whether err is an SQS answer that a retry cannot change.
func Permanent(err error) bool { return errors.Is(err, ErrPermanent) }
