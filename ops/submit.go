package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Submitted is what submit reports for one task.
type Submitted struct {
	ID    string `json:"id"`
	Queue string `json:"queue"`
	Group string `json:"group,omitempty"`
	// Created is false when a task with this id had been submitted before.
	Created bool `json:"created"`
}

// SubmitOptions are the parsed tasks and where they go.
type SubmitOptions struct {
	Tasks []*plan.Task
	// InboxURL is the SQS queue a logical queue's tasks are sent to.
	InboxURL func(queue string) (string, error)
	Now      time.Time
	// Signer, when set, signs every task before it is recorded and sent.
	Signer *plan.SigningKey
	// Packs sends what goes straight to a level in packs of up to ten
	// tasks a message (ops/pack.go). Off by default until every worker
	// of a deployment knows packs: an older worker dead-letters them.
	Packs bool
}

// PartialError says that a batch submit stopped part way: Sent of Total
// tasks were sent (Submit reports their ids), the rest were not and have
// no record left that says they are queued.
type PartialError struct {
	Sent, Total int
	Err         error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("only %d of %d tasks were sent (their ids are printed): %v", e.Sent, e.Total, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// Submit records and queues tasks: each task's record is written to the
// store first (lifecycle.Record: a resubmitted identical task is a no-op, a
// different one under the same id is refused before anything is sent),
// then its message is sent, in batches per queue: to the inbox, or, for a
// level that gets ten or more of the batch, straight to the level with a
// hint in the inbox (route.go says why). A task too large for a
// message travels as a pointer to its record. The returned slice has the id
// set for every task that was sent (or needed no message); when some were
// sent and others not, the error is a *PartialError.
func Submit(ctx context.Context, be *backend.Backend, o SubmitOptions) ([]Submitted, error) {
	tasks := o.Tasks
	out := make([]Submitted, len(tasks))
	byQueue := map[string][]pending{}
	var order []string
	// Generated ids first: each names where its record is (layOut).
	ci, err := layOut(tasks, o.Now, o.Signer)
	if err != nil {
		return nil, err
	}
	pointers := make([]bool, len(tasks))
	for i, t := range tasks {
		if t.ID == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("generate task id: %w", err)
			}
			t.ID = id.String()
		}
		t.SubmittedAt = o.Now.UTC()
		if o.Signer != nil {
			// Last, over the finished task: record and message carry it.
			if err := o.Signer.Sign(t); err != nil {
				return nil, fmt.Errorf("sign task %s: %w", t.ID, err)
			}
		}
		u, err := o.InboxURL(t.Queue)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("encode task %s: %w", t.ID, err)
		}
		pointer := len(body) > sqs.MaxBodyBytes
		pointers[i] = pointer
		if pointer {
			body, _ = json.Marshal(plan.Pointer{V: plan.Version, ID: t.ID, Ref: be.Store.Keys().Task(t.ID)})
		}
		if _, ok := byQueue[u]; !ok {
			order = append(order, u)
		}
		byQueue[u] = append(byQueue[u], pending{i, sqs.Entry{Body: string(body), Attributes: map[string]string{"taskiq_id": t.ID, plan.AttrPriority: strconv.Itoa(t.Priority)}}, pointer, t.Priority})
		out[i] = Submitted{Queue: t.Queue, Group: t.Group}
	}
	// Records first, several at once: a message must never point at a
	// record that is not there yet.
	// The history index is written beside them: one round trip, not two.
	send := make([]bool, len(tasks))
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	var indexed []int
	var indexErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		indexed, indexErr = writeIndex(ctx, be, tasks, ci)
	}()
	sem := make(chan struct{}, 16)
	for i, t := range tasks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			record := lifecycle.Record
			if ci.indexed[i] && !pointers[i] {
				record = lifecycle.RecordIndexed // its index chunk is its record
			}
			send[i], out[i].Created, errs[i] = record(ctx, be.Store, t)
		}()
	}
	wg.Wait()
	err = firstErr(errs)
	if err == nil {
		err = indexErr
	}
	if err != nil {
		// Nothing is sent; records this call created are withdrawn, so
		// that none of them looks queued, and so is its history.
		for i, t := range tasks {
			if out[i].Created {
				_ = be.Store.Withdraw(context.WithoutCancel(ctx), t)
			}
		}
		withdrawIndex(context.WithoutCancel(ctx), be, ci, indexed)
		return nil, err
	}
	// A task is reported (its ID set) once its message is sent, or when it
	// needed none; a task whose message did not go out has its records
	// withdrawn, so that it does not look queued for ever. When a whole
	// call failed its outcome is unknown: its tasks are withdrawn too
	// (if the messages did go out, they still run and record a result),
	// except those carried as a pointer, whose record is the payload.
	var sendErr error
	withdrawn := make([]bool, len(tasks))
	withdraw := func(p pending, certain bool) {
		if out[p.i].Created && (certain || !p.pointer) {
			_ = be.Store.Withdraw(context.WithoutCancel(ctx), tasks[p.i])
			withdrawn[p.i] = true
		}
	}
	for i, t := range tasks {
		if !send[i] {
			out[i].ID = t.ID
		}
	}
	var hints []levelHint
	for _, u := range order {
		var batch []pending
		for _, p := range byQueue[u] {
			if send[p.i] {
				batch = append(batch, p)
			}
		}
		// Levels first, then the inbox: a hint goes out after the
		// messages it tells of.
		for _, r := range route(u, batch) {
			sent, early := 0, false
			units := r.units(o.Packs)
			for len(units) > 0 {
				n := min(len(units), sqs.MaxBatch)
				chunk := units[:n]
				units = units[n:]
				if sendErr != nil {
					for _, c := range chunk {
						for _, p := range c.items {
							withdraw(p, true)
						}
					}
					continue
				}
				items, ok, failed, err := sendUnits(ctx, be.Queue, r.url, chunk)
				toLevel := r.level != ""
				if toLevel && (errors.Is(err, plan.ErrQueueNotFound) || errors.Is(err, plan.ErrAccessDenied)) {
					toLevel = false // no hint for what went to the inbox
					// A deployment whose levels were never created, or
					// whose submit role may send to its inboxes only (a
					// policy from before submits reached the levels): the
					// inbox takes them, one message each, and its workers
					// sort them.
					items, ok, failed, err = sendSingles(ctx, be.Queue, u, items)
				}
				for k, p := range items {
					switch {
					case ok[k]:
						out[p.i].ID = tasks[p.i].ID // sent by a call that succeeded
						if toLevel {
							sent++
						}
					case err == nil || errors.Is(err, plan.ErrQueueNotFound):
						withdraw(p, true)
					default:
						withdraw(p, false)
					}
				}
				if err == nil {
					err = firstErr(failed)
				}
				sendErr = err
				if toLevel && sent > 0 && !early && len(units) > 0 && sendErr == nil {
					// More to send to this level: a first hint goes now,
					// so that an idle worker starts on the level while the
					// rest is sent (on moto, where each send costs more
					// the deeper the queue, sending 300 tasks took 3 s
					// with the worker idle). The hints after the last send
					// still go: a worker that emptied the level before
					// then went back to its long poll.
					early = true
					sendHints(ctx, be.Queue, []levelHint{{inbox: u, level: r.level, sent: 1}})
				}
			}
			if r.level != "" && sent > 0 {
				// Even when the batch failed part way: what went must not
				// wait for a sweep.
				hints = append(hints, levelHint{inbox: u, level: r.level, sent: sent})
			}
		}
	}
	sendHints(ctx, be.Queue, hints)
	if sendErr != nil {
		// The index chunks are the records of generated ids: rewritten
		// without the tasks withdrawn, they no longer say those are queued.
		unindex(context.WithoutCancel(ctx), be, tasks, ci, withdrawn)
		sent := 0
		for _, s := range out {
			if s.ID != "" {
				sent++
			}
		}
		if sent > 0 {
			return out, &PartialError{Sent: sent, Total: len(tasks), Err: sendErr}
		}
		return out, sendErr
	}
	return out, nil
}
