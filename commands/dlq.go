package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// The message attributes a worker puts on a message it dead-letters.
const (
	attrReason      = "taskiq_reason"
	attrSourceQueue = "taskiq_source_queue"
	attrMessageID   = "taskiq_message_id"
	attrWorker      = "taskiq_worker"
)

// reasonRedrive is the reason of a message that carries none: SQS moved it
// after maxReceiveCount receives (or something else put it there).
const reasonRedrive = "exceeded maxReceiveCount"

const (
	// DefaultDLQMax bounds how many messages one dlq command looks at.
	DefaultDLQMax = 100
	// dlqHide is how long dlq keeps the messages it looked at hidden. It
	// releases them at once when done; the timeout only matters when the
	// command is killed first.
	dlqHide = 30 * time.Second
	// dlqWait is the long poll of each receive, so that an empty answer
	// means an empty queue and not one SQS server's sample of it.
	dlqWait = time.Second
	// excerptLen is the length of the body excerpt in plain output.
	excerptLen = 60
)

func dlqCommand() *cli.Command {
	subUsage := func(_ *cli.Context, err error, _ bool) error { return &usageError{err.Error()} }
	maxFlag := &cli.IntFlag{Name: "max", Value: DefaultDLQMax, Usage: "look at `N` messages at most"}
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print one JSON object per message"}
	return &cli.Command{
		Name:      "dlq",
		Usage:     "list dead letters and put them back on their queues",
		ArgsUsage: "list | redrive",
		Description: "A message lands in the dead-letter queue when a worker cannot decode it (the worker adds\n" +
			"the reason, its source queue and the worker) or when SQS received it --max-receive-count times\n" +
			"without a worker finishing it.",
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("unknown dlq command %q (list, redrive)", cliContext.Args().First())
			}
			return usagef("dlq needs a command: list or redrive (see taskiq-go dlq --help)")
		},
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "show the dead letters without taking them off the queue",
				Description: "Prints one line per message: message id, task id (- when the body has none), when it\n" +
					"was first sent, its source queue, the reason it landed here, and the start of its body.\n" +
					"Messages are hidden while they are read and made visible again at once.",
				Flags:        append(withConn(maxFlag, jsonFlag), logFlags()...),
				OnUsageError: subUsage,
				Action: func(cliContext *cli.Context) error {
					if cliContext.Args().Present() {
						return usagef("dlq list takes no arguments")
					}
					s, be, err := openDLQ(cliContext)
					if err != nil {
						return err
					}
					ctx, _, stop := commandContext(cliContext)
					defer stop()
					dls, err := DLQList(ctx, s, be, cliContext.Int("max"))
					out := cliContext.App.Writer
					var t *table
					if !cliContext.Bool("json") {
						t = newTable(out, "MESSAGE", "TASK", "SENT", "SOURCE", "REASON", "BODY")
					}
					for _, d := range dls {
						if t == nil {
							_ = writeJSON(out, d)
							continue
						}
						t.row(d.MessageID, d.taskColumn(), d.sent(), d.sourceName(), oneLine(d.Reason), excerpt(d.Body))
					}
					if t != nil {
						t.flush()
					}
					if err == nil {
						noteDLQ(cliContext.App.ErrWriter, len(dls), cliContext.Int("max"))
					}
					return err
				},
			},
			{
				Name:      "redrive",
				Usage:     "put dead letters back on their queues",
				ArgsUsage: "[ID...]",
				Description: "Moves every dead letter, or those whose message id or task id is given, back to the queue\n" +
					"it came from (its source queue; else the queue its task names; else the default queue), or\n" +
					"to logical queue --to NAME, always to the queue's inbox. The body is sent\n" +
					"again unchanged and the dead letter deleted. An ID matching no message is an error (exit 67)\n" +
					"once the others are moved.",
				Flags: append(withConn(maxFlag, jsonFlag,
					&cli.StringFlag{Name: "to", Usage: "send to logical queue `NAME` instead"},
				), logFlags()...),
				OnUsageError: subUsage,
				Action: func(cliContext *cli.Context) error {
					ids := cliContext.Args().Slice()
					s, be, err := openDLQ(cliContext)
					if err != nil {
						return err
					}
					to := cliContext.String("to")
					if to != "" {
						if _, err := s.QueueURLFor(to); err != nil {
							return err
						}
					}
					ctx, _, stop := commandContext(cliContext)
					defer stop()
					moved, err := DLQRedrive(ctx, s, be, ids, to, cliContext.Int("max"))
					out := cliContext.App.Writer
					if cliContext.Bool("json") {
						for _, m := range moved {
							_ = writeJSON(out, m)
						}
					} else {
						t := newTable(out, "OUTCOME", "MESSAGE", "TASK", "TO")
						for _, m := range moved {
							t.row("moved", m.MessageID, m.TaskID, m.To)
						}
						t.flush()
					}
					if err == nil && len(ids) == 0 {
						noteDLQ(cliContext.App.ErrWriter, len(moved), cliContext.Int("max"))
					}
					return err
				},
			},
		},
	}
}

