package ops

import (
	"context"
	"slices"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Where submit sends a task (plan.Band tells the whole scheme). A worker
// that drains more tasks from an inbox than it has free slots parks the
// rest in their levels: per ten tasks a receive, a SendMessageBatch and a
// DeleteMessageBatch more than a task sent straight to its level, which
// costs instead, per level and submit, a hint (one entry of a
// SendMessageBatch) and the receive and delete of that hint. So a level
// that gets a full SendMessageBatch of ten or more from one submit gets
// them straight, with a hint in the inbox that wakes an idle worker to look
// at it; a level that gets fewer keeps them in the inbox, where an idle
// worker takes them with its first receive (a single task, a Dagster
// step, reaches it in one round trip) and a busy one parks at most those
// few.
const straightMin = sqs.MaxBatch

// hintEvery is how many tasks sent straight to a level one hint stands for.
// A hint wakes one idle worker, which then takes from the level until it
// finds it empty; more hints for a deep level wake more of a fleet of idle
// workers, at a cost of about a hundredth of a request a task (a share of
// the send, the hint's delete). Those beyond a level's first are delayed a
// second each (hintStagger), so that one receive does not take them all:
// each becomes visible alone, to whichever worker asks first, a long-polling
// idle one as likely as the busy one that took the first. A worker that
// misses them all learns of the level at its sweep.
const (
	hintEvery   = 50
	hintStagger = time.Second
	// maxHintDelay is SQS's limit on a message's delay.
	maxHintDelay = 15 * time.Minute
)

// pending is one task message waiting to be sent: the task's index in the
// submit, its message, whether that is a pointer to the stored task, and
// the task's priority.
type pending struct {
	i       int
	entry   sqs.Entry
	pointer bool
	prio    int
}

// sendRoute is the messages of one inbox's batch that go to one SQS queue:
// a level (level names its band) or the inbox itself (level empty).
type sendRoute struct {
	url   string
	level string
	items []pending
}

// route splits the batch of tasks for inbox into the levels that get at
// least straightMin of them, highest first, and the inbox, last (absent
// when it gets none). Within each the submit's order is kept.
func route(inbox string, batch []pending) []sendRoute {
	byLevel := map[string][]pending{}
	for _, p := range batch {
		b := plan.LevelFor(p.prio).Name
		byLevel[b] = append(byLevel[b], p)
	}
	var out []sendRoute
	straight := map[string]bool{}
	for _, l := range plan.Levels {
		if ps := byLevel[l.Name]; len(ps) >= straightMin {
			out = append(out, sendRoute{url: inbox + l.Suffix, level: l.Name, items: ps})
			straight[l.Name] = true
		}
	}
	var rest []pending
	for _, p := range batch {
		if !straight[plan.LevelFor(p.prio).Name] {
			rest = append(rest, p)
		}
	}
	if len(rest) > 0 {
		out = append(out, sendRoute{url: inbox, items: rest})
	}
	return out
}

// sendChunk sends up to ten messages to one queue: one SendMessage for a
// single message (whose error is then the call's), else a
// SendMessageBatch. failed has an entry per message.
func sendChunk(ctx context.Context, q *sqs.Client, url string, entries []sqs.Entry) (failed []error, err error) {
	if len(entries) == 1 {
		_, err = q.Send(ctx, url, entries[0])
		return make([]error, 1), err
	}
	return q.SendBatch(ctx, url, entries)
}

// levelHint says that sent tasks went straight to a level of an inbox.
type levelHint struct {
	inbox, level string
	sent         int
}

// sendHints sends, per inbox, the hints for the levels its tasks went to,
// ten to a call: first one per level, then one more per hintEvery tasks,
// each a hintStagger later than the one before it. A hint that is lost
// costs time, not a task: the level's messages wait for a worker that
// looks there anyway (one whose slots are full of that level, or any at
// its sweep), so an error is not the submit's.
func sendHints(ctx context.Context, q *sqs.Client, hints []levelHint) {
	byInbox := map[string][]sqs.Entry{}
	var order []string
	for _, h := range hints {
		if _, ok := byInbox[h.inbox]; !ok {
			order = append(order, h.inbox)
		}
		byInbox[h.inbox] = append(byInbox[h.inbox], hintEntry(h.level, 0))
	}
	for _, h := range hints {
		for j := 1; j < hintCount(h.sent); j++ {
			byInbox[h.inbox] = append(byInbox[h.inbox], hintEntry(h.level, min(time.Duration(j)*hintStagger, maxHintDelay)))
		}
	}
	for _, u := range order {
		for c := range slices.Chunk(byInbox[u], sqs.MaxBatch) {
			_, _ = sendChunk(ctx, q, u, c)
		}
	}
}

// hintCount is how many hints stand for n tasks sent to one level.
func hintCount(n int) int {
	return 1 + (n-1)/hintEvery
}

// hintEntry is the hint message that tells a queue's workers that its
// level (a band name of plan.Levels) holds messages, visible after delay.
func hintEntry(level string, delay time.Duration) sqs.Entry {
	return sqs.Entry{Body: plan.HintBody, Attributes: map[string]string{plan.AttrHint: level}, Delay: delay}
}
