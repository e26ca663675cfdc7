package worker

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Priority, as the fetch loop keeps it (plan.Band says why it is built so).
// A task arrives in its logical queue's inbox, or, when its submit filled
// a SendMessageBatch for its level, in the level itself, with a hint in the
// inbox that names the level (ops/route.go). A worker with free slots
// first drains the inboxes (up to drainBatches receives each, until one
// comes back short), takes the highest tasks it found that are not below
// the highest level known to hold messages, parks the others in their
// levels, and then fills what slots are left from the levels, highest
// first. A level is known to hold messages when this worker parked there,
// when a hint said another worker or a submit sent there, or at a sweep;
// it is forgotten when a receive finds it empty. A worker that does not
// receive a hint does not know the level holds messages: a deep level's
// submit sends several, staggered, so that more than one worker wakes, and
// the sweep is the net. When nothing is found anywhere the worker
// long-polls its inbox alone: an idle worker costs one receive per wait,
// and a task of any priority reaches it at once.
//
// Parking sends a copy, then a hint to the inbox (which wakes an idle
// worker, who then looks at the levels), then deletes the original: a
// worker killed in between leaves a duplicate, which the claim makes
// harmless, never a lost task. A parked copy starts with a receive count of
// zero, so priority never moves a message towards the dead-letter queue.

const (
	// drainBatches bounds the receives one inbox gets per fetch: a deep
	// inbox is sorted into the levels a hundred messages at a time.
	drainBatches = 10
	// levelSweep is how often every level is asked even when none is
	// known to hold messages: the net under a hint lost with the worker
	// that received it (a worker parked, the one woken died before it
	// looked), at a cost of one receive per level every five minutes.
	levelSweep = 5 * time.Minute
	// emptyRecheck is how long an inbox found empty is not asked again by
	// a busy worker's receives, so that a worker running tasks back to
	// back from a level does not ask the empty inbox before each one. The
	// asks are bounded in time, not per task: once a second costs 0.2
	// receives a task at 5 tasks a second (moto, where four times a
	// second cost 0.8), 0.02 at 50. It is also the time a task sent
	// to the inbox meanwhile may wait behind those of a lower level; an
	// idle worker's long poll takes it at once.
	emptyRecheck = time.Second
)

// splitQueues parts a worker's queues into inboxes (in the order given)
// and levels (highest first, the order given within a level).
func splitQueues(qs []QueueRef) (inboxes, levels []QueueRef) {
	for _, q := range qs {
		if q.Level {
			levels = append(levels, q)
		} else {
			inboxes = append(inboxes, q)
		}
	}
	slices.SortStableFunc(levels, func(a, b QueueRef) int { return cmp.Compare(b.Min, a.Min) })
	return inboxes, levels
}

// isLevel reports whether url is one of the worker's levels. A message of
// a level is never left there for later (released, retried, put off): it
// would come back where no worker may look until the next sweep, so it is
// renewed into its inbox instead.
func (w *Worker) isLevel(url string) bool {
	for _, l := range w.levels {
		if l.URL == url {
			return true
		}
	}
	return false
}

// inboxOf is where a message of queue url goes back to: its inbox when url
// is a level, else url.
func (w *Worker) inboxOf(url string) string {
	if w.isLevel(url) {
		return plan.InboxOf(url)
	}
	return url
}

// levelFor is the level of logical queue name that a task of the given
// priority is parked in, if the worker serves it.
func (w *Worker) levelFor(name string, priority int) (QueueRef, bool) {
	want := plan.LevelFor(priority).Name
	for _, l := range w.levels {
		if l.Name == name && l.Band == want {
			return l, true
		}
	}
	return QueueRef{}, false
}

// received is a message, the queue it came from and its priority.
type received struct {
	sqs.Message
	q    QueueRef
	prio int
	// at is when the receive that took it was issued, for what a
	// read-ahead holds: its lease runs from then (zero: unknown).
	at time.Time
}

func tag(msgs []sqs.Message, q QueueRef) []received {
	out := make([]received, len(msgs))
	for i, m := range msgs {
		out[i] = received{Message: m, q: q, prio: plan.MessagePriority(m.Attributes, []byte(m.Body))}
	}
	return out
}

