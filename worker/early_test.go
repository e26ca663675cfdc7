package worker

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/supervisor"
)

// gatedStore calls hook at each claim, before the claim is made.
type gatedStore struct {
	*testbroker.Store
	hook func(ctx context.Context) error
}

func (g *gatedStore) Claim(ctx context.Context, r *plan.Running) error {
	if err := g.hook(ctx); err != nil {
		return err
	}
	return g.Store.Claim(ctx, r)
}

// gatedWorker is newTestWorker on st.
func gatedWorker(t *testing.T, q *testbroker.Queue, st *gatedStore, mod func(*Config)) *Worker {
	t.Helper()
	return New(newTestWorker(t, q, st.Store, mod).cfg, q, st)
}

// children lists this process's children, live or zombie (not reaped), by
// pid, each with its command line.
func children(t *testing.T) map[int]string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("needs /proc")
	}
	self := os.Getpid()
	out := map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		out[pid] = f[0] + " " + strings.ReplaceAll(string(cmdline), "\x00", " ")
	}
	return out
}

// waitSupervisor waits until a supervisor child of this process is up, and
// reports whether one came.
func waitSupervisor(t *testing.T, ctx context.Context) bool {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(2 * time.Millisecond) {
		for _, c := range children(t) {
			if strings.Contains(c, supervisor.Arg) {
				return true
			}
		}
	}
	return false
}

// noChildrenLeft fails the test when any process of ours is left, live or
// not reaped.
func noChildrenLeft(t *testing.T) {
	t.Helper()
	if left := children(t); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
}

// A claim that is lost (another worker holds the attempt) while the task's
// supervisor is already up runs nothing: the command never starts, and the
// supervisor is ended and reaped.
func TestLostClaimRunsNothing(t *testing.T) {
	q, base := testbroker.NewQueue(), testbroker.NewStore()
	ran := filepath.Join(t.TempDir(), "ran")
	send(t, q, base, "t1", "sh", "-c", "touch "+ran)
	now := time.Now()
	_ = base.Claim(context.Background(), &plan.Running{V: plan.Version, ID: "t1", Attempt: 1, Worker: plan.WorkerInfo{ID: "other", Host: "h", PID: 2},
		StartedAt: now, HeartbeatAt: now.Add(time.Hour), HeartbeatEvery: plan.Duration(time.Hour)})
	noChildrenLeft(t)
	var up atomic.Bool
	st := &gatedStore{Store: base, hook: func(ctx context.Context) error {
		up.Store(waitSupervisor(t, ctx))
		return nil
	}}
	w := gatedWorker(t, q, st, nil)
	runUntil(t, w, func() bool { return q.Calls("set_visibility") > 0 })
	if !up.Load() {
		t.Error("no supervisor was up while the claim was out")
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the command ran although the claim was lost")
	}
	if base.Result("t1") != nil {
		t.Error("a result was stored")
	}
	noChildrenLeft(t)
}

// A claim that is won hands the command to the supervisor started while it
// was out; nothing is left once the task has ended.
func TestWonClaimRunsOnTheEarlySupervisor(t *testing.T) {
	q, base := testbroker.NewQueue(), testbroker.NewStore()
	ran := filepath.Join(t.TempDir(), "ran")
	send(t, q, base, "t1", "sh", "-c", "echo x >>"+ran)
	var up atomic.Bool
	st := &gatedStore{Store: base, hook: func(ctx context.Context) error {
		if _, err := os.Stat(ran); err == nil {
			t.Error("the command ran before its claim")
		}
		up.Store(waitSupervisor(t, ctx))
		return nil
	}}
	w := gatedWorker(t, q, st, nil)
	runUntil(t, w, func() bool { return q.Len(qURL) == 0 })
	if !up.Load() {
		t.Error("no supervisor was up while the claim was out")
	}
	if r := base.Result("t1"); r == nil || r.State != plan.StateSucceeded {
		t.Errorf("result = %+v", r)
	}
	if b, _ := os.ReadFile(ran); string(b) != "x\n" {
		t.Errorf("the command ran %q, want once", b)
	}
	noChildrenLeft(t)
}

