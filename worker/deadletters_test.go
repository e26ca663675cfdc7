package worker

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

const dlqURL = "http://queue.test/dlq"

// A check records the task of a message SQS moved to the dead-letter queue
// and leaves the message there, visible; a check that finds the depth
// unchanged costs one call, and a new dead letter is read and recorded.
func TestDeadLetterCheckRecordsAndLeavesMessage(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	ctx := context.Background()
	deadLetter := func(id string) {
		tk := &plan.Task{ID: id, Argv: []string{"true"}}
		tk.Normalize()
		if _, err := st.PutTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(tk)
		if _, err := q.Send(ctx, dlqURL, sqs.Entry{Body: string(body)}); err != nil {
			t.Fatal(err)
		}
	}
	deadLetter("d1")
	// Moved there by a worker that refused it: already dealt with.
	if _, err := q.Send(ctx, dlqURL, sqs.Entry{Body: "junk", Attributes: map[string]string{"taskiq_reason": "malformed"}}); err != nil {
		t.Fatal(err)
	}
	w := newTestWorker(t, q, st, func(c *Config) { c.DeadLetterURL = dlqURL })
	state := &deadLetterState{seen: map[string]bool{}, depth: -1}
	w.checkDeadLetters(ctx, state)

	if d, err := st.GetDeadLetter(ctx, "d1"); err != nil || d.Reason == "" || d.Worker.ID != "w-test" {
		t.Fatalf("record of d1 = %+v, %v", d, err)
	}
	if n := q.Len(dlqURL); n != 2 {
		t.Fatalf("the dead-letter queue holds %d messages, want both left there", n)
	}
	if st, _ := q.Stats(ctx, dlqURL); st.Visible != 2 {
		t.Fatalf("%d dead letters visible after the check, want 2", st.Visible)
	}

	calls := func() int {
		return q.Calls("receive") + q.Calls("get_queue_attributes") + q.Calls("set_visibility_batch") +
			st.Calls("list") + st.Calls("create_dead_letter") + st.Calls("put_dead_letter")
	}
	before := calls()
	w.checkDeadLetters(ctx, state)
	if n := calls() - before; n != 1 {
		t.Errorf("a check of an unchanged dead-letter queue made %d calls, want 1", n)
	}

	deadLetter("d2")
	w.checkDeadLetters(ctx, state)
	if _, err := st.GetDeadLetter(ctx, "d2"); err != nil {
		t.Fatalf("the new dead letter d2 is not recorded: %v", err)
	}
	if n := q.Len(dlqURL); n != 3 {
		t.Fatalf("the dead-letter queue holds %d messages, want 3", n)
	}
}

// The loop checks at start and then once per DeadLetterCheck, not more.
func TestDeadLetterLoopChecksAtStartThenRarely(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	w := newTestWorker(t, q, st, func(c *Config) {
		c.DeadLetterURL = dlqURL
		c.DeadLetterCheck = time.Hour
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.deadLetterLoop(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); q.Calls("get_queue_attributes") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no check at start")
		}
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	if n := q.Calls("get_queue_attributes"); n != 1 {
		t.Errorf("%d checks, want the one at start", n)
	}
}
