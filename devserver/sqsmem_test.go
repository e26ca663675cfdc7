package devserver

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// heapAfterGC is the live heap once the garbage collector has run twice
// (the second empties what the first left in sync.Pools' victim caches).
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestQueuedBodiesStayOnDisk fills a queue with 32 MiB of message bodies:
// the process's live heap grows by a small part of that, as only each
// message's state stays in memory, and the bodies come back whole. Then
// 5,000 small messages show what a queued message costs in memory.
func TestQueuedBodiesStayOnDisk(t *testing.T) {
	s := startServer(t, Options{Queues: []string{"big", "small"}})
	tg := localTarget(s)
	f := sqsFixture{s: tg, c: sqsClient(t, tg)}
	ctx := context.Background()
	const n, size = 128, 256 << 10
	body := func(i int) string { return fmt.Sprintf("%04d", i) + strings.Repeat("x", size-4) }

	base := heapAfterGC()
	for i := range n {
		f.send(t, "big", body(i))
	}
	grew := int64(heapAfterGC()) - int64(base)
	t.Logf("live heap grew by %d KiB for %d MiB of queued bodies", grew>>10, n*size>>20)
	if grew > 6<<20 {
		t.Fatalf("live heap grew by %d MiB for %d MiB of queued bodies: held in memory", grew>>20, n*size>>20)
	}
	got := 0
	for got < n {
		msgs := f.receive(t, "big", 10, 0, 60)
		if len(msgs) == 0 {
			t.Fatalf("received %d of %d messages", got, n)
		}
		for _, m := range msgs {
			if len(*m.Body) != size || strings.Trim((*m.Body)[4:], "x") != "" {
				t.Fatalf("body of %d bytes came back damaged", len(*m.Body))
			}
		}
		got += len(msgs)
	}

	const small = 5000
	base = heapAfterGC()
	for i := 0; i < small; i += 10 {
		entries := make([]sqstypes.SendMessageBatchRequestEntry, 10)
		for j := range entries {
			entries[j] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(`{"v":1,"id":"t","argv":["true"]}`)}
		}
		out, err := f.c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: f.url("small"), Entries: entries})
		if err != nil || len(out.Failed) != 0 {
			t.Fatalf("SendMessageBatch: %v %+v", err, out)
		}
	}
	per := (int64(heapAfterGC()) - int64(base)) / small
	t.Logf("a queued message's state: about %d bytes of live heap", per)
	if per > 2048 {
		t.Fatalf("a queued message costs %d bytes of live heap", per)
	}
}