// A claim that fails (the store is down) while the supervisor is up
// discards it at once: none waits through the outage; the task runs once
// the store is back, on a fresh supervisor.
func TestClaimErrorDiscardsTheEarlySupervisor(t *testing.T) {
	q, base := testbroker.NewQueue(), testbroker.NewStore()
	ran := filepath.Join(t.TempDir(), "ran")
	send(t, q, base, "t1", "sh", "-c", "echo x >>"+ran)
	var calls atomic.Int32
	var upDuringOutage, leftDuringOutage atomic.Bool
	st := &gatedStore{Store: base, hook: func(ctx context.Context) error {
		switch calls.Add(1) {
		case 1:
			upDuringOutage.Store(waitSupervisor(t, ctx))
			return testbroker.ErrDown
		default:
			// The retry, once the store is back: the early supervisor
			// was discarded before the worker waited for the store.
			for _, c := range children(t) {
				if strings.Contains(c, supervisor.Arg) {
					leftDuringOutage.Store(true)
				}
			}
			return nil
		}
	}}
	w := gatedWorker(t, q, st, nil)
	runUntil(t, w, func() bool { return q.Len(qURL) == 0 })
	if !upDuringOutage.Load() {
		t.Error("no supervisor was up while the first claim was out")
	}
	if leftDuringOutage.Load() {
		t.Error("a supervisor was kept through the store's outage")
	}
	if b, _ := os.ReadFile(ran); string(b) != "x\n" {
		t.Errorf("the command ran %q, want once", b)
	}
	noChildrenLeft(t)
}

// A worker told to stop while a claim is out (its shutdown grace over)
// starts nothing and leaves no supervisor behind.
func TestStopWhileClaimIsOutRunsNothing(t *testing.T) {
	q, base := testbroker.NewQueue(), testbroker.NewStore()
	ran := filepath.Join(t.TempDir(), "ran")
	send(t, q, base, "t1", "sh", "-c", "touch "+ran)
	var up atomic.Bool
	st := &gatedStore{Store: base, hook: func(ctx context.Context) error {
		up.Store(waitSupervisor(t, ctx))
		<-ctx.Done() // the claim answers only once the worker stops
		return ctx.Err()
	}}
	w := gatedWorker(t, q, st, func(c *Config) { c.ShutdownGrace = 50 * time.Millisecond })
	runUntil(t, w, func() bool { return up.Load() })
	if _, err := os.Stat(ran); err == nil {
		t.Error("the command ran although the claim never answered")
	}
	if base.Result("t1") != nil {
		t.Error("a result was stored")
	}
	noChildrenLeft(t)
}

// fds counts this process's open file descriptors.
func fds(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("needs /proc")
	}
	return len(es)
}

// A backlog of tasks whose claims another worker already holds (each
// claim lost while its supervisor is up) leaves nothing behind: no
// supervisor, no zombie, no file descriptor (the capture files and the
// supervisor's pipes are all closed), and no command ran.
func TestManyLostClaimsLeaveNothing(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	dir := t.TempDir()
	const n = 40
	now := time.Now()
	for i := range n {
		id := "lost" + strconv.Itoa(i)
		send(t, q, st, id, "sh", "-c", "touch "+filepath.Join(dir, id))
		_ = st.Claim(context.Background(), &plan.Running{V: plan.Version, ID: id, Attempt: 1, Worker: plan.WorkerInfo{ID: "other", Host: "h", PID: 2},
			StartedAt: now, HeartbeatAt: now.Add(time.Hour), HeartbeatEvery: plan.Duration(time.Hour)})
	}
	noChildrenLeft(t)
	before := fds(t)
	w := newTestWorker(t, q, st, func(c *Config) { c.Concurrency = 4 })
	runUntil(t, w, func() bool { return q.Calls("set_visibility") >= n })
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("%d commands ran although their claims were lost", len(left))
	}
	noChildrenLeft(t)
	// The SDK-free fakes open nothing: what is left open is the worker's.
	if after := fds(t); after > before {
		t.Errorf("%d file descriptors open after %d lost claims, %d before", after, n, before)
	}
}
