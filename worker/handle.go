package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
	"github.com/taskiq-go/taskiq-go/supervisor"
)

// stop reasons: why a running command is being stopped.
const (
	reasonCancel   = "cancelled"
	reasonLease    = "lease lost"
	reasonShutdown = "worker shutting down"
)

// run is one attempt in progress, shared with the heartbeat.
type run struct {
	task   *plan.Task
	q      QueueRef
	msg    sqs.Message
	marker plan.Running
	// leaseUntil is read and written through until and setUntil.
	leaseMu    sync.Mutex
	leaseUntil time.Time
	// markedAt is the heartbeat time of the last running marker stored.
	markedAt time.Time
	log      zerolog.Logger

	stopOnce sync.Once
	stopC    chan struct{}
	reason   string
	// killBy is, when the lease is lost, the time by which the command must
	// be dead: another worker may start the task from then on.
	killBy time.Time
	// leaseLost is set by execute when it stopped the command because the
	// lease could not be kept.
	leaseLost bool
	// receivedAt is when the message was received (at the latest): SQS
	// caps its visibility at VisibilityCap from then.
	receivedAt time.Time
	// handedOver is set once the lease has passed to a fresh copy of the
	// message (see handOver): from then on the running marker alone holds
	// the task, and the old receipt handle is gone.
	handedOver bool
	// proc is the command's supervisor once it runs; the heartbeat renews
	// its deadline.
	proc atomic.Pointer[supervisor.Proc]
}

// until is the end of the lease as last known. The heartbeat moves it
// while the attempt's own goroutine reads it (finish), and a handover
// moves it from either.
func (r *run) until() time.Time {
	r.leaseMu.Lock()
	defer r.leaseMu.Unlock()
	return r.leaseUntil
}

// setUntil records a new end of the lease.
func (r *run) setUntil(t time.Time) {
	r.leaseMu.Lock()
	r.leaseUntil = t
	r.leaseMu.Unlock()
}

// stop asks the attempt to end for reason (by killBy at the latest, when
// set); the first reason wins.
func (r *run) stop(reason string, killBy time.Time) {
	r.stopOnce.Do(func() { r.reason, r.killBy = reason, killBy; close(r.stopC) })
}

// handle takes one message from receipt to acknowledgement. receivedAt is
// when the receive that took it was issued (zero: now): its lease runs
// from then, however long it waited for a slot.
func (w *Worker) handle(ctx context.Context, q QueueRef, m sqs.Message, receivedAt time.Time) {
	log := w.log.With().Str("queue", q.Name).Str("band", q.Band).Str("message_id", m.MessageID).Logger()
	if receivedAt.IsZero() {
		receivedAt = w.cfg.Now()
	}
	leaseFrom := receivedAt // moved by each extension while the store is down
	if _, ok := m.Attributes[plan.AttrPack]; ok {
		// The packs that come up here whole are those that cannot be
		// taken apart (pack.go).
		w.deadLetter(ctx, log, q, m, packError([]byte(m.Body)))
		return
	}
	task, ptr, err := plan.DecodeMessage([]byte(m.Body))
	for err == nil && ptr != nil {
		task, err = w.store.GetStoredTask(ctx, ptr.ID)
		if err == nil || errors.Is(err, plan.ErrTaskNotFound) {
			break
		}
		log.Error().Err(err).Str("task_id", ptr.ID).Msg("cannot read the task's payload; will try again")
		w.storeFailed(log, err)
		if !w.holdWhileStoreDown(ctx, log, m, &leaseFrom) {
			return
		}
		err = nil
	}
	if err == nil && task.ID == "" {
		err = errors.New("task has no id")
	}
	if err == nil && ptr != nil && task.ID != ptr.ID {
		err = fmt.Errorf("pointer names task %s but its record is task %s", ptr.ID, task.ID)
	}
	if err == nil {
		// Before anything is written for the task: an unsigned or forged
		// message must not even claim the id it names.
		if err = w.verify(task); err != nil {
			w.recordRefusal(ctx, log, task, err)
		} else {
			err = w.bind(q, m, task)
		}
	}
	if err != nil {
		w.deadLetter(ctx, log, q, m, err)
		return
	}
	log = log.With().Str("task_id", task.ID).Logger()

	// The supervisor starts while the claim is out; it is handed the
	// command only once the claim is won, and discarded on every other
	// path, having run nothing.
	e := w.startEarly(log)
	defer e.discard()
	r, ok := w.claim(ctx, log, q, task, m, e, receivedAt, leaseFrom)
	if !ok {
		e.discard()
		return
	}
	// No cancel check here: cancel of a task no attempt holds claims the
	// attempt itself, so a claim that succeeded means the task was not
	// cancelled before it; a cancel after it is seen at the next heartbeat.
	w.track(r)
	defer w.untrack(r)
	if w.lastDelivery(m) {
		// Should this worker die while the command runs, the message
		// would come back once more and be dead-lettered unread, leaving
		// the task lost for ever: hand the lease over to a fresh copy
		// now, as before SQS's visibility cap, so that the running marker
		// holds the task and the copy's receiver takes it over.
		w.handOver(ctx, r, "at its last delivery before the redrive limit")
	}
	res := w.execute(ctx, r, e)
	if res == nil {
		if r.leaseLost {
			w.abandon(r)
		} else {
			w.release(r)
		}
		return
	}
	w.finish(r, res)
}

