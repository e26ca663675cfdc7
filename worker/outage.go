package worker

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/sqs"
)

// outage tracks whether the store is usable. While it is down the worker
// receives nothing (a message it cannot claim would only be received again
// and again until the queue dead-letters it), holds the messages it has
// already received, and probes the store with an exponential backoff;
// everything resumes within a probe of the store's recovery.
type outage struct {
	mu   sync.Mutex
	down bool
	// up is closed when the store works again.
	up chan struct{}
}

// fail records that a store call failed; it reports whether the store was
// up until now.
func (o *outage) fail() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		return false
	}
	o.down, o.up = true, make(chan struct{})
	return true
}

// recovered marks the store usable again and wakes the waiters.
func (o *outage) recovered() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down {
		o.down = false
		close(o.up)
	}
}

// state reports whether the store is down, and a channel closed when it is
// up again.
func (o *outage) state() (bool, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.down, o.up
}

// probeBackoff is the pause before the n-th probe of a store that is down
// (n from 0): 1 s doubling up to 5 s, so that a recovery is seen within
// seconds while an outage of minutes costs a probe every 5 s.
func probeBackoff(n int) time.Duration {
	d := time.Second
	for range n {
		d *= 2
		if d >= 5*time.Second {
			return 5 * time.Second
		}
	}
	return d
}

// storeFailed notes a failed store call.
func (w *Worker) storeFailed(log zerolog.Logger, err error) {
	if w.out.fail() {
		log.Error().Err(err).Msg("store unavailable: receiving nothing until it works again")
	}
}

// awaitStore returns at once while the store works; while it is down it
// probes it with an exponential backoff and returns once it works again,
// or false when ctx ends first.
func (w *Worker) awaitStore(ctx context.Context) bool {
	down, _ := w.out.state()
	for n := 0; down; n++ {
		d := probeBackoff(n)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.store.Check(cctx)
		cancel()
		if err == nil {
			// Time the store was down does not count towards --idle-exit.
			w.touch()
			w.out.recovered()
			w.log.Info().Msg("store works again: receiving")
			return true
		}
		w.log.Warn().Err(err).Dur("retry_in", probeBackoff(n+1)).Msg("store still unavailable")
		down, _ = w.out.state()
	}
	return true
}

// holdWhileStoreDown keeps a received message hidden while the store is
// down, extending its visibility every half lease, and returns true once
// the store works again (try the message once more). It returns false when
// the message could not be held (the queue is down too: it returns when its
// lease runs out, received again only after the store is back) or the
// worker stops (the message is given back).
func (w *Worker) holdWhileStoreDown(ctx context.Context, log zerolog.Logger, m sqs.Message) bool {
	for {
		down, up := w.out.state()
		if !down {
			return true
		}
		select {
		case <-up:
			return true
		case <-ctx.Done():
			w.retryLater(ctx, log, m, 0)
			return false
		case <-time.After(w.cfg.VisibilityTimeout / 2):
		}
		cctx, cancel := context.WithTimeout(ctx, w.cfg.VisibilityTimeout/4)
		err := w.queue.SetVisibility(cctx, m.QueueURL, m.ReceiptHandle, w.cfg.VisibilityTimeout)
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("cannot hold the message while the store is down; it returns when its lease runs out")
			return false
		}
	}
}
