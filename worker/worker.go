package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// QueueRef is one SQS queue a worker serves: the inbox or one priority
// level of one logical queue (plan.Bands).
type QueueRef struct {
	// Name is the logical queue's name, Band the band's (plan.Bands).
	Name string
	Band string
	URL  string
	// Level marks a parking level, which holds the priorities from Min
	// up; a queue that is not a level is an inbox, or a plain queue of a
	// worker given no levels (each task runs in the order received).
	Level bool
	Min   int
}

// Config is everything a worker needs to know; zero values take the
// defaults documented on each field.
type Config struct {
	// Queues are read in this order: the first with messages wins, so
	// higher bands come first (and, within a band, the queues in the order
	// the user gave them).
	Queues []QueueRef
	// DeadLetterURL receives messages that cannot be decoded or fail
	// validation, with the reason; empty leaves them for the queue's own
	// redrive policy.
	DeadLetterURL string
	// DeadLetterCheck is how often the worker looks in DeadLetterURL for
	// tasks SQS moved there, to record them (deadletters.go); it also looks
	// once at start (default 5 min; negative: never).
	DeadLetterCheck time.Duration
	// Concurrency is how many tasks run at once (default 1).
	Concurrency int
	// VisibilityTimeout is the lease taken on each message (default 30 s);
	// the heartbeat extends it while the task runs.
	VisibilityTimeout time.Duration
	// Heartbeat is how often running markers are refreshed, cancel markers
	// checked and leases extended (default 3 s).
	Heartbeat time.Duration
	// WaitTime is the long-poll wait of one receive (default 20 s).
	WaitTime time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL (default 10 s).
	KillGrace time.Duration
	// ShutdownGrace is how long running tasks may go on after a stop signal
	// before they are stopped and released (default 30 s).
	ShutdownGrace time.Duration
	// MaxTasks stops the worker after it has finished that many tasks (0: no limit).
	MaxTasks int
	// IdleExit stops the worker once it has been idle that long (0: never).
	IdleExit time.Duration
	// InlineLimit is the largest output kept inside the result record
	// (default 64 KiB); larger output is stored as a log object.
	InlineLimit int64
	// MaxLostAttempts bounds how often a task may be taken again after its
	// worker died mid-run before it ends failed (default 3).
	MaxLostAttempts int
	// Verifier, when set, admits only tasks signed by one of its keys;
	// others go to the dead-letter queue unrun (default: not verified).
	Verifier *plan.Verifier
	// MaxTaskAge, with a Verifier, refuses tasks submitted longer ago
	// than this (see bind); 0 means no limit.
	MaxTaskAge time.Duration
	// Allow lists the command patterns that may run (CheckAllowed);
	// empty allows every command.
	Allow []string
	// PassEnv names the worker's variables (or globs) passed to tasks
	// beyond BaseEnv.
	PassEnv []string
	// Secrets resolves tasks' secret references when they start (nil:
	// a task with secrets fails).
	Secrets SecretResolver
	// VisibilityCap is how long after its receipt SQS keeps a message
	// hidden at most, however often its visibility is extended (default
	// 12 h, SQS's limit; tests make it small). A task that runs longer
	// hands its lease over to a fresh copy of its message before then.
	VisibilityCap time.Duration
	// Info identifies this worker in results and markers.
	Info plan.WorkerInfo
	// Version is reported in the worker's heartbeat record.
	Version string
	// TempDir holds captured output while a task runs (default os.TempDir()).
	TempDir string
	Log     zerolog.Logger
	// Metrics receives counts and timings (default: none).
	Metrics Metrics
	// Now and Jitter are injected by tests.
	Now    func() time.Time
	Jitter func() float64
}