func (w *Worker) isRunning(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.running[id]
	return ok
}

func (w *Worker) track(r *run) {
	w.mu.Lock()
	w.running[r.task.ID] = r
	w.mu.Unlock()
}

func (w *Worker) untrack(r *run) {
	w.mu.Lock()
	if w.running[r.task.ID] == r {
		delete(w.running, r.task.ID)
	}
	w.mu.Unlock()
}

// claim takes the next attempt of a task (lifecycle.Claimer.Claim), or
// deals with the message when there is nothing to run: a finished task, one
// running elsewhere, one cancelled or lost too often. A store error discards
// the supervisor started ahead (e): none waits through an outage.
//
// receivedAt is when m was received, leaseFrom when its lease was last
// set (its receipt, or an extension while the store was down): a message
// held for a slot (levels.go) has less than a whole visibility timeout
// left, and the supervisor's deadline must not outlast what SQS gives.
func (w *Worker) claim(ctx context.Context, log zerolog.Logger, q QueueRef, task *plan.Task, m sqs.Message, e *early, receivedAt, leaseFrom time.Time) (*run, bool) {
	now := w.cfg.Now()
	leaseUntil := leaseFrom.Add(w.cfg.VisibilityTimeout)
	marker := func(attempt int) plan.Running {
		return plan.Running{
			V: plan.Version, ID: task.ID, Group: task.Group, Attempt: attempt, Worker: w.cfg.Info,
			StartedAt: now, HeartbeatAt: now, LeaseUntil: leaseUntil,
			HeartbeatEvery: plan.Duration(w.markerEvery()),
		}
	}
	c := lifecycle.Claimer{Worker: w.cfg.Info, Marker: marker, RunningHere: w.isRunning, MaxLost: w.cfg.MaxLostAttempts}
	d, err := c.Claim(ctx, w.store, task, now)
	for err != nil {
		// The store is down (or refusing): hold the message rather than
		// let it be received again and again towards the dead-letter
		// queue, and try again once the store works.
		log.Error().Err(err).Msg("cannot claim the task; will try again")
		e.discard()
		w.storeFailed(log, err)
		if !w.holdWhileStoreDown(ctx, log, m, &leaseFrom) {
			return nil, false
		}
		now = w.cfg.Now()
		leaseUntil = leaseFrom.Add(w.cfg.VisibilityTimeout)
		d, err = c.Claim(ctx, w.store, task, now)
	}
	switch d.Verdict {
	case lifecycle.Done:
		log.Info().Str("state", d.Why).Msg("duplicate delivery of a finished task: acknowledging without running")
		// The worker that stored the result may have stopped before its
		// group's index said so (or cancel stored it): the message is
		// still here, so write the end key now, from the stored result.
		w.indexEnd(log, d.Result)
		w.ack(m)
		return nil, false
	case lifecycle.Elsewhere:
		if d.Running != nil {
			log.Info().Str("running_on", d.Running.Worker.String()).Msg("task is running elsewhere: not starting it twice")
		} else {
			log.Info().Int("attempt", d.Attempt).Msg(d.Why)
		}
		w.retryLater(ctx, log, m, w.cfg.VisibilityTimeout)
		return nil, false
	case lifecycle.EndUnstarted:
		w.finishUnstarted(log, d.Result, m)
		return nil, false
	}
	return &run{
		task: task, q: q, msg: m, log: log.With().Int("attempt", d.Attempt).Logger(),
		stopC:      make(chan struct{}),
		receivedAt: receivedAt,
		leaseUntil: leaseUntil,
		markedAt:   now,
		marker:     marker(d.Attempt),
	}, true
}

