package worker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
	"github.com/taskiq-go/taskiq-go/supervisor"
)

// heartbeatLoop keeps every running attempt alive: it extends the leases
// that need it with one ChangeMessageVisibilityBatch call per ten tasks of a
// queue, renews each command's supervisor, refreshes running markers, stops
// attempts whose cancel marker appeared or whose lease could not be kept,
// and writes the worker's own heartbeat record.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Heartbeat)
	defer tick.Stop()
	w.beatWorker(ctx)
	recordAt, wasBusy := w.cfg.Now(), false
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
		// The record (and the stop request beside it) at every beat while
		// tasks run and once when the last ends; an idle worker's only
		// every idleRecordEvery, which is what its record says.
		busy := len(runs) > 0
		now := w.cfg.Now()
		record := busy || wasBusy || now.Sub(recordAt) >= w.idleRecordEvery()
		wasBusy = busy
		var wg sync.WaitGroup
		if record {
			recordAt = now
			wg.Add(1)
			go func() { defer wg.Done(); w.beatWorker(ctx) }()
		}
		w.beat(ctx, runs)
		wg.Wait()
	}
}

// idleRecordEvery is how often an idle worker rewrites its heartbeat record
// and looks for a stop request: ten heartbeats, at most 30 s (at least one
// heartbeat), so that an idle worker costs a few requests a minute.
func (w *Worker) idleRecordEvery() time.Duration {
	return max(w.cfg.Heartbeat, min(10*w.cfg.Heartbeat, 30*time.Second))
}

// extension is a lease a heartbeat extends: the run, by how much, and until
// when the call is worth waiting for.
type extension struct {
	r     *run
	d     time.Duration
	until time.Time
}

// beat is one heartbeat of the running attempts: first each one's lease is
// checked (a worker that woke past it stops the copy at once), then the
// leases that need it are extended in batches, then each attempt is
// refreshed on its own (supervisor, cancel marker, running marker).
func (w *Worker) beat(parent context.Context, runs []*run) {
	now := w.cfg.Now()
	var live []*run
	byQueue := map[string][]extension{}
	for _, r := range runs {
		ext, ok := w.checkLease(r, now)
		if !ok {
			continue
		}
		live = append(live, r)
		if ext.d > 0 {
			byQueue[r.q.URL] = append(byQueue[r.q.URL], ext)
		}
	}
	var wg sync.WaitGroup
	for queueURL, exts := range byQueue {
		for start := 0; start < len(exts); start += sqs.MaxBatch {
			chunk := exts[start:min(start+sqs.MaxBatch, len(exts))]
			wg.Add(1)
			go func() { defer wg.Done(); w.extend(parent, queueURL, now, chunk) }()
		}
	}
	wg.Wait()
	cancelled := w.recentCancels(parent, live)
	for _, r := range live {
		wg.Add(1)
		go func() { defer wg.Done(); w.refresh(parent, r, now, cancelled) }()
	}
	wg.Wait()
}

// cancelListLimit bounds the cancel notices one heartbeat reads (two LIST
// pages); when more were written since the oldest running task was
// submitted, each task's marker is looked for on its own instead.
const cancelListLimit = 2000

// cancelClockSkew is how far the clock of the client that cancelled may be
// behind the submitter's: notices are read back to that much before the
// oldest running task's submission.
const cancelClockSkew = 5 * time.Minute

// recentCancels tells, with one LIST of the cancel notices, which of runs
// have been cancelled, when that is cheaper than one HEAD of each task's
// cancel marker: with two running tasks or more. nil means each task is to
// be checked on its own (one running task, or the list could not tell).
func (w *Worker) recentCancels(parent context.Context, runs []*run) map[string]bool {
	if len(runs) < 2 {
		return nil
	}
	since := runs[0].task.SubmittedAt
	for _, r := range runs[1:] {
		if r.task.SubmittedAt.Before(since) {
			since = r.task.SubmittedAt
		}
	}
	ctx, cancel := context.WithTimeout(parent, w.cfg.Heartbeat)
	defer cancel()
	ids, complete, err := w.store.RecentCancels(ctx, since.Add(-cancelClockSkew), cancelListLimit)
	if err != nil || !complete {
		if err != nil {
			w.log.Warn().Err(err).Msg("cannot list the cancel notices; looking for each task's cancel marker")
		}
		return nil
	}
	return ids
}

