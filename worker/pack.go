package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Packs (plan.AttrPack): a batch submit sends a level's tasks ten to a
// message. The worker takes a received pack apart at its queue seam, so
// that everything above it (claim, hold, heartbeat, retry, give-back,
// dead-letter) deals with each task as the message of its own it would
// otherwise have been:
//
//   - each task of a pack is handed up as a message of the pack's queue
//     whose receipt handle names the pack and the task (packReceipt);
//     more tasks than free slots are held, as a read-ahead holds;
//   - extending such a message's lease extends the pack's;
//   - deleting it ends the task in the pack, and the pack is deleted once
//     every task in it has ended;
//   - making it visible again (a give-back, a release, a retry that could
//     not be renewed) hands the task on: it is sent to the pack's queue as
//     a single message, visible after the same delay, and ends in the pack;
//   - a pack delivered a second time (its worker died, froze or was cut
//     off) is unpacked at once: every task is sent as a single message and
//     the pack deleted, so that every rule of single messages applies and a
//     pack never climbs towards the dead-letter queue; the claim makes the
//     copies of tasks that ran already harmless;
//   - a pack whose body cannot be decoded is handed up as it is, and its
//     handler dead-letters it whole.
//
// Everything else goes through unchanged.
type packQueue struct {
	Queue
	log zerolog.Logger
	// serves are the queues whose packs are opened: those the worker
	// takes tasks from, not the dead-letter queue it only reads.
	serves map[string]bool

	mu    sync.Mutex
	seq   uint64
	packs map[uint64]*openPack
	// handedOn are the queues tasks were handed on to as single messages
	// since the fetch loop last looked (takeHandedOn): a level the worker
	// found empty may hold them now.
	handedOn map[string]bool
	// perMessage is, per queue, how many tasks a message held at its last
	// receive that gave any: a receive asks for as many messages as give
	// the tasks asked for.
	perMessage map[string]int
}

// openPack is a pack received and not yet deleted.
type openPack struct {
	url, receipt, messageID string
	tasks                   []plan.PackedTask
	ended                   []bool
	left                    int
}

// packReceiptPrefix starts the receipt handles made up for the tasks of a
// pack; SQS's own never hold a NUL.
const packReceiptPrefix = "\x00pack/"

func newPackQueue(q Queue, log zerolog.Logger, serves []QueueRef) *packQueue {
	p := &packQueue{Queue: q, log: log, serves: map[string]bool{}, handedOn: map[string]bool{}, packs: map[uint64]*openPack{}, perMessage: map[string]int{}}
	for _, s := range serves {
		p.serves[s.URL] = true
	}
	return p
}

func packReceipt(key uint64, i int) string {
	return packReceiptPrefix + strconv.FormatUint(key, 10) + "/" + strconv.Itoa(i)
}

// parsePackReceipt reads a receipt made by packReceipt.
func parsePackReceipt(r string) (key uint64, i int, ok bool) {
	rest, found := strings.CutPrefix(r, packReceiptPrefix)
	if !found {
		return 0, 0, false
	}
	k, n, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	key, err := strconv.ParseUint(k, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	i, err = strconv.Atoi(n)
	return key, i, err == nil
}

// Receive asks for as many messages as give up to n tasks (at least
// one), and opens the packs among them.
func (p *packQueue) Receive(ctx context.Context, queueURL string, n int, wait, visibility time.Duration) ([]sqs.Message, error) {
	if !p.serves[queueURL] {
		return p.Queue.Receive(ctx, queueURL, n, wait, visibility)
	}
	ask := n
	p.mu.Lock()
	k := p.perMessage[queueURL] // 0 until a receive gave messages: as asked
	p.mu.Unlock()
	if k > 1 {
		ask = max(1, (n+k-1)/k)
	}
	msgs, err := p.Queue.Receive(ctx, queueURL, ask, wait, visibility)
	if len(msgs) == 0 {
		return msgs, err
	}
	out := make([]sqs.Message, 0, len(msgs))
	for _, m := range msgs {
		ids, isPack := m.Attributes[plan.AttrPack]
		if !isPack {
			out = append(out, m)
			continue
		}
		tasks, derr := plan.DecodePack([]byte(m.Body))
		if derr != nil {
			p.log.Warn().Err(derr).Str("message_id", m.MessageID).Str("tasks", ids).Msg("a pack that cannot be decoded goes to the dead-letter queue whole")
			out = append(out, m)
			continue
		}
		if m.ReceiveCount > 1 {
			p.unpack(ctx, m, tasks)
			continue
		}
		out = append(out, p.open(m, tasks)...)
	}
	p.mu.Lock()
	p.perMessage[queueURL] = max(1, (len(out)+len(msgs)-1)/len(msgs))
	p.mu.Unlock()
	return out, err
}

// takeHandedOn returns the queues tasks were handed on to since the last
// call.
func (p *packQueue) takeHandedOn() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for u := range p.handedOn {
		out = append(out, u)
		delete(p.handedOn, u)
	}
	return out
}

