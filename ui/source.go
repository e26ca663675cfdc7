package ui

import (
	"context"
	"errors"
	"time"
)

// Source is everything the dashboard reads and does. It is the dashboard's
// own seam: the commands package implements it over the same functions the
// CLI uses, and the handler tests implement it in memory. No AWS type
// crosses it.
type Source interface {
	// Queues reports the depth of the inbox and every level of every logical
	// queue, and of the dead-letter queue (Name "dead-letter", no Band).
	Queues(ctx context.Context) ([]QueueDepth, error)
	// Workers reports every worker's last heartbeat, newest first.
	Workers(ctx context.Context) ([]Worker, error)
	// GroupTasks reports every task of a group; ErrNotFound when the group
	// has no tasks.
	GroupTasks(ctx context.Context, group string) ([]TaskRow, error)
	// Groups lists up to max group names (in name order: the store keeps
	// no time order of groups), and whether there are more.
	Groups(ctx context.Context, max int) ([]string, bool, error)
	// Recent reports the newest tasks of the history, newest first, up
	// to q.Limit, with q's labels and submitted at or after q.Since.
	Recent(ctx context.Context, q HistoryQuery) ([]TaskRow, error)
	// Tasks reports the named tasks; unknown ids are left out.
	Tasks(ctx context.Context, ids []string) ([]TaskRow, error)
	// Task reports one task with every attempt and its stored output;
	// ErrNotFound when there is no such task.
	Task(ctx context.Context, id string) (*TaskDetail, error)
	// DeadLetters reports the messages of the dead-letter queue, leaving
	// them there.
	DeadLetters(ctx context.Context) ([]DeadLetter, error)
	// Cancel asks for the named tasks, or every task of group, to stop.
	Cancel(ctx context.Context, ids []string, group string) ([]Outcome, error)
	// Redrive puts the named dead letters (message or task ids) back on
	// their queues.
	Redrive(ctx context.Context, ids []string) ([]Outcome, error)
}

// ErrNotFound is what a Source returns (wrapped) for a task or group that
// does not exist; the handlers answer it with 404.
var ErrNotFound = errors.New("not found")

// QueueDepth is one SQS queue behind a logical queue and band.
type QueueDepth struct {
	Name     string `json:"name"`
	Band     string `json:"band,omitempty"`
	Visible  int    `json:"visible"`
	InFlight int    `json:"in_flight"`
	Delayed  int    `json:"delayed"`
}

// Worker is a worker's heartbeat record.
type Worker struct {
	ID          string    `json:"id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Version     string    `json:"version"`
	Queues      []string  `json:"queues"`
	Slots       int       `json:"slots"`
	Running     []string  `json:"running"`
	Finished    int       `json:"finished"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// AgeSeconds is how old the heartbeat was when it was read.
	AgeSeconds float64 `json:"age_seconds"`
	Stale      bool    `json:"stale"`
}

// HistoryQuery filters the history Recent reads.
type HistoryQuery struct {
	Labels map[string]string
	Since  time.Time
	Limit  int
}

// TaskRow is one task in a list.
type TaskRow struct {
	ID          string            `json:"id"`
	Group       string            `json:"group,omitempty"`
	Queue       string            `json:"queue,omitempty"`
	State       string            `json:"state"`
	ExitCode    *int              `json:"exit_code"`
	Attempt     int               `json:"attempt"`
	Worker      string            `json:"worker,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Error       string            `json:"error,omitempty"`
	SubmittedAt time.Time         `json:"submitted_at,omitzero"`
	FinishedAt  time.Time         `json:"finished_at,omitzero"`
}

// TaskDetail is a task's page: what it runs and how each attempt went.
type TaskDetail struct {
	TaskRow
	Argv []string `json:"argv"`
	// EnvNames are the names of the variables the task sets; their values
	// are never shown (they may be secrets).
	EnvNames    []string  `json:"env_names"`
	Dir         string    `json:"dir,omitempty"`
	Priority    int       `json:"priority"`
	Timeout     string    `json:"timeout,omitempty"`
	MaxAttempts int       `json:"max_attempts"`
	Cancel      bool      `json:"cancel_requested"`
	Attempts    []Attempt `json:"attempts"`
}

// Attempt is one run of a task's command.
type Attempt struct {
	N           int       `json:"n"`
	State       string    `json:"state"`
	Worker      string    `json:"worker,omitempty"`
	ExitCode    *int      `json:"exit_code"`
	Signal      string    `json:"signal,omitempty"`
	Error       string    `json:"error,omitempty"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	HeartbeatAt time.Time `json:"heartbeat_at,omitzero"`
	Stdout      Stream    `json:"stdout"`
	Stderr      Stream    `json:"stderr"`
}

// Stream is what is stored of one output stream of an attempt.
type Stream struct {
	// Stored is false while nothing of the stream has been stored yet
	// (the attempt runs and its output is kept by the worker).
	Stored bool   `json:"stored"`
	Size   int64  `json:"size"`
	Text   string `json:"text"`
	// Truncated says Text is only part of the stream (its start or tail).
	Truncated bool `json:"truncated,omitempty"`
	// Live says Text is the tail the worker stored while the attempt runs
	// (Size is how much the command has printed so far).
	Live bool `json:"live,omitempty"`
}

// DeadLetter is a message of the dead-letter queue.
type DeadLetter struct {
	MessageID    string     `json:"message_id"`
	TaskID       string     `json:"task_id,omitempty"`
	Reason       string     `json:"reason"`
	SourceQueue  string     `json:"source_queue,omitempty"`
	Worker       string     `json:"worker,omitempty"`
	SentAt       *time.Time `json:"sent_at,omitempty"`
	ReceiveCount int        `json:"receive_count"`
	Body         string     `json:"body"`
}

// Outcome is what an action did to one task or message.
type Outcome struct {
	ID      string `json:"id"`
	Outcome string `json:"outcome"`
}