// checkLease decides what the heartbeat does with r's lease at now: nothing
// more when the attempt is being stopped or its lease is gone (then it is
// stopped here), else whether to extend it. An extension is asked once half
// the lease is gone (or when less than two heartbeats are left), so that an
// endpoint outage shorter than half the visibility timeout costs no lease,
// and never for more than SQS's cap on the message allows: it would refuse
// the call.
func (w *Worker) checkLease(r *run, now time.Time) (extension, bool) {
	select {
	case <-r.stopC:
		if r.reason == reasonLease {
			return extension{}, false // the lease is gone and its command being stopped
		}
	default:
	}
	if r.handedOver {
		// The running marker is the lease now: a reader takes the task
		// once it has gone stale.
		r.setUntil(r.markedAt.Add(r.marker.StaleAfter()))
	}
	if deadline := w.treeDeadline(r.until()); !w.lease(r).Held(now) || now.After(deadline.Add(-w.deadlineGrace())) {
		// The worker was frozen or starved past the lease it last
		// extended (the supervisor is stopping the command by now):
		// another worker may hold the task. Extending the lease or the
		// marker with the old receipt could take them from the worker
		// that runs the next attempt; stop this copy at once instead.
		r.log.Error().Time("lease_until", r.until()).Msg("lease lost: stopping the task")
		killBy := deadline
		if !w.lease(r).Held(now) || deadline.Before(now) {
			killBy = now
		}
		r.stop(reasonLease, killBy)
		return extension{}, false
	}
	ext := extension{r: r, d: min(w.cfg.VisibilityTimeout, r.receivedAt.Add(w.cfg.VisibilityCap).Sub(now))}
	if left := r.until().Sub(now); r.handedOver || ext.d <= 0 || left >= max(w.cfg.VisibilityTimeout/2, 2*w.cfg.Heartbeat+time.Second) {
		ext.d = 0
	}
	// An extension is worth waiting for until the supervisor would begin
	// stopping the command, however slow the endpoint is.
	ext.until = later(now.Add(w.cfg.Heartbeat), w.treeDeadline(r.until()).Add(-w.deadlineGrace()))
	return ext, true
}

// extend extends the leases of up to ten runs of one queue with one call,
// and deals with each entry's answer on its own: a receipt SQS refuses for
// good (ReceiptHandleIsInvalid, MessageNotInflight) loses that attempt's
// lease at once and is not retried; a failure that may pass is tried again
// at the next heartbeat while time is left on the lease.
func (w *Worker) extend(parent context.Context, queueURL string, now time.Time, exts []extension) {
	until := exts[0].until
	changes := make([]sqs.VisibilityChange, len(exts))
	for i, e := range exts {
		changes[i] = sqs.VisibilityChange{Receipt: e.r.msg.ReceiptHandle, D: e.d}
		if e.until.Before(until) {
			until = e.until
		}
	}
	ctx, cancel := context.WithDeadline(parent, until)
	errs, err := w.queue.ChangeVisibilities(ctx, queueURL, changes)
	cancel()
	for i, e := range exts {
		r, eerr := e.r, err
		if eerr == nil && i < len(errs) {
			eerr = errs[i]
		}
		if eerr == nil {
			r.setUntil(now.Add(e.d))
			continue
		}
		r.log.Warn().Err(eerr).Msg("cannot extend the lease")
		// A receipt SQS refuses for good (the message is visible again, or
		// held by another receive) means the lease is gone already,
		// whatever time is left on it here.
		if !sqs.Permanent(eerr) && !w.cfg.Now().After(r.until().Add(-time.Second)) {
			continue
		}
		// Another worker may take the task now: stop this copy rather than
		// let two run. It takes over once the lease has run out and the
		// running marker has gone stale.
		r.log.Error().Msg("lease lost: stopping the task")
		killBy := r.until()
		if t := r.markedAt.Add(r.marker.StaleAfter()); t.After(killBy) {
			killBy = t
		}
		if sqs.Permanent(eerr) {
			killBy = w.cfg.Now().Add(w.deadlineGrace())
		}
		r.stop(reasonLease, killBy)
	}
}

// refresh does the rest of a heartbeat for one attempt whose lease holds:
// the lease handed over to a fresh message before SQS's cap, the
// supervisor's deadline renewed, the cancel looked for (in cancelled, the
// tasks the notices name, or with a HEAD of its marker when nil), and the
// running marker rewritten when it is due (markerEvery).
func (w *Worker) refresh(parent context.Context, r *run, now time.Time, cancelled map[string]bool) {
	select {
	case <-r.stopC:
		if r.reason == reasonLease {
			return
		}
	default:
	}
	ctx, cancel := context.WithTimeout(parent, w.cfg.Heartbeat)
	defer cancel()
	if !r.handedOver && now.Add(2*w.cfg.VisibilityTimeout).After(r.receivedAt.Add(w.cfg.VisibilityCap)) {
		w.handOver(ctx, r, "before SQS's visibility cap")
	}
	if p := r.proc.Load(); p != nil {
		if err := p.Renew(w.treeDeadline(r.until())); err != nil && !errors.Is(err, supervisor.ErrEnded) {
			r.log.Warn().Err(err).Msg("cannot renew the task's supervisor")
		}
	}
	if cancelled != nil {
		if cancelled[r.task.ID] {
			r.stop(reasonCancel, time.Time{})
			return
		}
	} else if yes, err := w.store.CancelRequested(ctx, r.task.ID); err == nil && yes {
		r.stop(reasonCancel, time.Time{})
		return
	}
	if now.Sub(r.markedAt) < w.markerEvery()-w.cfg.Heartbeat/2 {
		return // fresh enough: StaleAfter is three of markerEvery
	}
	m := r.marker
	m.HeartbeatAt, m.LeaseUntil = now, r.until()
	if err := w.store.PutRunning(ctx, &m); err != nil {
		r.log.Warn().Err(err).Msg("cannot refresh the running marker")
	} else {
		r.markedAt = now
	}
}