func openDLQ(cliContext *cli.Context) (*Settings, *backend.Backend, error) {
	s, err := resolveSettings(cliContext)
	if err != nil {
		return nil, nil, err
	}
	if s.DeadLetterURL == "" {
		return nil, nil, missing("queue URL", flagQueueURL, "TASKIQ_GO_QUEUE_URL", "queue_url")
	}
	if cliContext.Int("max") < 1 {
		return nil, nil, usagef("--max must be 1 or more")
	}
	be, err := s.open(cliContext.Context, 0)
	if err != nil {
		return nil, nil, err
	}
	return s, be, nil
}

// noteDLQ tells a person at the terminal about an empty queue, or that there
// may be more than --max messages.
func noteDLQ(w io.Writer, n, max int) {
	switch {
	case n == 0:
		fmt.Fprintln(w, "taskiq-go: the dead-letter queue is empty")
	case n >= max:
		fmt.Fprintf(w, "taskiq-go: stopped at --max %d messages; there may be more\n", max)
	}
}

// DeadLetter is a message of the dead-letter queue as dlq reports it.
type DeadLetter struct {
	MessageID string `json:"message_id"`
	// TaskID is the body's "id" when the body is JSON with one.
	TaskID string `json:"task_id,omitempty"`
	// TaskIDs are the tasks of a pack (plan.AttrPack): a batch submit's
	// message of up to ten tasks, dead-lettered whole.
	TaskIDs []string `json:"task_ids,omitempty"`
	Reason  string   `json:"reason"`
	// SourceQueue is the URL of the queue it came from, or its ARN when
	// only SQS's redrive said, or "" when nothing says.
	SourceQueue string `json:"source_queue,omitempty"`
	// OriginalMessageID is its message id on the source queue, and Worker
	// the worker that moved it, when a worker did.
	OriginalMessageID string     `json:"original_message_id,omitempty"`
	Worker            string     `json:"worker,omitempty"`
	SentAt            *time.Time `json:"sent_at,omitempty"`
	ReceiveCount      int        `json:"receive_count"`
	Body              string     `json:"body"`

	msg sqs.Detailed
}

// taskColumn is what dlq list prints as the task: its id, a pack's ids
// joined by commas, or "-".
func (d *DeadLetter) taskColumn() string {
	if len(d.TaskIDs) > 0 {
		return strings.Join(d.TaskIDs, ",")
	}
	if d.TaskID == "" {
		return "-"
	}
	return d.TaskID
}

func (d *DeadLetter) sent() string {
	if d.SentAt == nil {
		return "-"
	}
	return d.SentAt.UTC().Format(time.RFC3339)
}

// sourceName is the source queue's name, from its URL or ARN.
func (d *DeadLetter) sourceName() string {
	if id, err := sqs.ParseQueueARN(d.SourceQueue); err == nil {
		return id.Name
	}
	return sqs.QueueName(d.SourceQueue)
}

// bodyTask is what dlq reads of a body it may not be able to decode as a
// task: enough to name the task and find its queue.
type bodyTask struct {
	ID       string `json:"id"`
	Queue    string `json:"queue"`
	Priority int    `json:"priority"`
}

