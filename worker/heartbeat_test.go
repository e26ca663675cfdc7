package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// The heartbeat extends every running task's lease in batched calls, ten
// tasks to a call, never one call per task; a receipt refused for good in
// a batch loses that task's lease alone, at once, while the others keep
// theirs.
func TestHeartbeatExtendsLeasesInBatches(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	dir := t.TempDir()
	const n = 12
	ids := make([]string, n)
	msgIDs := map[string]string{}
	for i := range n {
		ids[i] = fmt.Sprintf("t%02d", i)
		tk := &plan.Task{ID: ids[i], Argv: []string{"sh", "-c", "touch " + dir + "/" + ids[i] + "; while [ ! -e " + dir + "/go ]; do sleep 0.2; done"}}
		tk.Normalize()
		if _, err := st.PutTask(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(tk)
		mid, err := q.Send(context.Background(), qURL, sqs.Entry{Body: string(body), Attributes: map[string]string{"taskiq_id": ids[i]}})
		if err != nil {
			t.Fatal(err)
		}
		msgIDs[ids[i]] = mid
	}
	// A lease of 4 s leaves 2 s between the extension asked at half-life
	// and the lease's end: 2 s (1 s of slack) was lost at load 16.
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Concurrency = n
		c.VisibilityTimeout = 4 * time.Second
		c.Heartbeat = 100 * time.Millisecond
	})
	started := func() bool {
		for _, id := range ids {
			if _, err := os.Stat(dir + "/" + id); err != nil {
				return false
			}
		}
		return true
	}
	var expiredAt int
	// t00's message stays hidden once its receipt is refused, so that no
	// delivery of it (put off with a single call, which is not a
	// heartbeat's) is counted: every single call is a heartbeat's.
	singles := -1
	runUntil(t, w, func() bool {
		if expiredAt == 0 && started() && q.Calls("set_visibility_batch") >= 4 {
			// Two rounds of extensions at least have passed; now t00's
			// receipt goes bad, and it must be stopped.
			q.ExpireAndHide(qURL, msgIDs["t00"], time.Hour)
			expiredAt = q.Calls("set_visibility_batch")
		}
		if expiredAt > 0 && q.Calls("set_visibility_batch") >= expiredAt+4 {
			if _, err := os.Stat(dir + "/go"); err != nil {
				_ = os.WriteFile(dir+"/go", nil, 0o644)
			}
		}
		for _, id := range ids[1:] {
			if st.Result(id) == nil {
				return false
			}
		}
		singles = q.Calls("set_visibility")
		return true
	})
	if c := singles; c != 0 {
		t.Errorf("%d single visibility calls, want 0", c)
	}
	if r := st.Result("t00"); r != nil && r.Attempt == 1 {
		t.Errorf("the attempt whose lease was refused wrote the result %+v", r)
	}
	for _, id := range ids[1:] {
		if r := st.Result(id); r == nil || r.State != plan.StateSucceeded || r.Attempt != 1 {
			t.Errorf("%s: %+v", id, r)
		}
		if c := q.ReceiveCount(qURL, id); c > 1 {
			t.Errorf("%s received %d times", id, c)
		}
	}
}

// With several tasks running, a heartbeat learns of their cancels with one
// LIST of the cancel notices, not a HEAD of each task's marker, and a
// cancel is still seen within a heartbeat; running markers are rewritten
// every markerEvery, not at every heartbeat.
func TestHeartbeatListsCancelsAndSparesMarkers(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	dir := t.TempDir()
	ids := []string{"c0", "c1", "c2"}
	for _, id := range ids {
		send(t, q, st, id, "sh", "-c", "trap 'touch "+dir+"/term-"+id+"; exit 143' TERM; touch "+dir+"/"+id+"; while [ ! -e "+dir+"/go ]; do sleep 0.05; done")
	}
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Concurrency = 3
		c.VisibilityTimeout = 3 * time.Second
		c.Heartbeat = 100 * time.Millisecond
		c.KillGrace = 200 * time.Millisecond
	})
	if w.markerEvery() != time.Second {
		t.Fatalf("markerEvery = %s, want 1s", w.markerEvery())
	}
	started := func() bool {
		for _, id := range ids {
			if _, err := os.Stat(dir + "/" + id); err != nil {
				return false
			}
		}
		return true
	}
	var lists, markers, heads int
	cancelled := false
	runUntil(t, w, func() bool {
		if !started() || st.Calls("put_running") < len(ids) {
			return false // each marker rewritten once at least
		}
		if !cancelled {
			if _, err := lifecycle.Cancel(context.Background(), st, "c1", "", time.Now()); err != nil {
				t.Error(err)
			}
			cancelled = true
			lists, markers = st.Calls("list_cancels"), st.Calls("put_running")
			heads = st.Calls("cancel_check")
		}
		if _, err := os.Stat(dir + "/term-c1"); err != nil {
			return false
		}
		if markers >= 0 {
			// From the cancel to c1's SIGTERM all three tasks run. (Before
			// and after, a heartbeat may find one task alone, which its
			// marker's HEAD serves.)
			lists, markers = st.Calls("list_cancels")-lists, -1
			heads = st.Calls("cancel_check") - heads
		}
		if st.Result("c1") == nil {
			return false
		}
		_ = os.WriteFile(dir+"/go", nil, 0o644)
		return st.Result("c0") != nil && st.Result("c2") != nil
	})
	if r := st.Result("c1"); r.State != plan.StateCancelled {
		t.Fatalf("c1 ended %s, want cancelled", r.State)
	}
	if heads != 0 {
		t.Errorf("%d HEADs of cancel markers, want none with three tasks running", heads)
	}
	if lists > 10 { // about one; a loaded machine runs late
		t.Errorf("the cancelled command got SIGTERM after %d heartbeats, want about one", lists)
	}
	total := st.Calls("list_cancels")
	if m := st.Calls("put_running"); m*3 > total*len(ids) {
		t.Errorf("%d marker rewrites in %d heartbeats of %d tasks: want well under one a heartbeat", m, total, len(ids))
	}
}