// handOver passes a task's lease to a fresh copy of its message before SQS's
// cap on the old one's visibility runs out (12 hours from its receipt): the
// copy is sent, then the old message deleted. Whoever receives the copy
// finds the attempt claimed and its running marker fresh, and keeps the copy
// hidden for another visibility timeout without starting anything; should
// this worker die, the marker goes stale, and the copy's next receiver runs
// the next attempt. On a failure it is tried again at the next heartbeat.
//
// why ends the log line that says it was done.
func (w *Worker) handOver(ctx context.Context, r *run, why string) {
	attrs := map[string]string{"taskiq_handover": r.msg.MessageID, "taskiq_worker": w.cfg.Info.String()}
	if _, err := w.queue.Send(ctx, w.inboxOf(r.q.URL), sqs.Entry{Body: r.msg.Body, Attributes: attrs}); err != nil {
		r.log.Warn().Err(err).Msg("cannot hand the lease over to a fresh message; will try again")
		return
	}
	r.handedOver = true
	r.setUntil(r.markedAt.Add(r.marker.StaleAfter()))
	errs, err := w.queue.DeleteBatch(ctx, r.q.URL, []string{r.msg.ReceiptHandle})
	if err == nil && len(errs) > 0 {
		err = errs[0]
	}
	if err != nil {
		// It comes back at the cap and is kept hidden like the copy.
		r.log.Warn().Err(err).Msg("cannot delete the message whose lease was handed over")
	}
	r.log.Info().Msg("lease handed over to a fresh copy of the message " + why)
}

// markerEvery is how often a running marker is rewritten: every heartbeat
// at most, else a third of the visibility timeout up to 10 s (by default
// every third or fourth heartbeat). The marker says so (HeartbeatEvery),
// and a reader takes it as stale after three of these: a task whose worker
// died reads lost about when its lease runs out, and before then the
// lease keeps every other worker from running it anyway.
func (w *Worker) markerEvery() time.Duration {
	return max(w.cfg.Heartbeat, min(w.cfg.VisibilityTimeout/3, 10*time.Second))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// treeDeadline is when the command's supervisor kills its tree unless
// renewed, for a lease that ends at leaseUntil: a margin before the lease
// ends, so that the tree is dead before SQS may hand the message to another
// worker. The margin also covers the time between the receive that started
// the lease and the moment leaseUntil was taken.
func (w *Worker) treeDeadline(leaseUntil time.Time) time.Time {
	return leaseUntil.Add(-w.leaseMargin())
}

// deadlineGrace is the time between SIGTERM and SIGKILL when the supervisor
// stops a command because the lease deadline passed.
func (w *Worker) deadlineGrace() time.Duration { return min(w.cfg.KillGrace, w.leaseMargin()) }

// leaseMargin is a tenth of the visibility timeout, between 200 ms and 5 s.
func (w *Worker) leaseMargin() time.Duration {
	return min(max(w.cfg.VisibilityTimeout/10, 200*time.Millisecond), 5*time.Second)
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
	// HeartbeatEvery is the longest this record goes without being
	// rewritten (an idle worker's interval; a busy one writes it at every
	// heartbeat); a record older than three of these belongs to a worker
	// that has stopped.
	HeartbeatEvery plan.Duration `json:"heartbeat_every"`

	// RunningByQueue counts the running tasks by the SQS queue URL their
	// message came from, so that `queues` can tell a message a worker
	// runs from one waiting hidden for a retry.
	RunningByQueue map[string]int `json:"running_by_queue"`
}

func (w *Worker) beatWorker(ctx context.Context) {
	hb := Heartbeat{
		Worker: w.cfg.Info.ID, Host: w.cfg.Info.Host, PID: w.cfg.Info.PID, Version: w.cfg.Version,
		Concurrency: w.cfg.Concurrency, Finished: w.Finished(),
		StartedAt: w.started, HeartbeatAt: w.cfg.Now(), Running: []string{},
		HeartbeatEvery: plan.Duration(w.idleRecordEvery()),
	}
	for _, q := range w.cfg.Queues {
		if !slices.Contains(hb.Queues, q.Name) {
			hb.Queues = append(hb.Queues, q.Name)
		}
	}
	hb.RunningByQueue = map[string]int{}
	w.mu.Lock()
	for id, r := range w.running {
		hb.Running = append(hb.Running, id)
		hb.RunningByQueue[r.q.URL]++
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