func newDeadLetter(m sqs.Detailed) DeadLetter {
	d := DeadLetter{
		MessageID:         m.MessageID,
		Reason:            m.Attributes[attrReason],
		SourceQueue:       m.Attributes[attrSourceQueue],
		OriginalMessageID: m.Attributes[attrMessageID],
		Worker:            m.Attributes[attrWorker],
		ReceiveCount:      m.ReceiveCount,
		Body:              m.Body,
		TaskIDs:           plan.PackIDs(m.Attributes[plan.AttrPack]),
		msg:               m,
	}
	if d.Reason == "" {
		d.Reason = reasonRedrive
	}
	if d.SourceQueue == "" {
		d.SourceQueue = m.SourceQueueARN
	}
	if !m.SentAt.IsZero() {
		t := m.SentAt
		d.SentAt = &t
	}
	var bt bodyTask
	if json.Unmarshal([]byte(m.Body), &bt) == nil && plan.ValidName(bt.ID) == nil {
		d.TaskID = bt.ID
	}
	if len(d.TaskIDs) == 0 {
		// A pack a worker older than packs dead-lettered without its
		// attribute.
		if pts, err := plan.DecodePack([]byte(m.Body)); err == nil {
			for _, pt := range pts {
				d.TaskIDs = append(d.TaskIDs, pt.ID)
			}
		}
	}
	return d
}

// collectDeadLetters receives up to max messages from the dead-letter queue
// and keeps them hidden, so that each receive returns new ones; the caller
// releases those it does not delete. It stops at an empty receive, or when
// a receive brings only messages already seen (their lease ran out).
func collectDeadLetters(ctx context.Context, be *backend.Backend, url string, max int) ([]DeadLetter, error) {
	var out []DeadLetter
	index := map[string]int{}
	for len(out) < max {
		msgs, err := be.Queue.ReceiveDetailed(ctx, url, min(sqs.MaxBatch, max-len(out)), dlqWait, dlqHide)
		if err != nil {
			return out, err
		}
		fresh := 0
		for _, m := range msgs {
			if i, ok := index[m.MessageID]; ok {
				// Only the newest receipt handle is sure to work.
				out[i].msg.ReceiptHandle = m.ReceiptHandle
				continue
			}
			index[m.MessageID] = len(out)
			out = append(out, newDeadLetter(m))
			fresh++
		}
		if fresh == 0 {
			break
		}
	}
	return out, nil
}

// releaseDeadLetters makes messages visible again, even when ctx is done.
func releaseDeadLetters(ctx context.Context, be *backend.Backend, url string, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	receipts := make([]string, len(dls))
	for i, d := range dls {
		receipts[i] = d.msg.ReceiptHandle
	}
	errs, err := be.Queue.SetVisibilityBatch(ctx, url, receipts, 0)
	if err != nil {
		return fmt.Errorf("cannot make the dead letters visible again (they will be after %s): %w", dlqHide, err)
	}
	return errors.Join(errs...)
}

// DLQList reads up to max messages of the dead-letter queue and leaves them
// there.
func DLQList(ctx context.Context, s *Settings, be *backend.Backend, max int) ([]DeadLetter, error) {
	dls, err := collectDeadLetters(ctx, be, s.DeadLetterURL, max)
	if rerr := releaseDeadLetters(ctx, be, s.DeadLetterURL, dls); err == nil {
		err = rerr
	}
	return dls, err
}

// Redriven is a dead letter that was put back on a queue.
type Redriven struct {
	MessageID string `json:"message_id"`
	TaskID    string `json:"task_id,omitempty"`
	// To is the queue it was sent to, and NewMessageID its id there.
	To           string `json:"to"`
	NewMessageID string `json:"new_message_id"`
}

