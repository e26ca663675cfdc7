package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
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
		tk := &plan.Task{ID: ids[i], Argv: []string{"sh", "-c", "touch " + dir + "/" + ids[i] + "; while [ ! -e " + dir + "/go ]; do sleep 0.05; done"}}
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
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Concurrency = n
		c.VisibilityTimeout = 2 * time.Second
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
	// Counted when the others have finished: once t00's lease has run out
	// its message comes back, and a receive as the worker stops gives it
	// back with a single call, which is not a heartbeat's.
	singles := -1
	runUntil(t, w, func() bool {
		if expiredAt == 0 && started() && q.Calls("set_visibility_batch") >= 4 {
			// Two rounds of extensions at least have passed; now t00's
			// receipt goes bad, and it must be stopped.
			q.Expire(qURL, msgIDs["t00"])
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
