package commands

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/ops"
	"github.com/taskiq-go/taskiq-go/plan"
)

func TestCodeFor(t *testing.T) {
	wrapped := func(err error) error { return fmt.Errorf("sqs send q: %w", err) }
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"exit code", exitCode(3), 3},
		{"wrapped exit code", fmt.Errorf("x: %w", exitCode(143)), 143},
		{"usage", usagef("bad %s", "flag"), ExitUsage},
		{"input file", &inputError{os.ErrNotExist}, ExitNoInput},
		{"validation", &plan.ValidationError{Field: "v", Reason: "is 2"}, ExitDataErr},
		{"decode", fmt.Errorf("spec.json: %w", &plan.DecodeError{Err: errors.New("unexpected EOF")}), ExitDataErr},
		{"config", &configError{"no bucket"}, ExitConfig},
		{"no region", backend.ErrNoRegion, ExitConfig},
		{"interrupted", errInterrupted, ExitInterrupted},
		{"no task", wrapped(plan.ErrTaskNotFound), ExitNoTask},
		{"no queue", wrapped(plan.ErrQueueNotFound), ExitNoQueue},
		{"no bucket", wrapped(plan.ErrBucketNotFound), ExitNoQueue},
		{"unreachable", wrapped(plan.ErrUnreachable), ExitUnavailable},
		{"not finished", wrapped(plan.ErrNotFinished), ExitTempFail},
		{"wait timed out", errWaitTimeout, ExitTempFail},
		{"access denied", wrapped(plan.ErrAccessDenied), ExitNoPerm},
		{"resubmit conflict", fmt.Errorf("task x %w", lifecycle.ErrConflict), ExitDataErr},
		{"partial submit", &ops.PartialError{Sent: 25, Total: 30, Err: wrapped(plan.ErrQueueNotFound)}, ExitPartial},
		{"anything else", errors.New("result record has version 9"), ExitSoftware},
	}
	for _, tt := range tests {
		if got := codeFor(tt.err); got != tt.want {
			t.Errorf("%s: codeFor(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("plain"), "plain"},
		{errors.New("no trailing period."), "no trailing period"},
		{errors.New("two\nlines"), "two lines"},
		{fmt.Errorf("s3 put k: %w", plan.ErrUnreachable), "s3 put k: cannot reach the endpoint (is the endpoint running? check --endpoint-url / AWS_ENDPOINT_URL)"},
		{fmt.Errorf("q: %w", plan.ErrQueueNotFound), "q: queue does not exist (check --queue-url / TASKIQ_GO_QUEUE_URL, or create it)"},
		{fmt.Errorf("b: %w", plan.ErrBucketNotFound), "b: bucket does not exist (check --bucket / TASKIQ_GO_BUCKET, or create it)"},
		{fmt.Errorf("c: %w", plan.ErrAccessDenied), "c: access denied (check the AWS credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role)"},
	}
	for _, tt := range tests {
		if got := message(tt.err); got != tt.want {
			t.Errorf("message(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestResultExitCode(t *testing.T) {
	tests := []struct {
		name string
		r    plan.Result
		want int
	}{
		{"succeeded", plan.Result{State: plan.StateSucceeded, ExitCode: plan.IntPtr(0)}, 0},
		{"failed with 3", plan.Result{State: plan.StateFailed, ExitCode: plan.IntPtr(3)}, 3},
		{"SIGTERM on timeout", plan.Result{State: plan.StateTimedOut, ExitCode: plan.IntPtr(143), Signal: "SIGTERM"}, 143},
		{"SIGKILL", plan.Result{State: plan.StateTimedOut, ExitCode: plan.IntPtr(137), Signal: "SIGKILL"}, 137},
		{"cancelled while running", plan.Result{State: plan.StateCancelled, ExitCode: plan.IntPtr(143)}, 143},
		{"not found", plan.Result{State: plan.StateFailed, ExitCode: plan.IntPtr(127)}, 127},
		{"out of range", plan.Result{State: plan.StateFailed, ExitCode: plan.IntPtr(256 + 7)}, 7},
		{"succeeded without a code", plan.Result{State: plan.StateSucceeded}, 0},
		{"timed out without a code", plan.Result{State: plan.StateTimedOut}, 124},
		{"cancelled before it started", plan.Result{State: plan.StateCancelled}, 130},
		{"failed without a code (lost too often)", plan.Result{State: plan.StateFailed}, 125},
	}
	for _, tt := range tests {
		if got := ResultExitCode(&tt.r); got != tt.want {
			t.Errorf("%s: ResultExitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}
