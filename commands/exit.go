package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/ops"
	"github.com/taskiq-go/taskiq-go/plan"
)

// Exit codes. The tool's own failures use the sysexits range so that they
// stay apart from the small codes commands usually exit with; `result`
// passes the task's own exit code through instead. The README has this
// table; keep the two in step.
const (
	ExitOK = 0
	// ExitNotAllSucceeded: `poll --wait` saw a task end other than succeeded.
	ExitNotAllSucceeded = 1
	ExitUsage           = 64 // unknown command or flag, missing argument, bad flag value
	ExitDataErr         = 65 // malformed or invalid task JSON
	ExitNoInput         = 66 // an input file cannot be read
	ExitNoTask          = 67 // no task with that id (or group)
	ExitNoQueue         = 68 // the queue or bucket does not exist
	ExitUnavailable     = 69 // the endpoint cannot be reached
	ExitSoftware        = 70 // an internal error
	ExitPartial         = 73 // a batch submit sent some tasks but not all
	ExitTempFail        = 75 // not finished yet, or a --wait timed out
	ExitNoPerm          = 77 // credentials missing or refused
	ExitConfig          = 78 // a required setting is missing or the config file is bad
	ExitInterrupted     = 130
)

// usageError is a mistake in how the command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// configError is a missing or bad setting.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// inputError is an input file that cannot be read.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// exitCode ends the program with a code and no message: the command has
// already said what there is to say (result mirroring a task's exit code).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// errWaitTimeout is returned when --wait runs out of time.
var errWaitTimeout = ops.ErrWaitTimeout

// errInterrupted is returned when a waiting command is interrupted.
var errInterrupted = ops.ErrInterrupted

// codeFor maps an error to its exit code: the one place that does.
func codeFor(err error) int {
	var (
		ec exitCode
		ue *usageError
		ce *configError
		ie *inputError
		ve *plan.ValidationError
		de *plan.DecodeError
		pe *ops.PartialError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ec):
		return int(ec)
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &ie):
		return ExitNoInput
	case errors.As(err, &pe):
		return ExitPartial
	case errors.As(err, &ve), errors.As(err, &de), errors.Is(err, lifecycle.ErrConflict):
		return ExitDataErr
	case errors.As(err, &ce), errors.Is(err, backend.ErrNoRegion):
		return ExitConfig
	case errors.Is(err, errInterrupted):
		return ExitInterrupted
	case errors.Is(err, plan.ErrTaskNotFound), errors.Is(err, errNoWorker):
		return ExitNoTask
	case errors.Is(err, plan.ErrQueueNotFound), errors.Is(err, plan.ErrBucketNotFound):
		return ExitNoQueue
	case errors.Is(err, plan.ErrUnreachable):
		return ExitUnavailable
	case errors.Is(err, plan.ErrNotFinished), errors.Is(err, errWaitTimeout):
		return ExitTempFail
	case errors.Is(err, plan.ErrAccessDenied):
		return ExitNoPerm
	}
	return ExitSoftware
}

// message is the one line printed for err: lowercase, no trailing period,
// with hints for the kinds users can act on.
func message(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, plan.ErrUnreachable):
		msg += " (is the endpoint running? check --endpoint-url / AWS_ENDPOINT_URL)"
	case errors.Is(err, plan.ErrQueueNotFound):
		msg += " (check --queue-url / TASKIQ_GO_QUEUE_URL, or create it)"
	case errors.Is(err, plan.ErrBucketNotFound):
		msg += " (check --bucket / TASKIQ_GO_BUCKET, or create it)"
	case errors.Is(err, plan.ErrAccessDenied):
		msg += " (check the AWS credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role)"
	}
	return strings.ReplaceAll(strings.TrimSuffix(msg, "."), "\n", " ")
}
