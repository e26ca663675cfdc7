package plan

import "errors"

// Error kinds shared by every layer. The sqs and s3results packages wrap the
// AWS errors they see into these, so that commands can map them to exit codes
// without knowing about AWS types.
var (
	// ErrUnreachable: the endpoint refused or dropped connections after retries.
	ErrUnreachable = errors.New("cannot reach the endpoint")
	// ErrQueueNotFound: the SQS queue does not exist.
	ErrQueueNotFound = errors.New("queue does not exist")
	// ErrBucketNotFound: the S3 bucket does not exist.
	ErrBucketNotFound = errors.New("bucket does not exist")
	// ErrTaskNotFound: no task with that id was ever submitted.
	ErrTaskNotFound = errors.New("no such task")
	// ErrNotFinished: the task has no final result yet.
	ErrNotFinished = errors.New("task has not finished")
	// ErrAccessDenied: credentials are missing, invalid or lack permission.
	ErrAccessDenied = errors.New("access denied")
	// ErrExists: a conditional write lost because the object already exists.
	ErrExists = errors.New("already exists")
)
