package plan

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeMessage feeds arbitrary queue bodies to the decoder a worker
// runs on every message: it must never panic, and whatever it accepts must
// be a valid task (or pointer) that survives a round trip.
func FuzzDecodeMessage(f *testing.F) {
	for _, seed := range []string{
		`{"argv":["echo","hi"]}`,
		`{"v":1,"id":"a1","argv":["true"],"env":{"A":"b"},"timeout":"90s","max_attempts":3,"queue":"gpu","priority":5,"group":"run-1","labels":{"k":"v"}}`,
		`{"v":1,"id":"a1","ref":"taskiq/tasks/a1/task.json"}`,
		`{"v":2,"argv":["x"]}`,
		`{"argv":[]}`,
		`{"argv":["x"],"timeout":12.5}`,
		`{"argv":["x"],"bogus":1}`,
		`{"argv":["x"]} trailing`,
		`not json`,
		``,
		`{"ref":null,"argv":["x"]}`,
		`{"argv":["a\u0000b"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		task, ptr, err := DecodeMessage(body)
		if err != nil {
			if task != nil || ptr != nil {
				t.Fatalf("error %v with a value", err)
			}
			return
		}
		if (task == nil) == (ptr == nil) {
			t.Fatalf("want exactly one of task and pointer, got %v %v", task, ptr)
		}
		if ptr != nil {
			if ValidName(ptr.ID) != nil || ptr.Ref == "" {
				t.Fatalf("accepted a bad pointer %+v", ptr)
			}
			return
		}
		if err := task.Validate(); err != nil {
			t.Fatalf("accepted an invalid task: %v", err)
		}
		again, err := json.Marshal(task)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeTask(again)
		if err != nil {
			t.Fatalf("round trip of %s: %v", again, err)
		}
		if len(back.Argv) != len(task.Argv) || back.Timeout != task.Timeout || back.ID != task.ID {
			t.Fatalf("round trip changed the task: %+v vs %+v", back, task)
		}
	})
}
