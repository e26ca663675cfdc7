package plan

import "testing"

func TestBandFor(t *testing.T) {
	for _, tc := range []struct {
		priority int
		want     string
	}{
		{1000, "highest"}, {10, "highest"}, {9, "high"}, {1, "high"}, {0, "normal"},
		{-1, "low"}, {-9, "low"}, {-10, "lowest"}, {-1000, "lowest"}, {5000, "highest"}, {-5000, "lowest"},
	} {
		if got := BandFor(tc.priority).Name; got != tc.want {
			t.Errorf("BandFor(%d) = %s, want %s", tc.priority, got, tc.want)
		}
	}
}

// Every priority a task may carry falls in exactly one band.
func TestBandsCoverEveryPriority(t *testing.T) {
	for p := MinPriority; p <= MaxPriority; p++ {
		n := 0
		for _, b := range Bands {
			if p >= b.Min && p <= b.Max {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("priority %d is in %d bands", p, n)
		}
	}
}