func (c *Config) defaults() {
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.VisibilityTimeout <= 0 {
		c.VisibilityTimeout = 30 * time.Second
	}
	if c.VisibilityTimeout < 2*time.Second {
		c.VisibilityTimeout = 2 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = min(3*time.Second, c.VisibilityTimeout/3)
	}
	if c.DeadLetterCheck == 0 {
		c.DeadLetterCheck = 5 * time.Minute
	}
	if c.WaitTime <= 0 {
		c.WaitTime = 20 * time.Second
	}
	if c.KillGrace <= 0 {
		c.KillGrace = 10 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 30 * time.Second
	}
	if c.InlineLimit <= 0 {
		c.InlineLimit = 64 * 1024
	}
	if c.MaxLostAttempts <= 0 {
		c.MaxLostAttempts = 3
	}
	if c.VisibilityCap <= 0 {
		c.VisibilityCap = 12 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
}

// Worker consumes tasks from its queues until stopped.
type Worker struct {
	cfg   Config
	queue Queue
	// packs is the seam under queue that takes packs apart (pack.go).
	packs *packQueue
	store Store
	log   zerolog.Logger

	slots chan struct{}
	acks  *acker
	// out is set while the store is down: nothing is received then.
	out outage

	mu      sync.Mutex
	running map[string]*run // by task id
	// The fetch loop's own (receive only): the inboxes and levels of
	// Queues (levels.go), when each queue was last found empty, which
	// levels may hold messages, which are to be asked again once a lease
	// has run out, and when every level was last asked.
	inboxes, levels []QueueRef
	emptyAt         map[string]time.Time
	known           map[string]bool
	again           recheck
	sweptAt         time.Time
	waitedIdle      bool
	// deep is the level the last receive took all it asked for from (the
	// highest known to hold messages), where a read-ahead may go while
	// the next receive is under way; ahead is set while one runs, and
	// aheadDone tells the fetch loop what it found (levels.go).
	deep      string
	ahead     bool
	aheadDone chan aheadResult
	// maxReceive is each queue's redrive limit (by URL; absent or 0: none),
	// read once at start.
	maxReceive map[string]int

	finished atomic.Int64
	// taskTime is the moving mean of how long a message holds its slot
	// (nanoseconds; 0 until one has ended).
	taskTime atomic.Int64
	// held are messages a read-ahead took beyond its free slots, started
	// before the next receive (levels.go); heldAt is when the oldest came.
	heldMu sync.Mutex
	held   []received
	heldAt time.Time
	// lastActive is when a task last arrived or finished (unix nanoseconds),
	// for IdleExit.
	lastActive atomic.Int64
	// lastReceive is when a receive last succeeded (unix nanoseconds), and
	// stopping is set once shutdown begins: both for Healthy.
	lastReceive atomic.Int64
	stopping    atomic.Bool
	// stopRequested is set when a stop request in the store ended the fetch loop.
	stopRequested atomic.Bool
	// requestStop ends the fetch loop as a stop signal does; the heartbeat
	// calls it when a stop request for this worker is in the store.
	requestStop context.CancelFunc
	started     time.Time
	// pollOpenUntil is, once the stop signal has cut a long poll short,
	// when SQS ends that poll on its side (unix nanoseconds), for release.
	pollOpenUntil atomic.Int64
	// abort is closed by Abort: stop everything now, still releasing.
	abort     chan struct{}
	abortOnce sync.Once
	// ended receives (without blocking the sender) when a handled message
	// has let go of its slot.
	ended chan struct{}
}

// New builds a worker; it does nothing until Run.
func New(cfg Config, q Queue, s Store) *Worker {
	cfg.defaults()
	w := &Worker{
		cfg:     cfg,
		queue:   countedQueue{q, cfg.Metrics},
		store:   countedStore{s, cfg.Metrics},
		log:     cfg.Log.With().Str("worker", cfg.Info.ID).Logger(),
		slots:   make(chan struct{}, cfg.Concurrency),
		running: map[string]*run{},
		emptyAt: map[string]time.Time{},
		known:   map[string]bool{},
		abort:   make(chan struct{}),
		ended:   make(chan struct{}, 1),

		aheadDone: make(chan aheadResult, 1),
	}
	w.packs = newPackQueue(w.queue, w.log, cfg.Queues)
	w.queue = w.packs
	w.inboxes, w.levels = splitQueues(cfg.Queues)
	return w
}

// Abort stops running tasks at once (a second stop signal). Their messages
// are still released so that another worker takes them without delay.
func (w *Worker) Abort() {
	w.abortOnce.Do(func() { close(w.abort) })
}

// Healthy reports why the worker is not doing its job, or nil: it is
// shutting down, or it has not been able to receive for a while.
func (w *Worker) Healthy() error {
	if w.stopping.Load() {
		return errors.New("shutting down")
	}
	limit := max(3*w.cfg.WaitTime, time.Minute)
	if since := w.cfg.Now().Sub(time.Unix(0, w.lastReceive.Load())); since > limit {
		return fmt.Errorf("no successful receive for %s", since.Round(time.Second))
	}
	return nil
}

// Finished reports how many tasks this worker has finished.
func (w *Worker) Finished() int { return int(w.finished.Load()) }

// Run receives and runs tasks until ctx is cancelled (then it shuts down
// gracefully: no new receives, running tasks get ShutdownGrace to finish),
// until MaxTasks have finished, or until it has been idle for IdleExit.
func (w *Worker) Run(ctx context.Context) error {
	if len(w.cfg.Queues) == 0 {
		return errors.New("worker has no queue to serve")
	}
	w.started = w.cfg.Now()
	w.acks = newAcker(w.queue, w.log)
	w.readRedriveLimits(ctx)
	// tasks run on their own context: stopping the fetch loop must not kill
	// them; only the shutdown grace or Abort does.
	workCtx, stopWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopWork(nil)

	ctx, w.requestStop = context.WithCancel(ctx)
	defer w.requestStop()

	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); w.heartbeatLoop(hbCtx) }()

	dlDone := make(chan struct{})
	go func() { defer close(dlDone); w.deadLetterLoop(ctx) }()
	defer func() { w.requestStop(); <-dlDone }() // its release of what it holds is brief

	var wg sync.WaitGroup
	w.lastReceive.Store(w.started.UnixNano())
	fetchErr := w.fetchLoop(ctx, workCtx, &wg)
	w.stopping.Store(true)
	w.giveBackHeld()

	// Shutdown: wait for running tasks, up to the grace period.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if n := w.runningCount(); n > 0 {
		w.log.Info().Int("running", n).Dur("grace", w.cfg.ShutdownGrace).Msg("stopping: waiting for running tasks")
	}
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		w.log.Warn().Msg("shutdown grace over: stopping running tasks and releasing them")
		stopWork(errShutdown)
		<-done
	case <-w.abort:
		w.log.Warn().Msg("stopping running tasks now and releasing them")
		stopWork(errShutdown)
		<-done
	}
	w.giveBackHeld() // what a read-ahead took as the stop came
	w.acks.close()
	stopHB()
	<-hbDone
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.store.DeleteWorker(cctx, w.cfg.Info.ID)
	if w.stopRequested.Load() {
		_ = w.store.DeleteWorkerStop(cctx, w.cfg.Info.ID)
	}
	w.log.Info().Int("finished", w.Finished()).Msg("worker stopped")
	return fetchErr
}