// execute runs the command and returns its result, or nil when the attempt
// must be released instead (shutdown, lost lease). The command goes to the
// supervisor started while the claim was out (e) when there is one, else to
// a fresh one.
func (w *Worker) execute(ctx context.Context, r *run, e *early) *plan.Result {
	pend, stdout, stderr := e.take()
	defer pend.Discard()
	if stdout != nil {
		defer stdout.close()
		defer stderr.close()
	}
	t := r.task
	res := &plan.Result{
		V: plan.Version, ID: t.ID, Attempt: r.marker.Attempt, Worker: w.cfg.Info,
		Group: t.Group, Queue: t.Queue, Labels: t.Labels,
		SubmittedAt: t.SubmittedAt, StartedAt: r.marker.StartedAt,
	}
	fail := func(code int, msg string) *plan.Result {
		res.State, res.ExitCode, res.Error, res.FinishedAt = plan.StateFailed, plan.IntPtr(code), msg, w.cfg.Now()
		r.log.Warn().Str("err", msg).Msg("task could not start")
		return res
	}
	if err := t.ExecLimitError(); err != nil {
		return fail(126, err.Error())
	}
	env, masks, err := w.startEnv(ctx, t)
	if err != nil {
		return fail(126, err.Error())
	}
	if stdout == nil {
		if stdout, err = newCapture(w.cfg.TempDir); err != nil {
			return fail(126, fmt.Sprintf("cannot capture output: %v", err))
		}
		defer stdout.close()
		if stderr, err = newCapture(w.cfg.TempDir); err != nil {
			return fail(126, fmt.Sprintf("cannot capture output: %v", err))
		}
		defer stderr.close()
	}

	// The command runs under its own supervisor, which holds the lease
	// deadline: should this worker die or freeze, the supervisor stops the
	// command's whole tree before another worker may take the task.
	spec := supervisor.Spec{
		Argv: t.Argv, Env: env, Dir: t.Dir, Stdout: stdout.f, Stderr: stderr.f,
		Deadline: w.treeDeadline(r.marker.LeaseUntil), Grace: w.deadlineGrace(),
	}
	var proc *supervisor.Proc
	if pend != nil {
		proc, err = pend.Run(spec)
	} else {
		proc, err = supervisor.Start(spec)
	}
	if err != nil {
		var se *supervisor.StartError
		if errors.As(err, &se) {
			return fail(se.Code, se.Msg)
		}
		return fail(126, fmt.Sprintf("cannot start %q: %v", t.Argv[0], err))
	}
	r.proc.Store(proc)
	stopLive := w.startLive(r, stdout, stderr, masks)
	defer stopLive()
	r.log.Info().Int("pid", proc.Pid()).Msg("task started")
	w.cfg.Metrics.TaskStarted(r.q.Name)
	done := make(chan ended, 1)
	go func() { e, err := proc.Wait(); done <- ended{e, err} }()

	var timeout <-chan time.Time
	if t.Timeout > 0 {
		timer := time.NewTimer(t.Timeout.Std())
		defer timer.Stop()
		timeout = timer.C
	}
	reason := ""
	var end ended
	select {
	case end = <-done:
		if end.exit.By == "deadline" {
			// The supervisor found the lease deadline passed without a
			// renewal: this worker was too slow or frozen to keep it.
			reason = reasonLease
			r.log.Error().Str("reason", reason).Msg("the supervisor stopped the task: its lease deadline passed")
		}
	case <-timeout:
		reason = "timed out"
	case <-r.stopC:
		reason = r.reason
	case <-ctx.Done():
		reason = reasonShutdown
	}
	if reason != "" && end == (ended{}) {
		r.log.Info().Str("reason", reason).Msg("stopping task")
		grace := w.cfg.KillGrace
		if reason == reasonLease {
			// Whatever the kill grace, the command must not outlive the
			// moment another worker may start it (the supervisor holds
			// an earlier deadline still).
			grace = min(grace, r.killBy.Sub(w.cfg.Now()))
		}
		end = w.kill(proc, done, grace)
	}
	stopLive()
	res.FinishedAt = w.cfg.Now()
	if reason == reasonShutdown || reason == reasonLease {
		w.cfg.Metrics.TaskEnded(r.q.Name, "released", res.FinishedAt.Sub(res.StartedAt))
		r.leaseLost = reason == reasonLease
		return nil
	}
	defer func() { w.cfg.Metrics.TaskEnded(r.q.Name, res.State, res.FinishedAt.Sub(res.StartedAt)) }()
	ws := end.exit.Status
	switch {
	case end.err != nil:
		r.log.Error().Err(end.err).Msg("the task's supervisor was lost")
		res.Error = end.err.Error()
	case ws.Signaled():
		res.Signal = unix(ws.Signal())
		res.ExitCode = plan.IntPtr(128 + int(ws.Signal()))
	default:
		res.ExitCode = plan.IntPtr(ws.ExitStatus())
	}
	switch {
	case reason == "timed out":
		res.State, res.Error = plan.StateTimedOut, fmt.Sprintf("timed out after %s", t.Timeout.Std())
	case reason == reasonCancel:
		res.State, res.Error = plan.StateCancelled, "cancelled while running"
	case end.err == nil && res.ExitCode != nil && *res.ExitCode == 0:
		res.State = plan.StateSucceeded
	default:
		res.State = plan.StateFailed
	}
	// Output is stored on a context that shutdown does not cancel.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if res.Stdout, err = stdout.store(sctx, w.store, t.ID, res.Attempt, "stdout", w.cfg.InlineLimit, masks); err != nil {
		res.Error = join(res.Error, fmt.Sprintf("stdout lost: %v", err))
	}
	if res.Stderr, err = stderr.store(sctx, w.store, t.ID, res.Attempt, "stderr", w.cfg.InlineLimit, masks); err != nil {
		res.Error = join(res.Error, fmt.Sprintf("stderr lost: %v", err))
	}
	return res
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// ended is how a supervised command ended, or why that is unknown.
type ended struct {
	exit supervisor.Exit
	err  error
}