func (p *packQueue) noteHandedOn(url string) {
	p.mu.Lock()
	p.handedOn[url] = true
	p.mu.Unlock()
}

// isPacked reports whether m is a task of a pack (a made-up receipt).
func isPacked(m sqs.Message) bool { return strings.HasPrefix(m.ReceiptHandle, packReceiptPrefix) }

// taskMessage is the message a task of a pack would have been on its own.
func taskMessage(m sqs.Message, t plan.PackedTask, receipt string, i int) sqs.Message {
	return sqs.Message{
		QueueURL:      m.QueueURL,
		MessageID:     m.MessageID + "/" + strconv.Itoa(i),
		Body:          string(t.Body),
		ReceiptHandle: receipt,
		ReceiveCount:  m.ReceiveCount,
		Attributes:    taskAttrs(m, t),
	}
}

// taskAttrs are the attributes of a task of pack m sent on its own.
func taskAttrs(m sqs.Message, t plan.PackedTask) map[string]string {
	return map[string]string{
		"taskiq_id":       t.ID,
		plan.AttrPriority: strconv.Itoa(t.Priority),
		"taskiq_packed":   m.MessageID,
	}
}

// open keeps a first delivery of a pack and returns its tasks as messages.
func (p *packQueue) open(m sqs.Message, tasks []plan.PackedTask) []sqs.Message {
	p.mu.Lock()
	p.seq++
	key := p.seq
	p.packs[key] = &openPack{url: m.QueueURL, receipt: m.ReceiptHandle, messageID: m.MessageID, tasks: tasks, ended: make([]bool, len(tasks)), left: len(tasks)}
	p.mu.Unlock()
	out := make([]sqs.Message, len(tasks))
	for i, t := range tasks {
		out[i] = taskMessage(m, t, packReceipt(key, i), i)
	}
	return out
}

// unpack sends every task of a pack delivered again as a single message
// of its queue, then deletes the pack. Should a send fail, the pack stays
// and comes back to be unpacked again (the copies sent are duplicates the
// claim makes harmless).
func (p *packQueue) unpack(ctx context.Context, m sqs.Message, tasks []plan.PackedTask) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	entries := make([]sqs.Entry, len(tasks))
	for i, t := range tasks {
		entries[i] = sqs.Entry{Body: string(t.Body), Attributes: taskAttrs(m, t)}
	}
	errs, err := p.Queue.SendBatch(cctx, m.QueueURL, entries)
	if err == nil {
		for _, e := range errs {
			if e != nil {
				err = e
				break
			}
		}
	}
	log := p.log.With().Str("message_id", m.MessageID).Int("receive_count", m.ReceiveCount).Int("tasks", len(tasks)).Logger()
	if err != nil {
		log.Warn().Err(err).Msg("cannot unpack a pack delivered again; it comes back when its lease runs out")
		return
	}
	p.noteHandedOn(m.QueueURL)
	derrs, err := p.Queue.DeleteBatch(cctx, m.QueueURL, []string{m.ReceiptHandle})
	if err == nil && len(derrs) > 0 {
		err = derrs[0]
	}
	if err != nil {
		log.Warn().Err(err).Msg("a pack delivered again was unpacked but not deleted")
		return
	}
	log.Info().Msg("pack delivered again: its tasks were sent on as single messages")
}

// end marks task i of pack key ended, and returns the pack's receipt when
// that was its last (the pack is forgotten then).
func (p *packQueue) end(key uint64, i int) (op *openPack, last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	op = p.packs[key]
	if op == nil || i < 0 || i >= len(op.ended) || op.ended[i] {
		return nil, false
	}
	op.ended[i] = true
	op.left--
	if op.left == 0 {
		delete(p.packs, key)
		return op, true
	}
	return op, false
}

// lookup returns the open pack of a task and whether the task is still
// held in it.
func (p *packQueue) lookup(key uint64, i int) (*openPack, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	op := p.packs[key]
	if op == nil || i < 0 || i >= len(op.ended) {
		return nil, false
	}
	return op, !op.ended[i]
}

// DeleteBatch ends the tasks of packs named, deleting each pack whose last
// task that was, and deletes the other messages.
func (p *packQueue) DeleteBatch(ctx context.Context, queueURL string, receipts []string) ([]error, error) {
	errs := make([]error, len(receipts))
	var real []string
	var slots [][]int // per entry of real, the receipts it stands for
	for i, r := range receipts {
		key, ti, ok := parsePackReceipt(r)
		if !ok {
			real = append(real, r)
			slots = append(slots, []int{i})
			continue
		}
		if op, last := p.end(key, ti); last {
			real = append(real, op.receipt)
			slots = append(slots, []int{i})
		}
	}
	if len(real) == 0 {
		return errs, nil
	}
	rerrs, err := p.Queue.DeleteBatch(ctx, queueURL, real)
	for k, is := range slots {
		for _, i := range is {
			if k < len(rerrs) {
				errs[i] = rerrs[k]
			}
		}
	}
	return errs, err
}