var errShutdown = errors.New("worker shutting down")

// readRedriveLimits learns each queue's maxReceiveCount, so that the last
// delivery SQS allows of a message is known (lastDelivery). Best effort: a
// queue whose limit cannot be read is treated as having none.
func (w *Worker) readRedriveLimits(ctx context.Context) {
	w.maxReceive = map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, q := range w.cfg.Queues {
		wg.Add(1)
		go func() { // at once: a worker's start waits for them
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			n, err := w.queue.MaxReceiveCount(cctx, q.URL)
			cancel()
			if err != nil {
				w.log.Warn().Err(err).Str("queue", q.Name).Str("band", q.Band).Msg("cannot read the queue's redrive policy")
				return
			}
			mu.Lock()
			w.maxReceive[q.URL] = n
			mu.Unlock()
		}()
	}
	wg.Wait()
}

func (w *Worker) runningCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// fetchLoop receives while there are free slots, and hands each message to
// a goroutine that holds one slot until the task is done.
func (w *Worker) fetchLoop(ctx, workCtx context.Context, wg *sync.WaitGroup) error {
	w.touch()
	failures := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		if w.cfg.MaxTasks > 0 && w.Finished() >= w.cfg.MaxTasks {
			return nil
		}
		if w.cfg.MaxTasks > 0 && w.reserved() >= w.cfg.MaxTasks {
			// The tasks in hand may reach the limit, but one that fails
			// with attempts left or is released does not finish: wait for
			// one to end and count again, rather than exit short.
			select {
			case <-w.ended:
			case <-ctx.Done():
				return nil
			}
			continue
		}
		// Receive nothing while the store is down: what cannot be claimed
		// would come back again and again until it is dead-lettered.
		if !w.awaitStore(ctx) {
			return nil
		}
		// Wait for at least one free slot.
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		free := 1 + cap(w.slots) - len(w.slots)
		if w.cfg.MaxTasks > 0 {
			free = min(free, w.cfg.MaxTasks-w.reserved())
		}
		// Grab the remaining free slots now so that what we receive always
		// has a slot: never receive more than we can run.
		got := 1
		for got < free {
			select {
			case w.slots <- struct{}{}:
				got++
				continue
			default:
			}
			break
		}
		got += w.gatherSlots(ctx, got)
		if held := w.takeHeld(got); len(held) > 0 {
			// What a read-ahead took beyond its slots starts before
			// anything more is received.
			w.releaseSlots(got - len(held))
			w.dispatch(workCtx, wg, held)
			continue
		}
		wait := w.cfg.WaitTime
		if w.cfg.IdleExit > 0 && w.runningCount() == 0 {
			left := w.cfg.IdleExit - w.cfg.Now().Sub(time.Unix(0, w.lastActive.Load()))
			if left <= 0 {
				w.releaseSlots(got)
				w.log.Info().Dur("idle", w.cfg.IdleExit).Msg("idle: exiting")
				return nil
			}
			wait = min(wait, left.Round(time.Second)+time.Second)
		}
		w.readAheadEnded()
		primaryBack := w.readAhead(ctx, workCtx, wg)
		began := w.cfg.Now()
		msgs, q, err := w.receiveStoppable(ctx, min(got, sqs.MaxBatch), wait)
		primaryBack()
		if err == nil {
			w.lastReceive.Store(w.cfg.Now().UnixNano())
			w.cfg.Metrics.Received(q.Name, len(msgs), w.cfg.Now().Sub(began))
		}
		if err != nil {
			w.releaseSlots(got)
			if ctx.Err() != nil {
				if errors.Is(err, context.Canceled) {
					// A long poll cut short goes on at SQS, and what it
					// takes stays hidden for a whole visibility timeout:
					// note when it ends, so that release waits for it.
					w.pollOpenUntil.Store(began.Add(wait + time.Second).UnixNano())
				}
				return nil
			}
			failures++
			// Idle means asked and found nothing: time the endpoint cannot
			// be reached does not count towards --idle-exit.
			w.touch()
			d := probeBackoff(failures - 1)
			w.log.Error().Err(err).Str("queue", q.Name).Str("band", q.Band).Dur("retry_in", d).Msg("receive failed")
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if ctx.Err() != nil {
			// Taken after the stop signal: give them back untouched.
			w.giveBack(msgs)
			w.releaseSlots(got)
			return nil
		}
		if failures > 0 {
			w.log.Info().Str("queue", q.Name).Msg("receive works again")
			failures = 0
		}
		if len(msgs) > 0 || w.runningCount() > 0 {
			w.touch()
		}
		if len(msgs) > got {
			// A pack gave more tasks than slots: the rest wait their turn
			// as a read-ahead's do, their lease counted from the receive.
			for i := got; i < len(msgs); i++ {
				if msgs[i].at.IsZero() {
					msgs[i].at = began
				}
			}
			w.hold(msgs[got:])
			msgs = msgs[:got]
		}
		w.releaseSlots(got - len(msgs))
		w.dispatch(workCtx, wg, msgs)
	}
}

