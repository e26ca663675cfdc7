package worker

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// p5URL is level p5 of queue "default" at qURL.
const p5URL = qURL + "-p5"

// sendPack records tasks ids (running argv) and sends them to url as one
// pack, as submit --batch does.
func sendPack(t *testing.T, q *testbroker.Queue, st *testbroker.Store, url string, ids []string, argv ...string) {
	t.Helper()
	bodies := make([][]byte, len(ids))
	for i, id := range ids {
		tk := &plan.Task{ID: id, Argv: argv, Priority: 5}
		tk.Normalize()
		if st != nil {
			if _, err := st.PutTask(context.Background(), tk); err != nil {
				t.Fatal(err)
			}
		}
		bodies[i], _ = json.Marshal(tk)
	}
	attrs := map[string]string{plan.AttrPack: plan.PackAttr(ids), plan.AttrPriority: "5"}
	if _, err := q.Send(context.Background(), url, sqs.Entry{Body: string(plan.EncodePack(bodies)), Attributes: attrs}); err != nil {
		t.Fatal(err)
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func testPackQueue(q Queue) *packQueue {
	return newPackQueue(q, zerolog.Nop(), levelRefs())
}

// A pack's tasks come up as messages of their own; the pack is deleted
// with the last of them, not before.
func TestPackDeletedWithItsLastTask(t *testing.T) {
	ctx := context.Background()
	q := testbroker.NewQueue()
	sendPack(t, q, nil, p5URL, ids("t", 3), "true")
	p := testPackQueue(q)
	msgs, err := p.Receive(ctx, p5URL, 10, 0, time.Minute)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("receive: %d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		if m.Attributes["taskiq_id"] != "t"+strconv.Itoa(i) || m.ReceiveCount != 1 {
			t.Errorf("message %d: %+v", i, m)
		}
		if tk, _, err := plan.DecodeMessage([]byte(m.Body)); err != nil || tk.ID != "t"+strconv.Itoa(i) {
			t.Errorf("message %d body: %v", i, err)
		}
	}
	if errs, err := p.DeleteBatch(ctx, p5URL, []string{msgs[0].ReceiptHandle, msgs[2].ReceiptHandle}); err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("delete: %v %v", errs, err)
	}
	if n := q.Len(p5URL); n != 1 {
		t.Fatalf("pack gone with tasks left in it: %d messages", n)
	}
	// A delete of a task ended already changes nothing.
	_, _ = p.DeleteBatch(ctx, p5URL, []string{msgs[0].ReceiptHandle})
	if n := q.Len(p5URL); n != 1 {
		t.Fatalf("pack gone with tasks left in it: %d messages", n)
	}
	if _, err := p.DeleteBatch(ctx, p5URL, []string{msgs[1].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if n := q.Len(p5URL); n != 0 {
		t.Fatalf("pack left after its last task: %d messages", n)
	}
}

// Making a task visible again hands it on as a single message of the
// pack's queue; its lease is then no longer the pack's, and the others'
// extensions extend the pack once.
func TestPackHandsTasksOn(t *testing.T) {
	ctx := context.Background()
	q := testbroker.NewQueue()
	sendPack(t, q, nil, p5URL, ids("t", 3), "true")
	p := testPackQueue(q)
	msgs, _ := p.Receive(ctx, p5URL, 10, 0, time.Minute)
	if err := p.SetVisibility(ctx, p5URL, msgs[1].ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	if n := q.Len(p5URL); n != 2 {
		t.Fatalf("%d messages after a hand-on, want the pack and a single", n)
	}
	calls := q.Calls("set_visibility_batch")
	errs, err := p.ChangeVisibilities(ctx, p5URL, []sqs.VisibilityChange{
		{Receipt: msgs[0].ReceiptHandle, D: time.Minute}, {Receipt: msgs[1].ReceiptHandle, D: time.Minute}, {Receipt: msgs[2].ReceiptHandle, D: 2 * time.Minute},
	})
	if err != nil || errs[0] != nil || errs[2] != nil || !sqs.Permanent(errs[1]) {
		t.Fatalf("extend: %v %v", errs, err)
	}
	if n := q.Calls("set_visibility_batch") - calls; n != 1 {
		t.Errorf("%d visibility calls, want 1", n)
	}
	_, _ = p.DeleteBatch(ctx, p5URL, []string{msgs[0].ReceiptHandle, msgs[2].ReceiptHandle})
	single, _ := p.Receive(ctx, p5URL, 10, 0, time.Minute)
	if len(single) != 1 || single[0].Attributes["taskiq_id"] != "t1" || single[0].Attributes[plan.AttrPack] != "" {
		t.Fatalf("left: %+v", single)
	}
}

// A pack delivered a second time is unpacked at once: nothing comes up,
// its tasks are sent on as single messages and the pack is deleted.
func TestPackDeliveredAgainIsUnpacked(t *testing.T) {
	ctx := context.Background()
	q := testbroker.NewQueue()
	sendPack(t, q, nil, p5URL, ids("t", 4), "true")
	p := testPackQueue(q)
	if msgs, _ := p.Receive(ctx, p5URL, 10, 0, 0); len(msgs) != 4 { // lease of 0: back at once, as when a worker died
		t.Fatalf("first delivery: %d", len(msgs))
	}
	if msgs, _ := p.Receive(ctx, p5URL, 10, 0, time.Minute); len(msgs) != 0 {
		t.Fatalf("a pack delivered again came up: %d messages", len(msgs))
	}
	if n := q.Len(p5URL); n != 4 {
		t.Fatalf("%d messages after unpacking, want 4 singles", n)
	}
	msgs, _ := p.Receive(ctx, p5URL, 10, 0, time.Minute)
	if len(msgs) != 4 {
		t.Fatalf("singles: %d", len(msgs))
	}
	for _, m := range msgs {
		if m.ReceiveCount != 1 || m.Attributes[plan.AttrPack] != "" {
			t.Errorf("single %+v", m)
		}
	}
}

// A pack that does not decode, and one in a queue the worker does not
// take tasks from, come up as they are.
func TestPackUndecodableComesUpWhole(t *testing.T) {
	ctx := context.Background()
	q := testbroker.NewQueue()
	_, _ = q.Send(ctx, p5URL, sqs.Entry{Body: `{"v":1,"pack":[{"id":"a"},{"id":"a"}]}`, Attributes: map[string]string{plan.AttrPack: "a,a"}})
	sendPack(t, q, nil, qURL+"-dlq", ids("t", 2), "true")
	p := testPackQueue(q)
	if msgs, _ := p.Receive(ctx, p5URL, 10, 0, time.Minute); len(msgs) != 1 || msgs[0].Attributes[plan.AttrPack] != "a,a" {
		t.Fatalf("corrupt pack: %+v", msgs)
	}
	if msgs, _ := p.Receive(ctx, qURL+"-dlq", 10, 0, time.Minute); len(msgs) != 1 {
		t.Fatalf("pack in the dead-letter queue: %d messages", len(msgs))
	}
}

// A worker at concurrency 2 runs every task of two packs once, holding
// what it has no slot for, and deletes both packs.
func TestWorkerRunsEveryTaskOfPacksOnce(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	all := append(ids("a", 10), ids("b", 7)...)
	sendPack(t, q, st, p5URL, all[:10], "true")
	sendPack(t, q, st, p5URL, all[10:], "true")
	w := newTestWorker(t, q, st, func(c *Config) { c.Queues = levelRefs(); c.Heartbeat = time.Hour })
	runUntil(t, w, func() bool {
		for _, id := range all {
			if st.Result(id) == nil {
				return false
			}
		}
		return q.Len(p5URL) == 0 && q.Len(qURL) == 0
	})
	for _, id := range all {
		if r := st.Result(id); r.State != plan.StateSucceeded || r.Attempt != 1 || len(st.Claims(id)) != 1 {
			t.Errorf("%s: %s attempt %d claims %v", id, r.State, r.Attempt, st.Claims(id))
		}
	}
}
