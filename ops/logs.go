package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

// ErrNoAttempt is a --attempt the task has not reached; it counts as "no
// such task" for the exit code.
var ErrNoAttempt = fmt.Errorf("no such attempt: %w", plan.ErrTaskNotFound)

// LogsOptions say whose output Logs prints and how.
type LogsOptions struct {
	ID string
	// Attempt is the attempt to print (0: the latest).
	Attempt int
	// Follow keeps printing until the task has ended (or, with Attempt,
	// until that attempt has), switching to each new attempt.
	Follow bool
	// Interval is how often a follower reads (a LIST and a GET).
	Interval time.Duration
	// Stdout and Stderr receive the task's two streams.
	Stdout, Stderr io.Writer
	// Note is told what is not output: an attempt that starts, bytes a
	// follower missed, a task that has not started.
	Note func(msg string)
}

// Logs prints a task's output: a finished attempt's from its record, a
// running one's from the live tail its worker stores at each heartbeat.
// Following, it prints what is new at each Interval until the task ends,
// then the rest from the final result. It returns nil once done, whatever
// the task's own exit (result reports that); plan.ErrTaskNotFound for an
// unknown task and ErrNoAttempt for an attempt it has not reached.
func Logs(ctx context.Context, be *backend.Backend, o LogsOptions) error {
	note := o.Note
	if note == nil {
		note = func(string) {}
	}
	interval := max(o.Interval, 100*time.Millisecond)
	cur := o.Attempt
	var printed [2]int64
	notedWait := false
	for {
		snap, err := lifecycle.Peek(ctx, be.Store, o.ID)
		if err != nil {
			return err
		}
		latest := snap.LastClaim()
		if snap.Result != nil {
			latest = max(latest, snap.Result.Attempt)
		}
		if o.Attempt > latest && (!o.Follow || snap.Result != nil || snap.Refused != nil) {
			if latest == 0 {
				return fmt.Errorf("task %s has not started: %w", o.ID, ErrNoAttempt)
			}
			return fmt.Errorf("task %s has no attempt %d (its latest is %d): %w", o.ID, o.Attempt, latest, ErrNoAttempt)
		}
		ended := snap.Result != nil || snap.Refused != nil
		if cur == 0 && latest > 0 {
			cur = latest
		}
		if cur == 0 || cur > latest {
			switch {
			case ended:
				note(fmt.Sprintf("task %s ended without running", o.ID))
				return nil
			case !o.Follow:
				note(fmt.Sprintf("task %s has not started", o.ID))
				return nil
			case !notedWait:
				notedWait = true
				note(fmt.Sprintf("task %s has not started; waiting", o.ID))
			}
			if err := sleep(ctx, interval); err != nil {
				return err
			}
			continue
		}
		res, err := attemptRecord(ctx, be, o.ID, cur, snap)
		if err != nil {
			return err
		}
		if res != nil {
			if err := printRest(ctx, be, res.Stdout, &printed[0], o.Stdout); err != nil {
				return err
			}
			if err := printRest(ctx, be, res.Stderr, &printed[1], o.Stderr); err != nil {
				return err
			}
			if res.Error != "" && res.Stdout.Size == 0 && res.Stderr.Size == 0 {
				// The command never ran (not found, not allowed, its
				// directory missing): say why, as result does.
				note(fmt.Sprintf("task %s: %s", o.ID, res.Error))
			}
			if !o.Follow || o.Attempt > 0 || ended {
				return nil
			}
		} else if err := printLive(ctx, be, o, cur, &printed, note); err != nil {
			return err
		}
		if !o.Follow {
			return nil
		}
		if o.Attempt == 0 && latest > cur {
			// A retry (or, for a lost attempt, the next one) began.
			cur, printed = latest, [2]int64{}
			note(fmt.Sprintf("attempt %d of task %s started", cur, o.ID))
			continue
		}
		if err := sleep(ctx, interval); err != nil {
			return err
		}
	}
}

// attemptRecord is the record of attempt n once it has ended; nil while it
// runs (or when its worker died without one).
func attemptRecord(ctx context.Context, be *backend.Backend, id string, n int, snap *lifecycle.Snapshot) (*plan.Result, error) {
	if snap.Result != nil && snap.Result.Attempt == n {
		return snap.Result, nil
	}
	if !slices.Contains(snap.Attempts, n) {
		return nil, nil
	}
	r, err := be.Store.GetAttempt(ctx, id, n)
	if errors.Is(err, plan.ErrTaskNotFound) {
		return nil, nil
	}
	return r, err
}

// printLive prints what is new in attempt n's live tail.
func printLive(ctx context.Context, be *backend.Backend, o LogsOptions, n int, printed *[2]int64, note func(string)) error {
	l, err := be.Store.GetLive(ctx, o.ID, n)
	if errors.Is(err, s3results.ErrNoObject) {
		return nil // no output yet, or not stored yet
	}
	if err != nil {
		return err
	}
	for i, s := range []struct {
		name string
		l    s3results.LiveStream
		w    io.Writer
	}{{"stdout", l.Stdout, o.Stdout}, {"stderr", l.Stderr, o.Stderr}} {
		if s.l.End() <= printed[i] {
			continue
		}
		from := printed[i] - s.l.Offset
		if from < 0 {
			note(fmt.Sprintf("%d bytes of %s not shown (taskiq-go result prints all of it)", -from, s.name))
			from = 0
		}
		if _, err := s.w.Write(s.l.Data[from:]); err != nil {
			return err
		}
		printed[i] = s.l.End()
	}
	return nil
}

// printRest prints a stored stream from byte *from on, and moves *from to
// its end.
func printRest(ctx context.Context, be *backend.Backend, o plan.Output, from *int64, w io.Writer) error {
	defer func() { *from = max(*from, o.Size) }()
	if *from >= o.Size {
		return nil
	}
	if o.Key == "" {
		if o.Data == "" {
			// The full stream was lost: only its tail is kept.
			_, err := io.WriteString(w, o.Tail)
			return err
		}
		_, err := io.Copy(w, strings.NewReader(o.Data[min(*from, int64(len(o.Data))):]))
		return err
	}
	body, err := be.Store.OpenLog(ctx, o.Key)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.CopyN(io.Discard, body, *from); err != nil {
		return err
	}
	_, err = io.Copy(w, body)
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ErrInterrupted
	case <-t.C:
		return nil
	}
}
