package plan

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is where a task is in its life. The final states are those for which
// Final reports true; a task in a final state has exactly one Result.
type State string

// The states a task can be in.
const (
	StateQueued    State = "queued"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
	StateTimedOut  State = "timed_out"
	// StateLost is a task whose worker stopped heartbeating while it ran; it
	// runs again once its lease runs out and another worker takes it.
	StateLost State = "lost"
	// StateDeadLetter is a task whose message is in the dead-letter queue:
	// a worker refused to run it (its signature did not hold, or its
	// message could not be read), or SQS moved it there after too many
	// receives and a worker's check of that queue found it. `dlq list`
	// shows why, `dlq redrive` puts it back (and the task is queued again).
	StateDeadLetter State = "dead_letter"
)

// Final reports whether no more change can happen to a task in state s.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateCancelled, StateTimedOut, StateDeadLetter:
		return true
	}
	return false
}

// WorkerInfo identifies the worker process that ran an attempt.
type WorkerInfo struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	ID   string `json:"id"`
}

// String formats the worker as host/id, the form logs and tables use.
func (w WorkerInfo) String() string {
	if w.ID == "" {
		return ""
	}
	return fmt.Sprintf("%s/%s", w.Host, w.ID)
}

// Output is one captured stream. Data holds it inline when it is small and
// valid UTF-8; otherwise Key names the S3 object that holds all of it, so the
// bytes come back exactly as the command wrote them.
type Output struct {
	Size int64  `json:"size"`
	Data string `json:"data,omitempty"`
	Key  string `json:"key,omitempty"`
	// Tail is the last few KiB, kept inline for error messages even when the
	// whole stream lives under Key.
	Tail string `json:"tail,omitempty"`
}

// Result is how one attempt of a task ended. The final result of a task is
// written once and never overwritten; results of earlier attempts are kept
// beside it.
type Result struct {
	V        int               `json:"v"`
	ID       string            `json:"id"`
	State    State             `json:"state"`
	ExitCode *int              `json:"exit_code"`
	Signal   string            `json:"signal,omitempty"`
	Attempt  int               `json:"attempt"`
	Worker   WorkerInfo        `json:"worker"`
	Group    string            `json:"group,omitempty"`
	Queue    string            `json:"queue,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Error says what went wrong when the worker itself could not run the
	// command (not found, over the exec limits, cancelled before it started).
	Error       string    `json:"error,omitempty"`
	SubmittedAt time.Time `json:"submitted_at,omitzero"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	Stdout      Output    `json:"stdout"`
	Stderr      Output    `json:"stderr"`
}

// Running is the marker a worker keeps while an attempt runs: who runs it and
// when it last said so. A marker whose heartbeat is older than the stale
// threshold belongs to a worker presumed dead.
type Running struct {
	V           int        `json:"v"`
	ID          string     `json:"id"`
	Group       string     `json:"group,omitempty"`
	Attempt     int        `json:"attempt"`
	Worker      WorkerInfo `json:"worker"`
	StartedAt   time.Time  `json:"started_at"`
	HeartbeatAt time.Time  `json:"heartbeat_at"`
	// LeaseUntil is when the queue's visibility timeout runs out unless it is
	// extended again.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// HeartbeatEvery is how often the worker refreshes this marker, so that
	// readers can tell a stale marker without knowing the worker's settings.
	HeartbeatEvery Duration `json:"heartbeat_every"`
}

// StaleAfter is how old a running marker's heartbeat may get before its
// worker is presumed dead: three missed heartbeats, and never under 5 s.
func (r *Running) StaleAfter() time.Duration {
	d := 3 * r.HeartbeatEvery.Std()
	if d < 5*time.Second {
		d = 5 * time.Second
	}
	return d
}

// Cancel is the marker that asks for a task to be stopped.
type Cancel struct {
	V           int       `json:"v"`
	ID          string    `json:"id"`
	RequestedAt time.Time `json:"requested_at"`
	Reason      string    `json:"reason,omitempty"`
}

// Status is what poll reports for one task.
type Status struct {
	ID       string     `json:"id"`
	State    State      `json:"state"`
	ExitCode *int       `json:"exit_code"`
	Worker   WorkerInfo `json:"worker"`
	Attempt  int        `json:"attempt"`
	Group    string     `json:"group,omitempty"`
	Error    string     `json:"error,omitempty"`
	// HeartbeatAt is the running marker's last heartbeat, for running and
	// lost tasks.
	HeartbeatAt time.Time `json:"heartbeat_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
}

// DecodeResult reads a result record.
func DecodeResult(data []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("malformed result record: %w", err)
	}
	if r.V != Version {
		return nil, fmt.Errorf("result record has version %d; this taskiq-go speaks version %d", r.V, Version)
	}
	return &r, nil
}

// IntPtr returns a pointer to n, for ExitCode.
func IntPtr(n int) *int { return &n }
