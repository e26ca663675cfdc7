package s3results

import (
	"fmt"
	"path"
	"strings"
)

// Keys is the S3 key layout, and the only place that knows it. Every key of
// a task lives under one per-task prefix, so that one LIST tells what exists
// for it; a group keeps a marker per member, so that one LIST names all the
// tasks of a run, and an end key per member that ended, whose name says
// how (groups.go), so that one LIST page tells the states of a thousand.
//
//	PREFIX/tasks/ID/task.json              the task as submitted (and the claim-check payload); none
//	                                       for a generated id inline in its message: its index chunk has it
//	PREFIX/tasks/ID/running/N.json         attempt N's running marker, rewritten on each heartbeat
//	PREFIX/tasks/ID/cancel.json            the cancel marker
//	PREFIX/tasks/ID/deadletter.json        why a worker refused the task's message
//	PREFIX/tasks/ID/result.json            the final result, written once
//	PREFIX/tasks/ID/claims/N               who took attempt N (written once)
//	PREFIX/tasks/ID/attempts/N.json        the result of each attempt
//	PREFIX/tasks/ID/logs/N/stdout|stderr   full output of attempt N when not inline
//	PREFIX/tasks/ID/logs/N/live            the tail of attempt N's output while it runs (live.go)
//	PREFIX/index/INVERTED-TIME-NONCE-CHUNK.json  the tasks of one submit call, newest first (index.go)
//	PREFIX/cancels/INVERTED-TIME-ID        a cancel requested, for workers to LIST (cancels.go)
//	PREFIX/groups/GROUP/ID                 group membership
//	PREFIX/group-ends/GROUP/ID/1,FIELDS    how a member ended: state, exit code, attempt... (groups.go)
//	PREFIX/workers/WORKER.json             worker heartbeats
//	PREFIX/worker-stops/WORKER.json        a request that the worker shut down gracefully
type Keys struct {
	Prefix string
}

func (k Keys) join(parts ...string) string {
	p := path.Join(parts...)
	if k.Prefix == "" {
		return p
	}
	return strings.TrimSuffix(k.Prefix, "/") + "/" + p
}

// Root is the prefix every key lives under ("PREFIX/", or "" for none): the
// scope of the IAM policy and of the expiry rule.
func (k Keys) Root() string {
	if k.Prefix == "" {
		return ""
	}
	return strings.TrimSuffix(k.Prefix, "/") + "/"
}

// TaskDir is the prefix under which every object of task id lives.
func (k Keys) TaskDir(id string) string { return k.join("tasks", id) + "/" }

// Task is the submitted task record.
func (k Keys) Task(id string) string { return k.join("tasks", id, "task.json") }

// Running is the running marker of one attempt: each attempt has its own,
// so that a stale attempt can never touch the live one's.
func (k Keys) Running(id string, attempt int) string {
	return k.join("tasks", id, "running", fmt.Sprintf("%04d.json", attempt))
}

// RunningDir is the prefix holding all running markers of a task.
func (k Keys) RunningDir(id string) string { return k.join("tasks", id, "running") + "/" }

// AttemptDir is the prefix holding all attempt records of a task.
func (k Keys) AttemptDir(id string) string { return k.join("tasks", id, "attempts") + "/" }

// Cancel is the cancel marker.
func (k Keys) Cancel(id string) string { return k.join("tasks", id, "cancel.json") }

// DeadLetter records why a worker moved the task's message to the
// dead-letter queue without running it.
func (k Keys) DeadLetter(id string) string { return k.join("tasks", id, "deadletter.json") }

// Result is the final result record.
func (k Keys) Result(id string) string { return k.join("tasks", id, "result.json") }

// Claim is the record of which worker took an attempt.
func (k Keys) Claim(id string, attempt int) string {
	return k.join("tasks", id, "claims", fmt.Sprintf("%04d", attempt))
}

// ClaimDir is the prefix holding all claims of a task.
func (k Keys) ClaimDir(id string) string { return k.join("tasks", id, "claims") + "/" }

// Attempt is the result record of one attempt.
func (k Keys) Attempt(id string, attempt int) string {
	return k.join("tasks", id, "attempts", fmt.Sprintf("%04d.json", attempt))
}

// Log is the full output of one stream ("stdout" or "stderr") of an attempt.
func (k Keys) Log(id string, attempt int, stream string) string {
	return k.join("tasks", id, "logs", fmt.Sprintf("%04d", attempt), stream)
}

// GroupDir is the prefix listing a group's members.
func (k Keys) GroupDir(group string) string { return k.join("groups", group) + "/" }

// GroupMember marks id as a member of group.
func (k Keys) GroupMember(group, id string) string { return k.join("groups", group, id) }

// Worker is a worker's heartbeat record.
func (k Keys) Worker(workerID string) string { return k.join("workers", workerID+".json") }

// WorkerDir is the prefix holding every worker's heartbeat.
func (k Keys) WorkerDir() string { return k.join("workers") + "/" }

// WorkerStop is the request that a worker shut down gracefully, which the
// worker looks for at each heartbeat. It lives outside WorkerDir so that
// listing heartbeats never reads it.
func (k Keys) WorkerStop(workerID string) string { return k.join("worker-stops", workerID+".json") }

// Key patterns (IAM resource globs, "*" for an id, a group or a worker) of
// what each role writes, so that the IAM policy follows the layout above:
// a submitter's credential cannot write a result or a running marker, and a
// worker's cannot write a task record, a group or a cancel marker.
func (k Keys) patterns(parts ...string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = k.Root() + p
	}
	return out
}

// SubmitterPuts are the keys submit and cancel write: task records, group
// membership, the history index, cancel markers and notices, and the claim
// cancel takes of an attempt no worker holds (so that none may start it).
func (k Keys) SubmitterPuts() []string {
	return k.patterns("tasks/*/task.json", "groups/*", "index/*", "tasks/*/cancel.json", "cancels/*", "tasks/*/claims/*")
}

// SubmitterDeletes are the keys submit withdraws after a failed call:
// records, memberships and the call's history index objects.
func (k Keys) SubmitterDeletes() []string {
	return k.patterns("tasks/*/task.json", "groups/*", "index/*")
}

// WorkerPuts are the keys a worker writes while it runs attempts: with a
// final result, its group's end key.
func (k Keys) WorkerPuts() []string {
	return k.patterns("tasks/*/claims/*", "tasks/*/running/*", "tasks/*/attempts/*", "tasks/*/result.json",
		"tasks/*/logs/*", "tasks/*/deadletter.json", "group-ends/*", "workers/*")
}

// WorkerDeletes are the keys a worker removes: its markers and claims
// given back, its heartbeat record and a stop request it obeyed.
func (k Keys) WorkerDeletes() []string {
	return k.patterns("tasks/*/claims/*", "tasks/*/running/*", "workers/*", "worker-stops/*")
}
