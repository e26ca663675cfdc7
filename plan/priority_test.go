package plan

import "testing"

func TestLevelFor(t *testing.T) {
	for _, tc := range []struct {
		priority int
		want     string
	}{
		{1000, "p10"}, {11, "p10"}, {10, "p10"}, {9, "p9"}, {5, "p5"}, {1, "p1"}, {0, "p0"},
		{-1, "below0"}, {-1000, "below0"}, {5000, "p10"}, {-5000, "below0"},
	} {
		if got := LevelFor(tc.priority).Name; got != tc.want {
			t.Errorf("LevelFor(%d) = %s, want %s", tc.priority, got, tc.want)
		}
	}
}

// Every priority a task may carry falls in exactly one level, every
// integer from LevelBottom to LevelTop in a level of its own, and the
// levels are ordered highest first.
func TestLevelsCoverEveryPriority(t *testing.T) {
	for p := MinPriority; p <= MaxPriority; p++ {
		n := 0
		for _, b := range Levels {
			if p >= b.Min && p <= b.Max {
				n++
				if p >= LevelBottom && p <= LevelTop && b.Min != b.Max && p != LevelTop {
					t.Errorf("priority %d shares level %s", p, b.Name)
				}
			}
		}
		if n != 1 {
			t.Fatalf("priority %d is in %d levels", p, n)
		}
	}
	for i := 1; i < len(Levels); i++ {
		if Levels[i].Max >= Levels[i-1].Min {
			t.Errorf("level %s is not below %s", Levels[i].Name, Levels[i-1].Name)
		}
	}
	if !Bands[0].Inbox || Bands[0].Suffix != "" || len(Bands) != len(Levels)+1 {
		t.Errorf("Bands should be the inbox then the levels: %+v", Bands)
	}
}

func TestInboxOf(t *testing.T) {
	for in, want := range map[string]string{
		"http://h/1/q":       "http://h/1/q",
		"http://h/1/q-p10":   "http://h/1/q",
		"http://h/1/q-p1":    "http://h/1/q",
		"http://h/1/q-p0":    "http://h/1/q",
		"http://h/1/q-n":     "http://h/1/q",
		"http://h/1/q-gpu":   "http://h/1/q-gpu",
		"http://h/1/q-gpu-n": "http://h/1/q-gpu",
	} {
		if got := InboxOf(in); got != want {
			t.Errorf("InboxOf(%s) = %s, want %s", in, got, want)
		}
	}
}
