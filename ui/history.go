package ui

import (
	"sync"
	"time"
)

// historyLen is how many samples of each queue the server keeps: with the
// default 5 s sampling, the last five minutes.
const historyLen = 60

// Sample is one reading of a queue's depth: Unix seconds, visible, in
// flight, delayed. An array keeps the JSON small.
type Sample [4]int64

// history keeps the last samples of every queue in memory. It is lost when
// the server stops: a short trend, not a record.
type history struct {
	mu     sync.Mutex
	last   time.Time
	series map[string][]Sample
}

func newHistory() *history { return &history{series: map[string][]Sample{}} }

func seriesKey(q QueueDepth) string { return q.Name + "\x00" + q.Band }

// add records rows read at now, unless a sample was taken less than gap
// ago (many open pages must not make the history finer).
func (h *history) add(now time.Time, rows []QueueDepth, gap time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.last.IsZero() && now.Sub(h.last) < gap {
		return
	}
	h.last = now
	for _, q := range rows {
		k := seriesKey(q)
		s := append(h.series[k], Sample{now.Unix(), int64(q.Visible), int64(q.InFlight), int64(q.Delayed)})
		if len(s) > historyLen {
			s = s[len(s)-historyLen:]
		}
		h.series[k] = s
	}
}

func (h *history) get(q QueueDepth) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Sample{}, h.series[seriesKey(q)]...)
}
