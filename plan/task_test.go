package plan

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := func() Task { return Task{V: Version, Argv: []string{"echo"}, Queue: DefaultQueue, MaxAttempts: 1} }
	tests := []struct {
		name  string
		edit  func(*Task)
		field string // "" when valid
	}{
		{"minimal", func(*Task) {}, ""},
		{"everything", func(t *Task) {
			t.ID, t.Group, t.Queue, t.Priority, t.MaxAttempts = "run-1.step:2", "g_1", "gpu", MaxPriority, 100
			t.Env, t.Labels, t.Timeout = map[string]string{"A": ""}, map[string]string{"k": "v"}, Duration(1)
		}, ""},
		{"other version", func(t *Task) { t.V = 2 }, "v"},
		{"bad id", func(t *Task) { t.ID = "a/b" }, "id"},
		{"id starting with a dot", func(t *Task) { t.ID = ".a" }, "id"},
		{"long id", func(t *Task) { t.ID = strings.Repeat("a", MaxIDLength+1) }, "id"},
		{"no argv", func(t *Task) { t.Argv = nil }, "argv"},
		{"empty command", func(t *Task) { t.Argv = []string{""} }, "argv"},
		{"NUL in an argument", func(t *Task) { t.Argv = []string{"echo", "a\x00b"} }, "argv"},
		{"env key with =", func(t *Task) { t.Env = map[string]string{"A=B": "c"} }, "env"},
		{"empty env key", func(t *Task) { t.Env = map[string]string{"": "c"} }, "env"},
		{"NUL in an env value", func(t *Task) { t.Env = map[string]string{"A": "\x00"} }, "env"},
		{"negative timeout", func(t *Task) { t.Timeout = -1 }, "timeout"},
		{"zero attempts", func(t *Task) { t.MaxAttempts = 0 }, "max_attempts"},
		{"too many attempts", func(t *Task) { t.MaxAttempts = 101 }, "max_attempts"},
		{"empty queue", func(t *Task) { t.Queue = "" }, "queue"},
		{"bad queue", func(t *Task) { t.Queue = "a b" }, "queue"},
		{"priority too high", func(t *Task) { t.Priority = MaxPriority + 1 }, "priority"},
		{"priority too low", func(t *Task) { t.Priority = MinPriority - 1 }, "priority"},
		{"bad group", func(t *Task) { t.Group = "-g" }, "group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := ok()
			tt.edit(&task)
			err := task.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a ValidationError on %q", err, tt.field)
			}
			if ve.Field != tt.field {
				t.Fatalf("Validate blames %q (%v), want %q", ve.Field, err, tt.field)
			}
		})
	}
}

func TestDecodeTask(t *testing.T) {
	task, err := DecodeTask([]byte(`{"argv":["echo","hi"],"timeout":90}`))
	if err != nil {
		t.Fatal(err)
	}
	if task.V != Version || task.Queue != DefaultQueue || task.MaxAttempts != 1 {
		t.Errorf("defaults not filled: %+v", task)
	}
	if task.Timeout.Std().Seconds() != 90 {
		t.Errorf("timeout = %v, want 90s", task.Timeout.Std())
	}
	for _, in := range []string{
		`{"argv":["x"],"bogus":1}`,
		`{"argv":["x"]} {}`,
		`{"argv":`,
		`[]`,
		``,
	} {
		var de *DecodeError
		if _, err := DecodeTask([]byte(in)); !errors.As(err, &de) {
			t.Errorf("DecodeTask(%q) = %v, want a DecodeError", in, err)
		} else if !strings.HasPrefix(err.Error(), "malformed task JSON: ") {
			t.Errorf("DecodeTask(%q) message %q", in, err)
		}
	}
	var ve *ValidationError
	if _, err := DecodeTask([]byte(`{"v":2,"argv":["x"]}`)); !errors.As(err, &ve) || ve.Field != "v" {
		t.Errorf("another version: %v, want a ValidationError on v", err)
	}
}

func TestExecLimitError(t *testing.T) {
	big := strings.Repeat("a", MaxArgBytes)
	tests := []struct {
		name string
		task Task
		want string // substring of the error, "" for none
	}{
		{"small", Task{Argv: []string{"echo", "hi"}, Env: map[string]string{"A": "b"}}, ""},
		{"one argument at the limit", Task{Argv: []string{"echo", big[:MaxArgBytes-1]}}, ""},
		{"one argument over", Task{Argv: []string{"echo", big}}, "argument 1 is 131072 bytes; Linux allows at most 131071 bytes in one argument"},
		{"one variable over", Task{Argv: []string{"echo"}, Env: map[string]string{"A": big}}, "environment variable A is"},
		{"all together over", Task{Argv: []string{"echo",
			big[:100000], big[:100000], big[:100000], big[:100000], big[:100000], big[:100000], big[:100000], big[:100000],
			big[:100000], big[:100000], big[:100000], big[:100000], big[:100000], big[:100000], big[:100000], big[:100000],
			big[:100000], big[:100000], big[:100000], big[:100000], big[:100000]}}, "arguments and environment total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.task.ExecLimitError()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("ExecLimitError: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("ExecLimitError = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestStateFinal(t *testing.T) {
	final := map[State]bool{
		StateQueued: false, StateRunning: false, StateLost: false,
		StateSucceeded: true, StateFailed: true, StateCancelled: true, StateTimedOut: true,
	}
	for s, want := range final {
		if s.Final() != want {
			t.Errorf("%s.Final() = %v", s, !want)
		}
	}
}

// A field of the wrong JSON type is named with what it should hold, in
// JSON's words, never with Go's types.
func TestDecodeTaskTypeMessages(t *testing.T) {
	for in, want := range map[string]string{
		`{"argv":"echo"}`:                       `malformed task JSON: field "argv" must be a list of strings, not a string`,
		`{"argv":["echo",1]}`:                   `malformed task JSON: every item of field "argv" must be a string, not a number`,
		`{"argv":["echo"],"env":{"A":1}}`:       `malformed task JSON: every value of field "env" must be a string, not a number`,
		`{"argv":["echo"],"labels":[1]}`:        `malformed task JSON: field "labels" must be an object of strings, not a list`,
		`{"argv":["echo"],"max_attempts":"x"}`:  `malformed task JSON: field "max_attempts" must be a whole number, not a string`,
		`{"argv":["echo"],"priority":1.5}`:      `malformed task JSON: field "priority" must be a whole number, not the number 1.5`,
		`[1,2]`:                                 `malformed task JSON: a task must be a JSON object, not a list`,
		`{"argv":["x"],"submitted_at":"today"}`: `malformed task JSON: a time must be a string such as "2026-01-02T15:04:05Z" (RFC 3339)`,
		`{"argv":["x"],"submitted_at":5}`:       `malformed task JSON: a time must be a string such as "2026-01-02T15:04:05Z" (RFC 3339)`,
		`"echo"`:                                `malformed task JSON: a task must be a JSON object, not a string`,
	} {
		_, err := DecodeTask([]byte(in))
		if err == nil || err.Error() != want {
			t.Errorf("DecodeTask(%s) = %v\nwant %s", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "Go ") {
			t.Errorf("DecodeTask(%s) names Go: %v", in, err)
		}
	}
}
