package plan

import (
	"bytes"
	"encoding/json"
	"testing"
)

func taskBody(t *testing.T, id string, prio int) []byte {
	t.Helper()
	tk := &Task{ID: id, Argv: []string{"true"}, Priority: prio, Labels: map[string]string{"a": "<&>"}}
	tk.Normalize()
	b, err := json.Marshal(tk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A pack keeps each task's body byte for byte, with its id and priority,
// in order.
func TestPackRoundTrip(t *testing.T) {
	bodies := [][]byte{taskBody(t, "a1", 3), taskBody(t, "b2", 3), taskBody(t, "c3", 4)}
	got, err := DecodePack(EncodePack(bodies))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d tasks", len(got))
	}
	for i, want := range []string{"a1", "b2", "c3"} {
		if got[i].ID != want || !bytes.Equal(got[i].Body, bodies[i]) {
			t.Errorf("task %d = %s %q", i, got[i].ID, got[i].Body)
		}
		if _, err := DecodeTask(got[i].Body); err != nil {
			t.Errorf("task %d does not decode on its own: %v", i, err)
		}
	}
	if got[2].Priority != 4 {
		t.Errorf("priority = %d", got[2].Priority)
	}
	if ids := PackIDs(PackAttr([]string{"a1", "b2"})); len(ids) != 2 || ids[1] != "b2" {
		t.Errorf("ids = %v", ids)
	}
}

// A worker that knows no packs must refuse one as a task, whole.
func TestPackIsNotATask(t *testing.T) {
	body := EncodePack([][]byte{taskBody(t, "a1", 0)})
	if task, ptr, err := DecodeMessage(body); err == nil {
		t.Fatalf("a pack decoded as a message: %v %v", task, ptr)
	}
}

func TestDecodePackRefuses(t *testing.T) {
	one := string(taskBody(t, "a1", 0))
	for _, body := range []string{
		``,
		`not json`,
		`{"v":1,"pack":[]}`,
		`{"v":2,"pack":[` + one + `]}`,
		`{"pack":[` + one + `]}`,
		`{"v":1,"pack":[` + one + `],"x":1}`,
		`{"v":1,"pack":[` + one + `]} trailing`,
		`{"v":1,"pack":[` + one + `,` + one + `]}`,
		`{"v":1,"pack":[1]}`,
		`{"v":1,"pack":["` + one + `"]}`,
		`{"v":1,"pack":[{"argv":["true"]}]}`,
		`{"v":1,"pack":[{"id":"bad id"}]}`,
		`{"v":1,"pack":[` + one + `,{"id":"b","priority":"x"},{"id":"c"},{"id":"d"},{"id":"e"},{"id":"f"},{"id":"g"},{"id":"h"},{"id":"i"},{"id":"j"},{"id":"k"}]}`,
	} {
		if got, err := DecodePack([]byte(body)); err == nil {
			t.Errorf("%q decoded: %v", body, got)
		}
	}
}

// FuzzDecodePack feeds arbitrary bodies to the pack decoder, which reads
// what anyone who may send to a queue can put there: it must never panic,
// and what it accepts is 1 to PackMax objects with valid, distinct ids,
// each re-encoded into the same pack.
func FuzzDecodePack(f *testing.F) {
	f.Add([]byte(`{"v":1,"pack":[{"v":1,"id":"a1","argv":["true"]},{"id":"b","priority":3}]}`))
	f.Add([]byte(`{"v":1,"pack":[{"id":"a","priority":"x"}]}`))
	f.Add([]byte(`{"v":1,"pack":[ {"id":"a"} ]}`))
	f.Add([]byte(`{"v":1,"pack":null}`))
	f.Add([]byte(`{"v":1,"pack":[{"id":"a"}]}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tasks, err := DecodePack(body)
		if err != nil {
			if tasks != nil {
				t.Fatalf("error %v with tasks", err)
			}
			return
		}
		if len(tasks) == 0 || len(tasks) > PackMax {
			t.Fatalf("%d tasks accepted", len(tasks))
		}
		seen := map[string]bool{}
		bodies := make([][]byte, len(tasks))
		for i, tk := range tasks {
			if ValidName(tk.ID) != nil || seen[tk.ID] {
				t.Fatalf("task %d id %q accepted", i, tk.ID)
			}
			seen[tk.ID] = true
			if !json.Valid(tk.Body) {
				t.Fatalf("task %d body %q is not JSON", i, tk.Body)
			}
			bodies[i] = tk.Body
		}
		again, err := DecodePack(EncodePack(bodies))
		if err != nil || len(again) != len(tasks) {
			t.Fatalf("re-encoded pack: %v, %d tasks", err, len(again))
		}
		for i := range again {
			if again[i].ID != tasks[i].ID || !bytes.Equal(again[i].Body, tasks[i].Body) {
				t.Fatalf("task %d changed in a round trip", i)
			}
		}
	})
}
