package worker

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/sqs"
)

// ackDelay is how long an acknowledgement may wait for others to share its
// DeleteMessageBatch call. The message stays invisible meanwhile (its lease
// is seconds long at least), and its result is already stored, so the wait
// costs nothing but saves up to nine calls in ten on a busy worker; a
// worker that stops flushes what is pending at once (close), so its exit
// waits for no window. Half a second fills a batch of ten at 20 tasks a
// second (100 ms filled a quarter of one at concurrency 4: 0.25 deletes a
// task where 0.1 is the floor).
const ackDelay = 500 * time.Millisecond

// acker deletes finished messages in batches per queue.
type acker struct {
	q   Queue
	log zerolog.Logger
	in  chan ackReq
	wg  sync.WaitGroup
}

type ackReq struct{ queueURL, receipt string }

func newAcker(q Queue, log zerolog.Logger) *acker {
	a := &acker{q: q, log: log, in: make(chan ackReq, 64)}
	a.wg.Add(1)
	go a.loop()
	return a
}

func (a *acker) ack(queueURL, receipt string) { a.in <- ackReq{queueURL, receipt} }

// close flushes what is pending and stops.
func (a *acker) close() {
	close(a.in)
	a.wg.Wait()
}

func (a *acker) loop() {
	defer a.wg.Done()
	pending := map[string][]string{}
	var timer <-chan time.Time
	for {
		select {
		case r, ok := <-a.in:
			if !ok {
				a.flush(pending)
				return
			}
			pending[r.queueURL] = append(pending[r.queueURL], r.receipt)
			if len(pending[r.queueURL]) >= 10 {
				a.flush(map[string][]string{r.queueURL: pending[r.queueURL]})
				delete(pending, r.queueURL)
			}
			if timer == nil && len(pending) > 0 {
				timer = time.After(ackDelay)
			}
		case <-timer:
			timer = nil
			a.flush(pending)
			clear(pending)
		}
	}
}

// flush deletes the messages, retrying failed ones for up to two minutes: an
// acknowledgement lost here would make a finished task's message return (it
// would then be acknowledged without running, since its result exists).
func (a *acker) flush(pending map[string][]string) {
	for queueURL, receipts := range pending {
		deadline := time.Now().Add(2 * time.Minute)
		for i := 0; len(receipts) > 0; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			errs, err := a.q.DeleteBatch(ctx, queueURL, receipts)
			cancel()
			var again []string
			for j, r := range receipts {
				e := err
				if e == nil {
					e = errs[j]
				}
				switch {
				case e == nil:
				case sqs.Permanent(e):
					// A receipt no longer valid (the message came back and
					// went to another receive, or is gone): no retry can
					// delete it, and its result is stored already.
					a.log.Warn().Err(e).Msg("message deletion refused for good; not retrying")
				default:
					again = append(again, r)
					if err == nil {
						a.log.Warn().Err(e).Msg("message deletion failed")
					}
				}
			}
			if err != nil && !sqs.Permanent(err) {
				a.log.Warn().Err(err).Int("messages", len(receipts)).Msg("message deletion failed")
			}
			receipts = again
			if len(receipts) == 0 || time.Now().After(deadline) {
				if len(receipts) > 0 {
					a.log.Error().Int("messages", len(receipts)).Msg("giving up deleting messages; they return and are acknowledged then")
				}
				break
			}
			time.Sleep(min(time.Duration(i+1)*500*time.Millisecond, 5*time.Second))
		}
	}
}