// kill stops the command's tree through its supervisor: SIGTERM, grace,
// then SIGKILL (at once on Abort; by the lease deadline at the latest,
// which the supervisor holds). It returns how the command ended.
func (w *Worker) kill(p *supervisor.Proc, done <-chan ended, grace time.Duration) ended {
	_ = p.Stop(grace)
	select {
	case e := <-done:
		return e
	case <-w.abort:
		_ = p.Kill()
		return <-done
	}
}

// unix names a signal the way shells do ("SIGTERM").
func unix(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	}
	return fmt.Sprintf("signal %d", int(s))
}

// lease is what the attempt knows of its hold on the message.
func (w *Worker) lease(r *run) lifecycle.Lease {
	return lifecycle.Lease{Until: r.until(), Margin: time.Second}
}

// finish records how an attempt ended and acknowledges or reschedules the
// message, as lifecycle.End decides. Every write happens on a context that
// shutdown does not cancel, and the message is deleted only after the
// result is stored. An attempt that no longer holds its lease (its worker
// was frozen or cut off past it) records only its own attempt.
func (w *Worker) finish(r *run, res *plan.Result) {
	log := r.log.With().Str("state", string(res.State)).Logger()
	if res.ExitCode != nil {
		log = log.With().Int("exit_code", *res.ExitCode).Logger()
	}
	switch lifecycle.End(res, r.task, w.lease(r).Held(w.cfg.Now())) {
	case lifecycle.Stale:
		log.Warn().Time("lease_until", r.until()).Msg("lease ran out before the attempt ended: recording only its own attempt")
		w.persist(log, "attempt record", w.storeWrite(log, func(ctx context.Context) error { return w.store.PutAttempt(ctx, res) }))
		return
	case lifecycle.Retry:
		w.persist(log, "attempt record", w.storeWrite(log, func(ctx context.Context) error { return w.store.PutAttempt(ctx, res) }))
		w.persist(log, "running marker removal", func(ctx context.Context) error { return w.store.DeleteRunning(ctx, res.ID, res.Attempt) })
		delay := Backoff(res.Attempt, w.cfg.Jitter)
		log.Info().Dur("retry_in", delay).Msg("attempt failed; will retry")
		if r.handedOver {
			// The message copy that holds the task now comes back within a
			// visibility timeout and finds the attempt over.
			return
		}
		if w.lastDelivery(r.msg) || w.isLevel(r.msg.QueueURL) {
			rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
			renewed := w.renew(rctx, log, r.msg, delay)
			rcancel()
			if renewed {
				return
			}
		}
		w.persist(log, "retry scheduling", func(ctx context.Context) error {
			return w.queue.SetVisibility(ctx, r.q.URL, r.msg.ReceiptHandle, delay)
		})
		return
	}
	if res.Attempt > 1 {
		w.persist(log, "attempt record", w.storeWrite(log, func(ctx context.Context) error { return w.store.PutAttempt(ctx, res) }))
	}
	m := r.msg
	if r.handedOver {
		// Deleted at the handover; the fresh copy is acknowledged by the
		// worker that next receives it, which finds the result.
		m.ReceiptHandle = ""
	}
	if w.recordFinal(log, res, m, func() bool { return w.lease(r).Held(w.cfg.Now()) }) {
		log.Info().Dur("took", res.FinishedAt.Sub(res.StartedAt)).Msg("task finished")
	}
}