// ChangeVisibilities changes a pack's visibility for the tasks of it named
// (once per pack, to the longest asked), and the other messages' each.
func (p *packQueue) ChangeVisibilities(ctx context.Context, queueURL string, changes []sqs.VisibilityChange) ([]error, error) {
	errs := make([]error, len(changes))
	var real []sqs.VisibilityChange
	var slots [][]int
	packAt := map[uint64]int{}
	for i, c := range changes {
		key, ti, ok := parsePackReceipt(c.Receipt)
		if !ok {
			real = append(real, c)
			slots = append(slots, []int{i})
			continue
		}
		op, held := p.lookup(key, ti)
		if op == nil || !held {
			// Ended in its pack: nothing holds it here any more.
			errs[i] = errEndedInPack
			continue
		}
		if k, ok := packAt[key]; ok {
			real[k].D = max(real[k].D, c.D)
			slots[k] = append(slots[k], i)
			continue
		}
		packAt[key] = len(real)
		real = append(real, sqs.VisibilityChange{Receipt: op.receipt, D: c.D})
		slots = append(slots, []int{i})
	}
	if len(real) == 0 {
		return errs, nil
	}
	rerrs, err := p.Queue.ChangeVisibilities(ctx, queueURL, real)
	for k, is := range slots {
		for _, i := range is {
			if k < len(rerrs) {
				errs[i] = rerrs[k]
			}
		}
	}
	return errs, err
}

// errEndedInPack is the lease error of a task no longer held in its pack:
// permanent, as SQS's for a receipt it no longer knows.
var errEndedInPack = fmt.Errorf("the task was handed on from its pack: %w", sqs.ErrPermanent)

// SetVisibility hands a task of a pack on: sent to the pack's queue as a
// single message, visible after d, and ended in the pack. Other messages'
// visibility is changed.
func (p *packQueue) SetVisibility(ctx context.Context, queueURL, receipt string, d time.Duration) error {
	key, ti, ok := parsePackReceipt(receipt)
	if !ok {
		return p.Queue.SetVisibility(ctx, queueURL, receipt, d)
	}
	op, held := p.lookup(key, ti)
	if op == nil || !held {
		return nil // handed on or ended already
	}
	m := sqs.Message{QueueURL: op.url, MessageID: op.messageID}
	t := op.tasks[ti]
	if _, err := p.Queue.Send(ctx, op.url, sqs.Entry{Body: string(t.Body), Attributes: taskAttrs(m, t), Delay: min(max(d, 0), maxDelay)}); err != nil {
		return err
	}
	p.noteHandedOn(op.url)
	if op, last := p.end(key, ti); last {
		if errs, err := p.Queue.DeleteBatch(ctx, op.url, []string{op.receipt}); err != nil || (len(errs) > 0 && errs[0] != nil) {
			p.log.Warn().Err(err).Str("message_id", op.messageID).Msg("cannot delete a pack whose tasks have all ended; it comes back and is unpacked")
		}
	}
	return nil
}

// packHoldFor is how long tasks of a pack may be held for a free slot,
// counted from the receive that took the pack: they came in one message,
// not by a choice to read ahead, so they are let wait longer than
// holdFor, up to half the lease their receive began (the heartbeat of a
// running sibling extends the pack's, but a held task's claim counts its
// lease from the receive, and its first heartbeat extends it) and within
// maxHold, so that a higher task waits at most that behind them. On moto
// a receive from a level takes half a second and a task at concurrency 1
// a tenth: a third of a 6 s lease handed tasks on.
func (w *Worker) packHoldFor() time.Duration { return min(w.cfg.VisibilityTimeout/2, maxHold) }

// handOnLate hands the held tasks that found no slot in time on: those of
// a pack to their level as single messages, where this worker looks next
// (packQueue.SetVisibility), the others given back.
func (w *Worker) handOnLate(late []received) {
	var rest []received
	for _, m := range late {
		if !isPacked(m.Message) {
			rest = append(rest, m)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.queue.SetVisibility(ctx, m.QueueURL, m.ReceiptHandle, 0)
		cancel()
		if err != nil {
			w.log.Warn().Err(err).Str("message_id", m.MessageID).Msg("cannot hand on a task of a pack; it returns with its pack")
		}
	}
	w.giveBack(rest)
}

// packError is why a pack's body cannot be taken apart.
func packError(body []byte) error {
	if _, err := plan.DecodePack(body); err != nil {
		return err
	}
	return errors.New("pack was not taken apart")
}