// receive takes up to max messages, the highest priority first (see the
// comment at the top of this file). A worker given no levels reads its
// queues in order: one queue is simply long-polled; with several, each is
// asked without waiting, and only when all are empty does the worker wait,
// at most a second, on the first.
func (w *Worker) receive(ctx context.Context, max int, wait time.Duration) ([]received, QueueRef, error) {
	if len(w.levels) == 0 {
		return w.receivePlain(ctx, max, wait)
	}
	now := w.cfg.Now()
	if now.Sub(w.sweptAt) >= levelSweep {
		for _, l := range w.levels {
			w.known[l.URL] = true
		}
		w.sweptAt = now
	}
	for _, u := range w.again.due(now) {
		w.log.Debug().Str("level", u).Msg("looking again at a priority level found empty")
		w.known[u] = true
	}
	for _, u := range w.packs.takeHandedOn() {
		w.known[u] = true // tasks of a pack handed on to it
	}
	var cand []received
	q := w.inboxes[0]
	var err error
	if !w.waitedIdle || len(w.inboxes) > 1 {
		// Right after a long poll that found nothing a worker's one inbox
		// is not asked again without waiting: idleness costs one receive
		// a wait. (With several, the others are asked here.)
		cand, q, err = w.drain(ctx, now)
	}
	w.waitedIdle = false
	if err != nil {
		if len(cand) == 0 {
			return nil, q, err
		}
		// What was taken before the error is dealt with now; the next
		// receive meets the error again if it lasts.
		w.log.Warn().Err(err).Str("queue", q.Name).Msg("receive failed part way through the inbox")
		err = nil
	}
	if len(cand) == 0 && !w.anyKnown() {
		// Nothing anywhere: wait on the first inbox, then look at the
		// rest of what came in meanwhile before choosing.
		q = w.inboxes[0]
		wt := wait
		if len(w.inboxes) > 1 {
			wt = min(wait, time.Second)
		}
		if at, ok := w.again.next(w.cfg.VisibilityTimeout + time.Second); ok && at.Sub(now) < wt {
			// Woken in time for a level's first look again; the later
			// ones, minutes apart, wait for the end of the long poll
			// rather than cost a receive more each.
			wt = at.Sub(now).Truncate(time.Second) + time.Second
		}
		var msgs []sqs.Message
		msgs, err = w.queue.Receive(ctx, q.URL, min(max, sqs.MaxBatch), wt, w.cfg.VisibilityTimeout)
		if err != nil {
			return nil, q, err
		}
		cand = w.sortHints(tag(msgs, q))
		w.waitedIdle = len(msgs) == 0
		if len(msgs) > 0 {
			delete(w.emptyAt, q.URL)
		}
		// What came in meanwhile is looked at before choosing when there
		// is a choice: the wait returned as many as there are slots, or a
		// hint, which others of the same submit may follow. Fewer tasks
		// than slots all start at once, with no round trip more (the slots
		// left ask again right away).
		if len(msgs) > 0 && (len(msgs) >= min(max, sqs.MaxBatch) || len(cand) < len(msgs)) {
			more, _, _ := w.drain(ctx, w.cfg.Now())
			cand = append(cand, more...)
		}
	}
	return w.take(ctx, cand, max), q, nil
}

// anyKnown reports whether a level is known to hold messages.
func (w *Worker) anyKnown() bool {
	for _, l := range w.levels {
		if w.known[l.URL] {
			return true
		}
	}
	return false
}

// drain receives from every inbox not found empty in the last
// emptyRecheck, without waiting, until a receive comes back short or
// drainBatches have been made. Hints are acknowledged and mark their
// queue's levels known. An error ends it with what was received so far.
func (w *Worker) drain(ctx context.Context, now time.Time) ([]received, QueueRef, error) {
	var out []received
	q := w.inboxes[0]
	for _, in := range w.inboxes {
		if at, ok := w.emptyAt[in.URL]; ok && now.Sub(at) < emptyRecheck {
			continue
		}
		for range drainBatches {
			msgs, err := w.queue.Receive(ctx, in.URL, sqs.MaxBatch, 0, w.cfg.VisibilityTimeout)
			if err != nil {
				return out, in, err
			}
			if len(msgs) == 0 {
				w.emptyAt[in.URL] = now
				break
			}
			delete(w.emptyAt, in.URL)
			out = append(out, w.sortHints(tag(msgs, in))...)
			if len(msgs) < sqs.MaxBatch {
				break
			}
		}
	}
	return out, q, nil
}