// dispatch hands each message to a goroutine that holds its slot (taken
// already) until the task is done.
func (w *Worker) dispatch(workCtx context.Context, wg *sync.WaitGroup, msgs []received) {
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.signalEnded()
			defer w.releaseSlots(1)
			began := w.cfg.Now()
			w.handle(workCtx, m.q, m.Message, m.at)
			w.noteTaskTime(w.cfg.Now().Sub(began))
			w.touch()
		}()
	}
}

// noteTaskTime keeps a moving mean of how long a handled message holds
// its slot (claim, command, result), for the read-ahead's hold (levels.go).
func (w *Worker) noteTaskTime(d time.Duration) {
	for {
		old := w.taskTime.Load()
		next := int64(d)
		if old > 0 {
			next = old + (int64(d)-old)/8
		}
		if w.taskTime.CompareAndSwap(old, next) {
			return
		}
	}
}

// gatherWindow is how long a busy worker with few free slots waits for more
// to free up before it receives, so that one receive (and, at the end, one
// delete) serves several tasks: a worker running short tasks would
// otherwise receive one message per call, asking every higher priority
// band each time. An idle worker never waits: a task sent to it starts as
// soon as the receive returns.
const gatherWindow = 50 * time.Millisecond

// gatherSlots takes, for up to gatherWindow, slots that free up beside the
// got already held, while tasks are running and a receive could take more
// (up to the concurrency, ten, and what MaxTasks leaves). It returns how
// many it took.
func (w *Worker) gatherSlots(ctx context.Context, got int) int {
	want := min(cap(w.slots), sqs.MaxBatch)
	if got >= want || w.runningCount() == 0 {
		return 0
	}
	t := time.NewTimer(gatherWindow)
	defer t.Stop()
	n := 0
	for got+n < want {
		if w.cfg.MaxTasks > 0 && w.reserved() >= w.cfg.MaxTasks {
			break
		}
		select {
		case w.slots <- struct{}{}:
			n++
			continue
		case <-t.C:
		case <-ctx.Done():
		}
		break
	}
	return n
}

