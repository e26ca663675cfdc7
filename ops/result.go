package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
)

// ResultOptions say which task's result to read, and whether to wait for it.
type ResultOptions struct {
	ID   string
	Wait bool
	WaitOptions
}

// Result reads a task's final result, waiting for it when asked.
func Result(ctx context.Context, be *backend.Backend, o ResultOptions) (*plan.Result, error) {
	var res *plan.Result
	check := func(ctx context.Context) (bool, error) {
		var err error
		res, err = lifecycle.Result(ctx, be.Store, o.ID)
		if errors.Is(err, plan.ErrNotFinished) && o.Wait {
			return false, nil
		}
		return err == nil, err
	}
	if err := Wait(ctx, o.WaitOptions, check); err != nil {
		if errors.Is(err, plan.ErrNotFinished) {
			return nil, fmt.Errorf("%w (use --wait to wait for it)", err)
		}
		return nil, err
	}
	return res, nil
}

// CopyOutput writes one captured stream: inline data, or the log object.
func CopyOutput(ctx context.Context, be *backend.Backend, o plan.Output, w io.Writer) error {
	if o.Key == "" {
		_, err := io.Copy(w, strings.NewReader(o.Data))
		return err
	}
	body, err := be.Store.OpenLog(ctx, o.Key)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = io.Copy(w, body)
	return err
}

// ResultExitCode is the code `result` exits with for a task: its own exit
// code when it ran, else one that says why it did not.
func ResultExitCode(r *plan.Result) int {
	if r.ExitCode != nil {
		return *r.ExitCode & 0xff
	}
	switch r.State {
	case plan.StateSucceeded:
		return 0
	case plan.StateTimedOut:
		return 124
	case plan.StateCancelled:
		return 130
	}
	return 125
}