// sortHints acknowledges the hints among msgs, marking the levels they
// name known (a hint that names none of the queue's levels, as a parking
// worker sends, marks them all), and returns the rest.
func (w *Worker) sortHints(msgs []received) []received {
	out := msgs[:0]
	for _, m := range msgs {
		band, ok := m.Attributes[plan.AttrHint]
		if !ok {
			out = append(out, m)
			continue
		}
		named := false
		for _, l := range w.levels {
			if l.Name == m.q.Name && l.Band == band {
				w.known[l.URL] = true
				named = true
			}
		}
		if !named {
			for _, l := range w.levels {
				if l.Name == m.q.Name {
					w.known[l.URL] = true
				}
			}
		}
		w.ack(m.Message)
	}
	return out
}

// take returns up to max messages, highest level first: going down the
// levels, first what of cand belongs at or above the level, then what the
// level gives when it is known to hold messages (a level found empty is
// forgotten). What of cand is not taken is parked.
func (w *Worker) take(ctx context.Context, cand []received, max int) []received {
	slices.SortStableFunc(cand, func(a, b received) int { return cmp.Compare(b.prio, a.prio) })
	var out []received
	ci := 0
	fromCand := func(floor int, bounded bool) {
		for ci < len(cand) && len(out) < max && (!bounded || plan.LevelFor(cand[ci].prio).Min >= floor) {
			out = append(out, cand[ci])
			ci++
		}
	}
	w.deep = ""
	for _, l := range w.levels {
		fromCand(l.Min, true)
		if len(out) >= max || ctx.Err() != nil {
			break
		}
		if !w.known[l.URL] {
			continue
		}
		asked := min(max-len(out), sqs.MaxBatch)
		msgs, err := w.queue.Receive(ctx, l.URL, asked, 0, w.cfg.VisibilityTimeout)
		if err != nil {
			w.log.Warn().Err(err).Str("queue", l.Name).Str("band", l.Band).Msg("cannot receive from a priority level")
			break
		}
		if len(msgs) == 0 {
			w.known[l.URL] = false
			if at, armed := w.again.emptied(l.URL, w.cfg.Now(), w.cfg.VisibilityTimeout+time.Second); armed {
				w.log.Debug().Str("queue", l.Name).Str("band", l.Band).Time("again_at", at).Msg("priority level found empty; asking it again later")
			}
			continue
		}
		w.again.gave(l.URL)
		out = append(out, tag(msgs, l)...)
		if len(msgs) == asked && len(cand) == ci {
			// All it was asked for, and nothing higher was left waiting:
			// the highest level with messages, likely more of them.
			w.deep = l.URL
		}
	}
	fromCand(0, false)
	w.park(ctx, cand[ci:])
	return out
}

// aheadResult is what a read-ahead found: whether its level gave
// messages, and whether it came back short (the level is no longer deep).
type aheadResult struct {
	url         string
	gave, short bool
}

// readAhead starts, when the last receive found a deep level (w.deep) and
// slots may free up while the next receive is under way, a second receive
// beside it: as soon as a slot frees (and those that free within
// gatherWindow), it takes as many messages from that level as it holds
// slots, hands them to their tasks at once, and goes on while the level
// gives all it asks and the fetch loop's receive is out. On moto a
// receive from a level hundreds deep takes half a second, and while the
// fetch loop waited for it the slots its tasks freed stayed empty: a
// worker at concurrency 16 ran four or five tasks at a time.
//
// It keeps every rule of a receive: never more messages than free slots
// (each starts at once, well within its lease), nothing while the store is
// down, given back when the stop signal comes. It reads only the level
// the last receive took from with nothing higher left behind, and stops
// when the fetch loop's receive returns, so that the fetch loop's next
// look at the inboxes and the higher levels decides again; a worker given
// no levels, or MaxTasks, never reads ahead. It returns what the fetch
// loop calls once its own receive has returned.
func (w *Worker) readAhead(ctx, workCtx context.Context, wg *sync.WaitGroup) func() {
	if w.deep == "" || w.ahead || w.cfg.MaxTasks > 0 || cap(w.slots) < 2 {
		return func() {}
	}
	var l QueueRef
	for _, q := range w.levels {
		if q.URL == w.deep {
			l = q
		}
	}
	w.ahead = true
	back := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		res := aheadResult{url: l.URL}
		defer func() { w.aheadDone <- res }()
		for {
			select {
			case w.slots <- struct{}{}:
			case <-back:
				return
			case <-ctx.Done():
				return
			}
			got := 1 + w.gatherSlots(ctx, 1)
			if down, _ := w.out.state(); down {
				w.releaseSlots(got)
				return
			}
			if held := w.takeHeld(got); len(held) > 0 {
				// What was read ahead before starts first.
				w.releaseSlots(got - len(held))
				w.dispatch(workCtx, wg, held)
				continue
			}
			ask := got
			if w.canHold() {
				ask = sqs.MaxBatch
			}
			rctx, done := stoppable(ctx)
			began := w.cfg.Now()
			msgs, err := w.queue.Receive(rctx, l.URL, ask, 0, w.cfg.VisibilityTimeout)
			done()
			if err != nil {
				w.releaseSlots(got)
				if ctx.Err() == nil {
					w.log.Warn().Err(err).Str("queue", l.Name).Str("band", l.Band).Msg("cannot read ahead from a priority level")
				}
				return
			}
			w.cfg.Metrics.Received(l.Name, len(msgs), w.cfg.Now().Sub(began))
			rs := tag(msgs, l)
			for i := range rs {
				rs[i].at = began
			}
			if ctx.Err() != nil {
				w.giveBack(rs)
				w.releaseSlots(got)
				return
			}
			res.gave = res.gave || len(msgs) > 0
			now := min(len(rs), got)
			w.releaseSlots(got - now)
			w.dispatch(workCtx, wg, rs[:now])
			w.hold(rs[now:])
			if len(msgs) < ask {
				res.short = true
				return
			}
			select {
			case <-back:
				return
			default:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(back) }) }
}

