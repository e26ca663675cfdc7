package commands

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A check that hangs (a store that stops answering; the SDK sets no
// deadline of its own) cannot carry a wait past its timeout: the check's
// context ends with the timeout and the wait says it timed out.
func TestWaitUntilKeepsTheTimeoutThroughAHangingCheck(t *testing.T) {
	calls := 0
	check := func(ctx context.Context) (bool, error) {
		calls++
		if calls == 1 {
			return false, nil
		}
		<-ctx.Done()
		return false, ctx.Err()
	}
	start := time.Now()
	err := waitUntil(context.Background(), 300*time.Millisecond, 10*time.Millisecond, check)
	if !errors.Is(err, errWaitTimeout) {
		t.Fatalf("err = %v, want the wait timeout", err)
	}
	if d := time.Since(start); d > 300*time.Millisecond+time.Second {
		t.Fatalf("returned after %s, timeout 300ms", d)
	}
}

// Interrupting the wait still reads as an interruption, not a timeout.
func TestWaitUntilInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	check := func(ctx context.Context) (bool, error) { cancel(); <-ctx.Done(); return false, ctx.Err() }
	if err := waitUntil(ctx, time.Minute, 10*time.Millisecond, check); !errors.Is(err, errInterrupted) {
		t.Fatalf("err = %v, want interrupted", err)
	}
}
