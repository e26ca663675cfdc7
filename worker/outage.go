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

// recovered marks the store usable again and wakes the waiters; it
// reports whether the store was down until now.
func (o *outage) recovered() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.down {
		return false
	}
	o.down = false
	close(o.up)
	return true
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
	down, up := w.out.state()
	for n := 0; down; n++ {
		d := probeBackoff(n)
		select {
		case <-ctx.Done():
			return false
		case <-up: // a held message's probe saw it first
			return true
		case <-time.After(d):
		}
		err := w.probeStore(ctx)
		if err == nil {
			return true
		}
		w.log.Warn().Err(err).Dur("retry_in", probeBackoff(n+1)).Msg("store still unavailable")
		down, up = w.out.state()
	}
	return true
}

// probeStore checks whether the store works again; when it does, the
// outage ends (for every waiter) and it returns nil.
func (w *Worker) probeStore(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := w.store.Check(cctx)
	cancel()
	if err != nil {
		return err
	}
	// Time the store was down does not count towards --idle-exit.
	w.touch()
	if w.out.recovered() {
		w.log.Info().Msg("store works again: receiving")
	}
	return nil
}

// holdWhileStoreDown keeps a received message hidden while the store is
// down, extending its visibility every half lease, and returns true once
// the store works again (try the message once more). It probes the store
// itself, with the fetch loop's backoff: the fetch loop probes only
// between receives, and it may be waiting for a slot that the messages
// held here occupy. It returns false when the message could not be held
// (the queue is down too: it returns when its lease runs out, received
// again only after the store is back) or the worker stops (the message is
// given back).
//
// leaseFrom is when m's lease began (zero: now); each extension moves it.
func (w *Worker) holdWhileStoreDown(ctx context.Context, log zerolog.Logger, m sqs.Message, leaseFrom *time.Time) bool {
	if leaseFrom.IsZero() {
		*leaseFrom = w.cfg.Now()
	}
	extendedAt := *leaseFrom
	for n := 0; ; n++ {
		down, up := w.out.state()
		if !down {
			return true
		}
		d := min(probeBackoff(n), max(w.cfg.VisibilityTimeout/2-w.cfg.Now().Sub(extendedAt), 0))
		select {
		case <-up:
			return true
		case <-ctx.Done():
			w.retryLater(ctx, log, m, 0)
			return false
		case <-time.After(d):
		}
		if w.probeStore(ctx) == nil {
			return true
		}
		if w.cfg.Now().Sub(extendedAt) < w.cfg.VisibilityTimeout/2 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, w.cfg.VisibilityTimeout/4)
		asked := w.cfg.Now()
		err := w.queue.SetVisibility(cctx, m.QueueURL, m.ReceiptHandle, w.cfg.VisibilityTimeout)
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("cannot hold the message while the store is down; it returns when its lease runs out")
			return false
		}
		extendedAt, *leaseFrom = asked, asked
	}
}
