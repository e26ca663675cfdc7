package ops

import (
	"strconv"
	"testing"

	"github.com/taskiq-go/taskiq-go/sqs"
)

func pendings(prios ...int) []pending {
	out := make([]pending, len(prios))
	for i, p := range prios {
		out[i] = pending{i: i, entry: sqs.Entry{Body: strconv.Itoa(i)}, prio: p}
	}
	return out
}

// A level that gets a full batch or more goes straight to its queue,
// highest level first; the rest stay in the inbox, which comes last, in
// the submit's order.
func TestRouteSendsFullLevelsStraight(t *testing.T) {
	var prios []int
	for range 10 {
		prios = append(prios, 0, 12) // 12 is clamped into p10
	}
	prios = append(prios, 5, 5, 5, -3)
	rs := route("q", pendings(prios...))
	if len(rs) != 3 {
		t.Fatalf("%d routes, want p10, p0, inbox: %+v", len(rs), rs)
	}
	want := []struct {
		url, level string
		n          int
	}{{"q-p10", "p10", 10}, {"q-p0", "p0", 10}, {"q", "", 4}}
	for k, w := range want {
		if rs[k].url != w.url || rs[k].level != w.level || len(rs[k].items) != w.n {
			t.Errorf("route %d: %s %q %d, want %s %q %d", k, rs[k].url, rs[k].level, len(rs[k].items), w.url, w.level, w.n)
		}
	}
	if got := rs[2].items; got[0].i != 20 || got[3].i != 23 {
		t.Errorf("inbox order %+v", got)
	}
}

// A small submit (a Dagster step, a few tasks) stays in the inbox, where
// an idle worker takes it with its first receive.
func TestRouteKeepsSmallSubmitsInTheInbox(t *testing.T) {
	rs := route("q", pendings(3, 3, 3, 3, 3, 3, 3, 3, 3))
	if len(rs) != 1 || rs[0].url != "q" || len(rs[0].items) != 9 {
		t.Fatalf("%+v", rs)
	}
	if rs := route("q", pendings(7)); len(rs) != 1 || rs[0].url != "q" {
		t.Fatalf("%+v", rs)
	}
}

// One hint per level, and one more per fifty tasks.
func TestHintCount(t *testing.T) {
	for n, want := range map[int]int{1: 1, 10: 1, 50: 1, 51: 2, 2000: 40} {
		if got := hintCount(n); got != want {
			t.Errorf("hintCount(%d) = %d, want %d", n, got, want)
		}
	}
}
