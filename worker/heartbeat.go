package worker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// heartbeatLoop keeps every running attempt alive: it refreshes running
// markers, extends leases before they run out, stops attempts whose cancel
// marker appeared or whose lease could not be kept, and writes the worker's
// own heartbeat record.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Heartbeat)
	defer tick.Stop()
	w.beatWorker(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.mu.Lock()
		runs := make([]*run, 0, len(w.running))
		for _, r := range w.running {
			runs = append(runs, r)
		}
		w.mu.Unlock()
		var wg sync.WaitGroup
		for _, r := range runs {
			wg.Add(1)
			go func() { defer wg.Done(); w.beat(ctx, r) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); w.beatWorker(ctx) }()
		wg.Wait()
	}
}

func (w *Worker) beat(ctx context.Context, r *run) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Heartbeat)
	defer cancel()
	select {
	case <-r.stopC:
		if r.reason == reasonLease {
			return // the lease is gone and its command being stopped
		}
	default:
	}
	now := w.cfg.Now()
	// Extend the lease once half of it is gone (or when less than two
	// heartbeats are left): an endpoint outage shorter than half the
	// visibility timeout then costs no lease.
	if left := r.leaseUntil.Sub(now); left < max(w.cfg.VisibilityTimeout/2, 2*w.cfg.Heartbeat+time.Second) {
		if err := w.queue.SetVisibility(ctx, r.q.URL, r.msg.ReceiptHandle, w.cfg.VisibilityTimeout); err != nil {
			r.log.Warn().Err(err).Msg("cannot extend the lease")
			if w.cfg.Now().After(r.leaseUntil.Add(-time.Second)) {
				// Another worker may take the task now: stop this copy
				// rather than let two run. It takes over once the lease
				// has run out and the running marker has gone stale.
				r.log.Error().Msg("lease lost: stopping the task")
				killBy := r.leaseUntil
				if t := r.markedAt.Add(r.marker.StaleAfter()); t.After(killBy) {
					killBy = t
				}
				r.stop(reasonLease, killBy)
				return
			}
		} else {
			r.leaseUntil = now.Add(w.cfg.VisibilityTimeout)
		}
	}
	if cancelled, err := w.store.CancelRequested(ctx, r.task.ID); err == nil && cancelled {
		r.stop(reasonCancel, time.Time{})
		return
	}
	m := r.marker
	m.HeartbeatAt, m.LeaseUntil = now, r.leaseUntil
	if err := w.store.PutRunning(ctx, &m); err != nil {
		r.log.Warn().Err(err).Msg("cannot refresh the running marker")
	} else {
		r.markedAt = now
	}
}

// Heartbeat is a worker's record in the store, for `taskiq-go workers`.
type Heartbeat struct {
	Worker      string    `json:"worker"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Version     string    `json:"version,omitempty"`
	Queues      []string  `json:"queues"`
	Concurrency int       `json:"concurrency"`
	Running     []string  `json:"running"`
	Finished    int       `json:"finished"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// HeartbeatEvery is how often this record is rewritten; a record older
	// than three of these belongs to a worker that has stopped.
	HeartbeatEvery plan.Duration `json:"heartbeat_every"`
}

func (w *Worker) beatWorker(ctx context.Context) {
	hb := Heartbeat{
		Worker: w.cfg.Info.ID, Host: w.cfg.Info.Host, PID: w.cfg.Info.PID, Version: w.cfg.Version,
		Concurrency: w.cfg.Concurrency, Finished: w.Finished(),
		StartedAt: w.started, HeartbeatAt: w.cfg.Now(), Running: []string{},
		HeartbeatEvery: plan.Duration(w.cfg.Heartbeat),
	}
	for _, q := range w.cfg.Queues {
		if !slices.Contains(hb.Queues, q.Name) {
			hb.Queues = append(hb.Queues, q.Name)
		}
	}
	w.mu.Lock()
	for id := range w.running {
		hb.Running = append(hb.Running, id)
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Heartbeat)
	defer cancel()
	if err := w.store.PutWorker(ctx, w.cfg.Info.ID, hb); err != nil {
		w.log.Warn().Err(err).Msg("cannot write the worker heartbeat")
	}
	w.checkStopRequest(ctx)
}

// checkStopRequest shuts the worker down as a stop signal does when
// `taskiq-go workers --stop` asked it to since it started.
func (w *Worker) checkStopRequest(ctx context.Context) {
	if w.stopRequested.Load() {
		return
	}
	req, err := w.store.WorkerStop(ctx, w.cfg.Info.ID)
	if err != nil {
		w.log.Warn().Err(err).Msg("cannot read the stop request")
		return
	}
	if req == nil || req.RequestedAt.Before(w.started) {
		return
	}
	w.stopRequested.Store(true)
	w.log.Info().Time("requested_at", req.RequestedAt).Msg("stop requested: finishing running tasks, taking no new ones")
	w.requestStop()
}
