package worker

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// The dead-letter check: a message SQS itself moves to the dead-letter
// queue (every receiver died or froze before it claimed the task) leaves no
// trace in the store, and poll would say queued for ever. So a worker looks
// at the dead-letter queue when it starts and then every DeadLetterCheck,
// and records each task it finds there (lifecycle.RecordDeadLetter): poll
// then says dead_letter. The messages are left where they are, for an
// operator to list and redrive; they are hidden only while one check reads
// them, and made visible again at its end, so that `dlq list` keeps seeing
// them.
//
// It is cheap: a check first asks the queue's depth (one call), and reads
// the messages only when the depth changed since this worker last read them
// (or an hour has passed): an idle worker whose dead-letter queue is empty
// or unchanged makes one request per check.
const (
	// deadLetterHide is how long a check keeps the messages it read hidden
	// at most (it makes them visible again as soon as it is done), and
	// bounds how long the check may take: records are written while the
	// messages are hidden, so that `dlq redrive` (which withdraws the
	// record after it moved the message) never races a check.
	deadLetterHide = 30 * time.Second
	// deadLetterPages bounds the receives of one check: a hundred messages.
	deadLetterPages = 10
	// deadLetterReread is how often the messages are read even when the
	// depth did not change (one arrived as another was redriven).
	deadLetterReread = time.Hour
)

// deadLetterState is what the checks of one worker remember.
type deadLetterState struct {
	// seen are the dead letters already dealt with, by message id.
	seen map[string]bool
	// depth is the queue's depth when it was last read in full (-1:
	// never, or the read did not complete), and readAt when.
	depth  int
	readAt time.Time
}

// deadLetterLoop runs the dead-letter check at start and then every
// DeadLetterCheck (with jitter, so that a fleet started together does not
// check together) until ctx is done.
func (w *Worker) deadLetterLoop(ctx context.Context) {
	if w.cfg.DeadLetterURL == "" || w.cfg.DeadLetterCheck < 0 {
		return
	}
	st := &deadLetterState{seen: map[string]bool{}, depth: -1}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.checkDeadLetters(ctx, st)
		jitter := w.cfg.Jitter
		if jitter == nil {
			jitter = rand.Float64
		}
		t.Reset(time.Duration(float64(w.cfg.DeadLetterCheck) * (0.8 + 0.4*jitter())))
	}
}

// checkDeadLetters is one check of the dead-letter queue.
func (w *Worker) checkDeadLetters(parent context.Context, st *deadLetterState) {
	url := w.cfg.DeadLetterURL
	log := w.log.With().Str("queue", sqs.QueueName(url)).Logger()
	// Not cut short by the stop signal: SQS goes on with a receive its
	// client gave up on, and would hide for deadLetterHide what it takes
	// after this check made it visible again. The stop is looked at
	// between calls instead; a receive waits a second at most.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), deadLetterHide-5*time.Second)
	defer cancel()
	// The other calls stop with the worker.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	defer context.AfterFunc(parent, wcancel)()
	stats, err := w.queue.Stats(wctx, url)
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the dead-letter queue's depth")
		return
	}
	depth := stats.Visible + stats.InFlight + stats.Delayed
	now := w.cfg.Now()
	if depth == 0 || (depth == st.depth && now.Sub(st.readAt) < deadLetterReread) {
		st.depth, st.readAt = depth, now
		return
	}
	var held []sqs.VisibilityChange
	defer func() {
		if len(held) == 0 {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
		defer cancel()
		if _, err := w.queue.ChangeVisibilities(cctx, url, held); err != nil { // a refused entry: its hide ran out
			log.Warn().Err(err).Dur("hidden_for", deadLetterHide).Msg("cannot make the dead letters visible again")
		}
	}()
	complete, read := true, 0
	for range deadLetterPages {
		if parent.Err() != nil {
			complete = false
			break
		}
		// A second's long poll asks every SQS server, where a short
		// poll may answer empty while messages wait.
		msgs, err := w.queue.Receive(ctx, url, sqs.MaxBatch, time.Second, deadLetterHide)
		if err != nil {
			log.Warn().Err(err).Msg("cannot read the dead-letter queue")
			complete = false
			break
		}
		if len(msgs) == 0 {
			break
		}
		read += len(msgs)
		for _, m := range msgs {
			held = append(held, sqs.VisibilityChange{Receipt: m.ReceiptHandle})
			if st.seen[m.MessageID] {
				continue
			}
			if w.noteDeadLetter(wctx, m) {
				st.seen[m.MessageID] = true
			} else {
				complete = false
			}
		}
	}
	if complete && (read >= stats.Visible || read >= deadLetterPages*sqs.MaxBatch) {
		// Those hidden by another reader are its to record; beyond a
		// hundred, the hourly read takes another sample.
		st.depth, st.readAt = depth, now
	} else {
		st.depth = -1 // read again at the next check
	}
}

// noteDeadLetter records the task of one dead letter, and reports whether
// the message is dealt with (recorded, or nothing to record).
func (w *Worker) noteDeadLetter(ctx context.Context, m sqs.Message) bool {
	log := w.log.With().Str("message_id", m.MessageID).Logger()
	if m.Attributes["taskiq_reason"] != "" {
		// A worker moved it there itself, and recorded what it could.
		return true
	}
	t, ptr, err := plan.DecodeMessage([]byte(m.Body))
	if err != nil {
		return true // no task to speak of; `dlq list` shows it
	}
	if ptr != nil {
		if t, err = w.store.GetStoredTask(ctx, ptr.ID); err != nil {
			log.Warn().Err(err).Str("task_id", ptr.ID).Msg("cannot read a dead-lettered task's record")
			return false
		}
	}
	log = log.With().Str("task_id", t.ID).Logger()
	d := s3results.DeadLettered{Reason: lifecycle.ReasonRedrive, Worker: w.cfg.Info, At: w.cfg.Now().UTC(), MessageID: m.MessageID}
	recorded, err := lifecycle.RecordDeadLetter(ctx, w.store, t, d)
	if err != nil {
		log.Warn().Err(err).Msg("cannot record a dead-lettered task; poll keeps saying queued")
		return false
	}
	if recorded {
		log.Warn().Msg("task found in the dead-letter queue: poll reports it dead_letter")
	}
	return true
}