// errLeaseGone stops the retries of a final result whose attempt lost its
// lease meanwhile.
var errLeaseGone = errors.New("the attempt's lease ran out")

// recordFinal stores a task's final result (the first one written wins) and
// only then acknowledges its message. It reports whether the result is
// stored; if it is not, the message stays, comes back when its lease runs
// out, and the task runs again.
//
// held, when not nil, is asked before each try: an attempt that lost its
// lease meanwhile records only its own attempt.
func (w *Worker) recordFinal(log zerolog.Logger, res *plan.Result, m sqs.Message, held func() bool) bool {
	mine := false
	stored := w.persist(log, "result", func(ctx context.Context) error {
		if held != nil && !held() {
			return errLeaseGone
		}
		err := w.store.PutResult(ctx, res)
		if errors.Is(err, plan.ErrExists) {
			log.Warn().Msg("a result was already recorded; keeping the first")
			return nil
		}
		if err != nil {
			w.storeFailed(log, err)
		}
		mine = err == nil
		return err
	})
	if !stored && held != nil && !held() {
		log.Warn().Msg("lease ran out before the result was stored: recording only its own attempt")
		w.persist(log, "attempt record", w.storeWrite(log, func(ctx context.Context) error { return w.store.PutAttempt(ctx, res) }))
		return false
	}
	if !stored {
		log.Error().Msg("result not stored: leaving the message on the queue")
		return false
	}
	// Only the result stored is indexed, and only once stored, before the
	// message goes: should this worker stop in between, the message comes
	// back and its next receiver writes the end key. When another result
	// was there first (or this one landed on a try that seemed to fail),
	// that one is indexed.
	indexed := res
	if !mine && res.Group != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		indexed, _ = lifecycle.Ended(ctx, w.store, res.ID)
		cancel()
	}
	w.indexEnd(log, indexed)
	w.ack(m)
	w.finished.Add(1)
	return true
}

// indexEnd writes the group index's end key of a stored final result (a
// grouped task's only extra request), best effort: while it is missing,
// readers of the group read the task itself.
func (w *Worker) indexEnd(log zerolog.Logger, res *plan.Result) {
	if res == nil || res.Group == "" {
		return
	}
	w.persistWithin(log, "group index entry", 10*time.Second, w.storeWrite(log, func(ctx context.Context) error {
		return lifecycle.IndexEnd(ctx, w.store, res)
	}))
}