// signalEnded tells a fetch loop waiting on MaxTasks that a task ended.
func (w *Worker) signalEnded() {
	select {
	case w.ended <- struct{}{}:
	default:
	}
}

// receiveStoppable is receive, which the stop signal (ctx) does not cut
// short at once: SQS goes on with a request its client gave up on and hides
// the messages it hands to it for a whole visibility timeout, so a receive
// under way gets a second to return what it took, to be given back. Only a
// long poll still waiting after that is cancelled.
func (w *Worker) receiveStoppable(ctx context.Context, max int, wait time.Duration) ([]received, QueueRef, error) {
	rctx, done := stoppable(ctx)
	defer done()
	return w.receive(rctx, max, wait)
}

// stoppable is the context of a receive that the stop signal (ctx) cuts
// short only a second after it comes (receiveStoppable says why); done
// releases it.
func stoppable(ctx context.Context) (context.Context, func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-rctx.Done():
		}
	})
	return rctx, func() { stop(); cancel() }
}

// giveBack makes messages received after the stop signal visible again at
// once, without running them.
func (w *Worker) giveBack(msgs []received) {
	for _, m := range msgs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		if !w.isLevel(m.QueueURL) || !w.renew(ctx, w.log, m.Message, 0) {
			err = w.queue.SetVisibility(ctx, m.QueueURL, m.ReceiptHandle, 0)
		}
		cancel()
		if err != nil {
			w.log.Warn().Err(err).Str("message_id", m.MessageID).Msg("cannot give back a message received while stopping; it returns when its lease runs out")
			continue
		}
		w.log.Info().Str("message_id", m.MessageID).Msg("message received while stopping given back")
	}
}

func (w *Worker) touch() { w.lastActive.Store(w.cfg.Now().UnixNano()) }

func (w *Worker) releaseSlots(n int) {
	for range n {
		<-w.slots
	}
}

// reserved counts tasks finished plus tasks holding a slot, for MaxTasks.
func (w *Worker) reserved() int {
	return int(w.finished.Load()) + len(w.slots)
}

// hostname is looked up once.
var hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
})

// DefaultInfo identifies this process as a worker with the given id (a
// generated one when empty).
func DefaultInfo(id string) plan.WorkerInfo {
	if id == "" {
		id = fmt.Sprintf("w-%s-%d", hostname(), os.Getpid())
	}
	return plan.WorkerInfo{Host: hostname(), PID: os.Getpid(), ID: id}
}
