package plan

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{`"90s"`, 90 * time.Second},
		{`"1h30m"`, 90 * time.Minute},
		{`"0s"`, 0},
		{`90`, 90 * time.Second},
		{`1.5`, 1500 * time.Millisecond},
		{`0`, 0},
	} {
		var d Duration
		if err := json.Unmarshal([]byte(tt.in), &d); err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.in, err)
			continue
		}
		if d.Std() != tt.want {
			t.Errorf("Unmarshal(%s) = %v, want %v", tt.in, d.Std(), tt.want)
		}
	}
	for _, tt := range []struct{ in, msg string }{
		{`"soon"`, `"soon" is not a duration (use e.g. 90s, 5m, 1h30m)`},
		{`true`, `a duration must be a string like "90s" or a number of seconds, not true`},
		{`[1]`, `a duration must be a string`},
		{`"90`, `unexpected end of JSON input`},
	} {
		var d Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Unmarshal(%s) = %v, want an error with %q", tt.in, err, tt.msg)
		}
	}
}

func TestDurationNull(t *testing.T) {
	task, err := DecodeTask([]byte(`{"argv":["x"],"timeout":null}`))
	if err != nil {
		t.Fatalf("timeout null: %v", err)
	}
	if task.Timeout != 0 {
		t.Fatalf("timeout null = %v, want 0", task.Timeout.Std())
	}
}

func TestDurationRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 90 * time.Minute, 1500 * time.Millisecond} {
		b, err := json.Marshal(Duration(d))
		if err != nil {
			t.Fatal(err)
		}
		if want := `"` + d.String() + `"`; string(b) != want {
			t.Errorf("Marshal(%v) = %s, want %s", d, b, want)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back.Std() != d {
			t.Errorf("round trip of %v: %v, %v", d, back.Std(), err)
		}
	}
}
