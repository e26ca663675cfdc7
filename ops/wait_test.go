package ops

import (
	"context"
	"slices"
	"testing"
	"time"
)

// A wait whose tasks keep ending keeps its first pause; once they stop
// ending the pauses grow again, and they start over when one ends.
func TestWaitPausesStartOverWhileTasksEnd(t *testing.T) {
	// ended[k] is what the k-th check has seen end.
	ended := []int{0, 1, 2, 3, 3, 3, 3, 4, 4, 5}
	k := -1
	var pauses []time.Duration
	o := WaitOptions{
		Interval: 100 * time.Millisecond,
		Ended:    func() int { return ended[max(k, 0)] },
		after: func(d time.Duration) <-chan time.Time {
			pauses = append(pauses, d)
			c := make(chan time.Time, 1)
			c <- time.Time{}
			return c
		},
	}
	err := Wait(context.Background(), o, func(context.Context) (bool, error) {
		k++
		return k == len(ended)-1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, x := range n {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	// checks 0..8 pause after them: 0 ended nothing new (first pause);
	// 1, 2, 3 saw one more end each; 4, 5, 6 none (growing by 5/4);
	// 7 one more (start over); 8 none.
	want := ms(100, 100, 100, 100, 125, 156, 195, 100, 125)
	for i := range want {
		want[i] = want[i].Truncate(time.Millisecond)
	}
	got := slices.Clone(pauses)
	for i := range got {
		got[i] = got[i].Truncate(time.Millisecond)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
}

// Without Ended the pauses only grow, up to 5 s.
func TestWaitPausesGrowWithoutEnded(t *testing.T) {
	var pauses []time.Duration
	n := 0
	o := WaitOptions{Interval: 2 * time.Second, after: func(d time.Duration) <-chan time.Time {
		pauses = append(pauses, d)
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}}
	_ = Wait(context.Background(), o, func(context.Context) (bool, error) { n++; return n == 6, nil })
	want := []time.Duration{2 * time.Second, 2500 * time.Millisecond, 3125 * time.Millisecond, 3906250 * time.Microsecond, 4882812500}
	if !slices.Equal(pauses, want) {
		t.Fatalf("pauses %v, want %v", pauses, want)
	}
}