// holdFor is how long a read-ahead may hold messages it took beyond its
// free slots, waiting for slots to free: a small share of the lease, so
// that what it holds starts well within it, or goes back untouched; and
// at most maxHold, so that what canHold lets it hold starts within the
// second a task sent to the inbox may already wait behind a level's
// (emptyRecheck): while messages are held nothing is received, and a
// long lease must not make a priority-10 task wait behind ten tasks of a
// minute each.
func (w *Worker) holdFor() time.Duration { return min(w.cfg.VisibilityTimeout/10, maxHold) }

// maxHold bounds holdFor: canHold's ten held tasks then start within
// maxHold/4, the emptyRecheck window.
const maxHold = 4 * emptyRecheck

// canHold reports whether a read-ahead may take a whole batch from its
// deep level whatever the slots free: when the worker's tasks end fast
// enough that ten more start well within holdFor. On moto a receive from
// a deep level takes most of a second, and a task's slot, taken when its
// receive is issued, was held more than half its time waiting on it:
// sixteen slots ran six tasks a second with two of them running
// (bench/README.md, "Peers").
func (w *Worker) canHold() bool {
	d := time.Duration(w.taskTime.Load())
	return d > 0 && time.Duration(sqs.MaxBatch)*d/time.Duration(cap(w.slots)) < w.holdFor()/4
}

// hold keeps messages a read-ahead took beyond its free slots, to be
// started before anything else is received (takeHeld). heldAt is when
// the receive of the oldest was issued, not when it is held here: a
// worker frozen in between must not count the freeze as none.
func (w *Worker) hold(msgs []received) {
	if len(msgs) == 0 {
		return
	}
	w.heldMu.Lock()
	defer w.heldMu.Unlock()
	at := msgs[0].at
	if at.IsZero() {
		at = w.cfg.Now()
	}
	if len(w.held) == 0 || at.Before(w.heldAt) {
		w.heldAt = at
	}
	w.held = append(w.held, msgs...)
	w.log.Debug().Int("messages", len(msgs)).Int("held", len(w.held)).Msg("holding tasks read ahead for the next free slots")
}

// takeHeld returns up to n held messages to start now. Held messages that
// found no slot within holdFor are given back untouched instead.
func (w *Worker) takeHeld(n int) []received {
	w.heldMu.Lock()
	if len(w.held) > 0 && w.cfg.Now().Sub(w.heldAt) > w.heldLimit() {
		late := w.held
		w.held = nil
		w.heldMu.Unlock()
		late = w.dropLapsed(late)
		if len(late) > 0 {
			w.log.Warn().Int("messages", len(late)).Msg("tasks read ahead found no free slot in time; giving them back")
		}
		w.handOnLate(late)
		return nil
	}
	defer w.heldMu.Unlock()
	k := min(n, len(w.held))
	out := slices.Clone(w.held[:k])
	w.held = w.held[k:]
	return out
}

