package commands

import (
	"bytes"
	"io"
	"testing"

	"github.com/taskiq-go/taskiq-go/plan"
)

func TestSummary(t *testing.T) {
	sts := []plan.Status{
		{State: plan.StateQueued}, {State: plan.StateRunning}, {State: plan.StateSucceeded},
		{State: plan.StateSucceeded}, {State: plan.StateFailed}, {State: plan.StateLost},
	}
	want := "2 succeeded, 1 failed, 1 running, 1 lost, 1 queued (6 tasks)"
	if got := summary(sts); got != want {
		t.Fatalf("summary = %q, want %q", got, want)
	}
}

// On a terminal the line is redrawn in place and wiped at the end; anywhere
// else nothing is written.
func TestProgressOnlyOnTerminal(t *testing.T) {
	old := isTerminal
	defer func() { isTerminal = old }()

	var buf bytes.Buffer
	isTerminal = func(io.Writer) bool { return false }
	p := newProgress(&buf, true)
	p.show("1 running (1 tasks)")
	p.clear()
	if buf.Len() != 0 {
		t.Fatalf("wrote %q to a non-terminal", buf.String())
	}

	isTerminal = func(io.Writer) bool { return true }
	p = newProgress(&buf, true)
	p.show("2 running (2 tasks)")
	p.show("1 succeeded (2 tasks)")
	p.clear()
	want := "\r2 running (2 tasks)\r1 succeeded (2 tasks)\r                     \r"
	if buf.String() != want {
		t.Fatalf("terminal output %q, want %q", buf.String(), want)
	}

	buf.Reset()
	p = newProgress(&buf, false) // without --wait there is nothing to show
	p.show("x")
	if buf.Len() != 0 {
		t.Fatalf("wrote %q without --wait", buf.String())
	}
}
