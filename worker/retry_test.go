package worker

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	none := func() float64 { return 0 }
	full := func() float64 { return 0.999999 }
	tests := []struct {
		attempt int
		jitter  func() float64
		want    time.Duration
	}{
		{1, none, time.Second},
		{2, none, 16 * time.Second},
		{3, none, 81 * time.Second},
		{0, none, time.Second},  // treated as the first attempt
		{-5, none, time.Second}, // likewise
		{4, none, 256 * time.Second},
		{5, none, MaxBackoff}, // 625 s is over the cap
		{31, none, MaxBackoff},
		{1 << 20, none, MaxBackoff}, // attempt^4 would overflow
		{1, full, time.Second + 99999*time.Microsecond},
		{4, full, 256*time.Second + 25599974*time.Microsecond},
		{5, full, MaxBackoff}, // jitter never pushes past the cap
	}
	for _, tt := range tests {
		got := Backoff(tt.attempt, tt.jitter)
		if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("Backoff(%d) = %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

func TestBackoffDefaultJitter(t *testing.T) {
	for range 100 {
		d := Backoff(2, nil)
		if d < 16*time.Second || d > 16*time.Second+1600*time.Millisecond {
			t.Fatalf("Backoff(2) = %v, want 16 s plus at most 10%%", d)
		}
	}
}