// heldLimit is how long what is held now may wait: holdFor, or
// packHoldFor when all of it came in packs. Called with heldMu held.
func (w *Worker) heldLimit() time.Duration {
	for _, m := range w.held {
		if !isPacked(m.Message) {
			return w.holdFor()
		}
	}
	return w.packHoldFor()
}

// giveBackHeld gives back, untouched, what is held at the stop.
func (w *Worker) giveBackHeld() {
	w.heldMu.Lock()
	held := w.held
	w.held = nil
	w.heldMu.Unlock()
	w.giveBack(w.dropLapsed(held))
}

// dropLapsed returns the held messages whose lease may still be running,
// and lets go of the others without a call: a worker frozen (SIGSTOP) or
// starved past a held message's lease no longer holds it, SQS has made it
// visible again and another worker may run it by now. Renewing it would
// put a second copy in the inbox, and its receipt, stale, is refused or
// names the other worker's delivery. It comes back in its queue like the
// message of a worker that died.
func (w *Worker) dropLapsed(msgs []received) []received {
	now := w.cfg.Now()
	var keep []received
	lapsed := 0
	for _, m := range msgs {
		if !m.at.IsZero() && now.Sub(m.at) >= w.cfg.VisibilityTimeout-time.Second {
			lapsed++
			continue
		}
		keep = append(keep, m)
	}
	if lapsed > 0 {
		w.log.Info().Int("messages", lapsed).Msg("tasks read ahead were held past their lease; left to their next delivery")
	}
	return keep
}

// readAheadEnded takes in what a finished read-ahead found, so that its
// level gets its second look (recheck) and is no longer read ahead once it
// came back short. Its finding an empty level does not make the level
// forgotten: a hint may have told of new messages since, and the fetch
// loop's own receive sees for itself.
func (w *Worker) readAheadEnded() {
	select {
	case res := <-w.aheadDone:
		w.ahead = false
		if res.gave {
			w.again.gave(res.url)
		}
		if res.short && w.deep == res.url {
			w.deep = ""
		}
	default:
	}
}

// park moves messages to their levels: copies sent (ten a call), one hint
// per logical queue sent to its inbox, then the originals deleted. A
// message that cannot be parked is given back to its queue.
func (w *Worker) park(ctx context.Context, msgs []received) {
	if len(msgs) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	byLevel := map[string][]received{}
	var order []QueueRef
	for _, m := range msgs {
		l, ok := w.levelFor(m.q.Name, m.prio)
		if !ok || l.URL == m.QueueURL {
			w.giveBackOne(cctx, m, "it has no level on this worker")
			continue
		}
		if _, seen := byLevel[l.URL]; !seen {
			order = append(order, l)
		}
		byLevel[l.URL] = append(byLevel[l.URL], m)
	}
	var parked []received
	for _, l := range order {
		ms := byLevel[l.URL]
		for len(ms) > 0 {
			chunk := ms[:min(len(ms), sqs.MaxBatch)]
			ms = ms[len(chunk):]
			entries := make([]sqs.Entry, len(chunk))
			for k, m := range chunk {
				attrs := maps.Clone(m.Attributes)
				if attrs == nil {
					attrs = map[string]string{}
				}
				attrs["taskiq_parked"] = m.MessageID
				entries[k] = sqs.Entry{Body: m.Body, Attributes: attrs}
			}
			errs, err := w.queue.SendBatch(cctx, l.URL, entries)
			for k, m := range chunk {
				if err != nil || (k < len(errs) && errs[k] != nil) {
					w.giveBackOne(cctx, m, "it could not be parked")
					continue
				}
				w.known[l.URL] = true
				parked = append(parked, m)
			}
		}
	}
	hinted := map[string]bool{}
	for _, m := range parked {
		in := m.q
		if in.Level {
			continue // moved from a level: its own inbox's workers know of it
		}
		if hinted[in.URL] {
			continue
		}
		hinted[in.URL] = true
		if _, err := w.queue.Send(cctx, in.URL, sqs.Entry{Body: plan.HintBody, Attributes: map[string]string{plan.AttrHint: "levels"}}); err != nil {
			w.log.Warn().Err(err).Str("queue", in.Name).Msg("cannot hint that tasks were parked; idle workers find them at their next sweep")
		}
	}
	for _, m := range parked {
		w.ack(m.Message)
	}
	w.log.Debug().Int("parked", len(parked)).Msg("parked lower-priority messages")
}