// finishUnstarted ends a task that never ran (cancelled, lost too often)
// with the result the lifecycle built.
func (w *Worker) finishUnstarted(log zerolog.Logger, res *plan.Result, m sqs.Message) {
	if w.recordFinal(log, res, m, nil) {
		log.Info().Str("state", string(res.State)).Str("why", res.Error).Msg("task ended without running")
	}
}

// release gives an unfinished attempt back: the claim is withdrawn so the
// attempt is not counted, and the message becomes visible at once.
//
// Release is best effort, bounded to a few seconds, since it runs while the
// worker stops: a claim left behind only makes the next run count one more
// attempt, and a message not made visible returns when its lease runs out.
func (w *Worker) release(r *run) {
	log := r.log
	// The long poll the stop signal cut short may still be open at SQS: a
	// message released now would go to it and stay hidden for a whole
	// visibility timeout. Wait until it has ended (the receive wait at most,
	// while the heartbeat still holds the lease).
	if d := time.Unix(0, w.pollOpenUntil.Load()).Sub(w.cfg.Now()); d > 0 {
		log.Info().Dur("wait", d).Msg("waiting for the receive cut short to end before releasing")
		time.Sleep(d)
	}
	w.persistWithin(log, "claim withdrawal", 5*time.Second, func(ctx context.Context) error { return w.store.Unclaim(ctx, r.task.ID, r.marker.Attempt) })
	w.persistWithin(log, "running marker removal", 5*time.Second, func(ctx context.Context) error { return w.store.DeleteRunning(ctx, r.task.ID, r.marker.Attempt) })
	if r.handedOver {
		log.Info().Msg("task released; its message copy returns within a visibility timeout")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if (w.lastDelivery(r.msg) || w.isLevel(r.msg.QueueURL)) && w.renew(ctx, log, r.msg, 0) {
		log.Info().Msg("task released to the queue as a fresh message")
		return
	}
	if err := w.queue.SetVisibility(ctx, r.q.URL, r.msg.ReceiptHandle, 0); err != nil {
		log.Warn().Err(err).Msg("cannot release the message; it returns when its lease runs out")
		return
	}
	log.Info().Msg("task released to the queue")
}

// abandon leaves an attempt whose lease was lost as a dead worker's would
// be: the claim and the running marker stay (the marker goes stale, and the
// next worker takes the next attempt) and the message is not touched. By
// now the message may be visible again or held by a worker running that
// next attempt: withdrawing the claim would let a duplicate delivery claim
// this attempt afresh beside it, deleting the marker could delete the other
// worker's, and a stale receipt handle must not touch its message.
func (w *Worker) abandon(r *run) {
	r.log.Warn().Msg("lease lost: the attempt is left to the next worker")
}

// ack hands a message to the batching acknowledger (none: nothing to do).
func (w *Worker) ack(m sqs.Message) {
	if m.ReceiptHandle != "" {
		w.acks.ack(m.QueueURL, m.ReceiptHandle)
	}
}

func (w *Worker) retryLater(ctx context.Context, log zerolog.Logger, m sqs.Message, d time.Duration) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if (w.lastDelivery(m) || w.isLevel(m.QueueURL)) && w.renew(cctx, log, m, d) {
		return
	}
	if err := w.queue.SetVisibility(cctx, m.QueueURL, m.ReceiptHandle, d); err != nil {
		log.Warn().Err(err).Msg("cannot reschedule the message; it returns when its lease runs out")
	}
}

// lastDelivery reports whether m is the last delivery SQS allows before its
// redrive policy moves the message to the dead-letter queue, unread, on the
// next receive: a message left for later now (retried, released, hidden
// while another worker runs the task) would end there with nothing in the
// store to say so, and poll would report the task queued for ever.
func (w *Worker) lastDelivery(m sqs.Message) bool {
	n := w.maxReceive[m.QueueURL]
	return n > 0 && m.ReceiveCount >= n
}

// maxDelay is SQS's limit on a message's delay.
const maxDelay = 15 * time.Minute