// DLQRedrive moves the dead letters named by ids (message id, original
// message id or task id; all of them when ids is empty) back to their
// queues, or to logical queue to. Ids that match nothing are reported as
// plan.ErrTaskNotFound after the others have been moved.
func DLQRedrive(ctx context.Context, s *Settings, be *backend.Backend, ids []string, to string, max int) ([]Redriven, error) {
	dls, err := collectDeadLetters(ctx, be, s.DeadLetterURL, max)
	var moved []Redriven
	var keep []DeadLetter
	found := map[string]bool{}
	for _, d := range dls {
		if err != nil || !matchDeadLetter(d, ids, found) {
			keep = append(keep, d)
			continue
		}
		var r Redriven
		r, err = redriveOne(ctx, s, be, d, to)
		if err != nil {
			keep = append(keep, d)
			continue
		}
		moved = append(moved, r)
	}
	if rerr := releaseDeadLetters(ctx, be, s.DeadLetterURL, keep); err == nil {
		err = rerr
	}
	if err != nil {
		return moved, err
	}
	var unknown []string
	for _, id := range ids {
		if !found[id] && !slices.Contains(unknown, id) {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		where := "in the dead-letter queue"
		if len(dls) >= max {
			where = fmt.Sprintf("among the first %d dead letters (see --max)", max)
		}
		return moved, fmt.Errorf("no message or task %s %s: %w", strings.Join(unknown, ", "), where, plan.ErrTaskNotFound)
	}
	return moved, nil
}

func matchDeadLetter(d DeadLetter, ids []string, found map[string]bool) bool {
	if len(ids) == 0 {
		return true
	}
	hit := false
	for _, id := range ids {
		if id == d.MessageID || id == d.OriginalMessageID || (d.TaskID != "" && id == d.TaskID) || slices.Contains(d.TaskIDs, id) {
			found[id] = true
			hit = true
		}
	}
	return hit
}

// redriveOne sends a dead letter's body to its queue, then deletes it from
// the dead-letter queue: a failure in between leaves a copy on both, which
// a worker's claim on the task turns into one run.
func redriveOne(ctx context.Context, s *Settings, be *backend.Backend, d DeadLetter, to string) (Redriven, error) {
	target, err := redriveTarget(ctx, s, be, d, to)
	if err != nil {
		return Redriven{}, err
	}
	attrs := map[string]string{}
	for k, v := range d.msg.Attributes {
		switch k {
		case attrReason, attrSourceQueue, attrMessageID, attrWorker:
		default:
			attrs[k] = v
		}
	}
	if len(d.TaskIDs) > 0 {
		attrs[plan.AttrPack] = plan.PackAttr(d.TaskIDs) // what tells a worker it is a pack
	}
	id, err := be.Queue.Send(ctx, target, sqs.Entry{Body: d.Body, Attributes: attrs})
	if err != nil {
		return Redriven{}, err
	}
	if err := be.Queue.Delete(context.WithoutCancel(ctx), s.DeadLetterURL, d.msg.ReceiptHandle); err != nil {
		return Redriven{}, fmt.Errorf("message %s was sent to %s but stays in the dead-letter queue: %w", d.MessageID, target, err)
	}
	for _, id := range append([]string{d.TaskID}, d.TaskIDs...) {
		if id == "" {
			continue
		}
		// The task is queued again: poll stops saying dead_letter. Should
		// this fail, the record is void anyway once a worker claims the
		// task, so the move stands.
		_ = lifecycle.Redriven(context.WithoutCancel(ctx), be.Store, id)
	}
	return Redriven{MessageID: d.MessageID, TaskID: d.TaskID, To: target, NewMessageID: id}, nil
}

// redriveTarget picks the queue a dead letter goes back to, always an inbox
// (a level is read only by workers that know it has messages): --to's;
// else that of the queue the worker or SQS said it came from; else that of
// the queue its task names; else the default queue's.
func redriveTarget(ctx context.Context, s *Settings, be *backend.Backend, d DeadLetter, to string) (string, error) {
	var bt bodyTask
	decoded := json.Unmarshal([]byte(d.Body), &bt) == nil
	if to != "" {
		return s.InboxURL(to)
	}
	if u := d.msg.Attributes[attrSourceQueue]; u != "" {
		return plan.InboxOf(u), nil
	}
	if a := d.msg.SourceQueueARN; a != "" {
		if id, err := sqs.ParseQueueARN(a); err == nil {
			u, err := be.Queue.QueueURL(ctx, id.Name, id.Account)
			return plan.InboxOf(u), err
		}
	}
	if decoded && (bt.Queue == "" || plan.ValidName(bt.Queue) == nil) {
		if u, err := s.InboxURL(bt.Queue); err == nil {
			return u, nil
		}
	}
	return s.QueueURLFor(plan.DefaultQueue)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// excerpt quotes the start of a body on one line.
func excerpt(body string) string {
	if len(body) <= excerptLen {
		return strconv.Quote(body)
	}
	cut := excerptLen
	for cut > 0 && !utf8.RuneStart(body[cut]) {
		cut--
	}
	return strconv.Quote(body[:cut]) + "..."
}