// giveBackOne makes a message visible again at once.
func (w *Worker) giveBackOne(ctx context.Context, m received, why string) {
	if err := w.queue.SetVisibility(ctx, m.QueueURL, m.ReceiptHandle, 0); err != nil {
		w.log.Warn().Err(err).Str("message_id", m.MessageID).Msg("cannot give back a message (" + why + "); it returns when its lease runs out")
	}
}

// receivePlain reads a worker's queues in order when it has no levels.
func (w *Worker) receivePlain(ctx context.Context, max int, wait time.Duration) ([]received, QueueRef, error) {
	qs := w.inboxes
	if len(qs) == 1 {
		msgs, err := w.queue.Receive(ctx, qs[0].URL, max, wait, w.cfg.VisibilityTimeout)
		return tag(msgs, qs[0]), qs[0], err
	}
	now := w.cfg.Now()
	for _, q := range qs {
		if at, ok := w.emptyAt[q.URL]; ok && now.Sub(at) < emptyRecheck {
			continue
		}
		msgs, err := w.queue.Receive(ctx, q.URL, max, 0, w.cfg.VisibilityTimeout)
		if err != nil || len(msgs) > 0 {
			delete(w.emptyAt, q.URL)
			return tag(msgs, q), q, err
		}
		w.emptyAt[q.URL] = now
	}
	msgs, err := w.queue.Receive(ctx, qs[0].URL, max, min(wait, time.Second), w.cfg.VisibilityTimeout)
	return tag(msgs, qs[0]), qs[0], err
}

// recheck is when the levels that gave messages and were then found empty
// are to be asked again. What was in flight there at that time (a receive
// whose answer was lost, the tasks of a worker that is killed, frozen or
// cut off) comes back to the level when its lease runs out, where no hint
// tells of it. The first look again comes a lease of this worker's later;
// but the lease that hides a message is the one its holder set, which may
// be longer than this worker's (its own --visibility-timeout, extended at
// its last heartbeat), and the answer of that very look may be lost in
// turn. So a look that finds the level empty, with nothing given since,
// is followed by another after twice the wait, and so on while the wait
// is no longer than the sweep's: a task of a lost worker waits at most
// about its lease and one wait more (or for the sweep, when the lease is
// longer than that), and a backlog's end costs four receives a level
// over five minutes at a 20 s lease (21, 63, 147 and 315 s after, the
// last three at the end of the long poll under way), an idle worker that
// had none nothing.
type recheck struct {
	at      map[string]time.Time
	step    map[string]time.Duration // the wait that led to the look at
	pending map[string]bool          // gave messages since last found empty
}

// gave notes that level url gave messages.
func (r *recheck) gave(url string) {
	if r.pending == nil {
		r.pending = map[string]bool{}
	}
	r.pending[url] = true
}

// emptied notes that level url was found empty at now. If it gave messages
// since it was last, it is to be asked again after first; if this was a
// look again that found nothing (none pending for the level), after twice
// the last wait, unless that is longer than levelSweep. It returns when
// the level is to be asked again, if it is.
func (r *recheck) emptied(url string, now time.Time, first time.Duration) (time.Time, bool) {
	if r.at == nil {
		r.at, r.step = map[string]time.Time{}, map[string]time.Duration{}
	}
	if _, waiting := r.at[url]; waiting && !r.pending[url] {
		return time.Time{}, false // asked before its look again came (a hint, the sweep)
	}
	step := first
	if !r.pending[url] {
		if r.step[url] == 0 {
			return time.Time{}, false
		}
		step = 2 * r.step[url]
	}
	delete(r.pending, url)
	if step > max(first, levelSweep) {
		delete(r.step, url)
		delete(r.at, url)
		return time.Time{}, false
	}
	at := now.Add(step)
	r.at[url], r.step[url] = at, step
	return at, true
}

// due returns the levels whose look again is due at now, and forgets when
// it was (not its wait, which the next emptied doubles).
func (r *recheck) due(now time.Time) []string {
	var out []string
	for u, at := range r.at {
		if !now.Before(at) {
			out = append(out, u)
			delete(r.at, u)
		}
	}
	return out
}

// next is the earliest look again pending after a wait of at most
// within.
func (r *recheck) next(within time.Duration) (time.Time, bool) {
	var first time.Time
	for u, at := range r.at {
		if r.step[u] <= within && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}