// renew replaces a message at its last delivery, or one of a priority
// level, by a fresh copy (receive count zero) in its inbox that becomes
// visible after d (at most SQS's 15 minutes), then deletes the old one: the
// task goes on instead of being dead-lettered for having been received
// often, and where every worker of the queue looks. A copy sent while the delete fails is a
// duplicate delivery, which the claim makes harmless. It reports whether
// the copy was sent.
func (w *Worker) renew(ctx context.Context, log zerolog.Logger, m sqs.Message, d time.Duration) bool {
	attrs := maps.Clone(m.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs["taskiq_renewed"] = m.MessageID
	if _, err := w.queue.Send(ctx, w.inboxOf(m.QueueURL), sqs.Entry{Body: m.Body, Attributes: attrs, Delay: min(d, maxDelay)}); err != nil {
		log.Warn().Err(err).Int("receive_count", m.ReceiveCount).Msg("cannot renew a message at its last delivery; it may reach the dead-letter queue")
		return false
	}
	w.ack(m)
	if w.lastDelivery(m) {
		log.Info().Int("receive_count", m.ReceiveCount).Msg("message renewed at its last delivery before the redrive limit")
	} else {
		log.Debug().Dur("delay", d).Msg("message of a priority level renewed into its inbox")
	}
	return true
}

// deadLetter moves a message that can never run to the dead-letter queue with
// the reason; without one, it is left for the queue's redrive policy.
func (w *Worker) deadLetter(ctx context.Context, log zerolog.Logger, q QueueRef, m sqs.Message, reason error) {
	log.Error().Err(reason).Msg("task message cannot be run")
	if w.cfg.DeadLetterURL == "" {
		w.retryLater(ctx, log, m, w.cfg.VisibilityTimeout)
		return
	}
	attrs := map[string]string{
		"taskiq_reason":       reason.Error(),
		"taskiq_source_queue": w.inboxOf(q.URL),
		"taskiq_message_id":   m.MessageID,
		"taskiq_worker":       w.cfg.Info.String(),
	}
	if ids, ok := m.Attributes[plan.AttrPack]; ok {
		attrs[plan.AttrPack] = ids // a pack dead-lettered whole: dlq list names its tasks
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	body := m.Body
	if body == "" {
		body = " " // SQS refuses empty bodies
	}
	if _, err := w.queue.Send(cctx, w.cfg.DeadLetterURL, sqs.Entry{Body: body, Attributes: attrs}); err != nil {
		log.Error().Err(err).Msg("cannot move the message to the dead-letter queue; leaving it on its queue")
		w.retryLater(ctx, log, m, w.cfg.VisibilityTimeout)
		return
	}
	w.ack(m)
	log.Warn().Msg("message moved to the dead-letter queue")
}

// persist retries a write until it succeeds, for up to 15 minutes (the
// heartbeat holds the lease meanwhile) or until Abort: results and
// acknowledgements must survive an outage of the store. It reports whether
// the write was done.
func (w *Worker) persist(log zerolog.Logger, what string, f func(context.Context) error) bool {
	return w.persistWithin(log, what, 15*time.Minute, f)
}

// persistWithin retries a write for up to budget, and not at all when SQS
// says a retry cannot help.
func (w *Worker) persistWithin(log zerolog.Logger, what string, budget time.Duration, f func(context.Context) error) bool {
	deadline := time.Now().Add(budget)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), min(30*time.Second, budget))
		err := f(ctx)
		cancel()
		if err == nil {
			return true
		}
		if errors.Is(err, errLeaseGone) {
			return false
		}
		if sqs.Permanent(err) {
			log.Error().Err(err).Msgf("%s refused for good; not retrying", what)
			return false
		}
		if time.Now().After(deadline) {
			log.Error().Err(err).Msgf("giving up on the %s", what)
			return false
		}
		d := min(time.Duration(i+1)*500*time.Millisecond, 5*time.Second)
		log.Warn().Err(err).Dur("retry_in", d).Msgf("%s failed", what)
		select {
		case <-time.After(d):
		case <-w.abort:
			log.Error().Err(err).Msgf("stopping now: giving up on the %s", what)
			return false
		}
	}
}

// storeWrite wraps a store write for persist: a failure marks the store
// down, so that nothing more is received until it works again.
func (w *Worker) storeWrite(log zerolog.Logger, f func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		err := f(ctx)
		if err != nil {
			w.storeFailed(log, err)
		}
		return err
	}
}
