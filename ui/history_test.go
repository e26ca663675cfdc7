package ui

import (
	"testing"
	"time"
)

func TestHistoryKeepsTheLastSamplesAtMostOnePerGap(t *testing.T) {
	h := newHistory()
	q := QueueDepth{Name: "default", Band: "inbox"}
	t0 := time.Unix(1000, 0)
	for i := range historyLen + 10 {
		q.Visible = i
		h.add(t0.Add(time.Duration(i)*time.Second), []QueueDepth{q}, time.Second)
		// A second reader in the same second adds nothing.
		h.add(t0.Add(time.Duration(i)*time.Second+time.Millisecond), []QueueDepth{{Name: "default", Band: "inbox", Visible: -1}}, time.Second)
	}
	got := h.get(q)
	if len(got) != historyLen {
		t.Fatalf("%d samples, want %d", len(got), historyLen)
	}
	if first, last := got[0], got[len(got)-1]; first != (Sample{1010, 10, 0, 0}) || last != (Sample{1069, 69, 0, 0}) {
		t.Fatalf("first %v last %v", first, last)
	}
	if other := h.get(QueueDepth{Name: "default", Band: "high"}); len(other) != 0 {
		t.Fatalf("another band has samples: %v", other)
	}
}
