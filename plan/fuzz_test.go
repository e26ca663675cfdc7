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

// FuzzVerifyMessage feeds arbitrary queue bodies through the decoder and the
// signature check a verifying worker runs: it must never panic, and a body
// it accepts must carry a signature by the trusted key over exactly what it
// decoded (so an edit of any byte of a signed body is refused or harmless).
func FuzzVerifyMessage(f *testing.F) {
	k, err := ParseSigningKey(fuzzKeyPEM)
	if err != nil {
		f.Fatal(err)
	}
	v := NewVerifier(k.Public())
	good := &Task{ID: "a1", Argv: []string{"echo", "hi"}, Env: map[string]string{"A": "b"}}
	good.Normalize()
	if err := k.Sign(good); err != nil {
		f.Fatal(err)
	}
	body, _ := json.Marshal(good)
	f.Add(body)
	f.Add([]byte(`{"argv":["true"],"sig":{"key":"0000000000000000","ed25519":"AAAA"}}`))
	f.Add([]byte(`{"argv":["true"],"sig":null}`))
	f.Add([]byte(`{"argv":["true"],"sig":{"key":1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		task, _, err := DecodeMessage(body)
		if err != nil || task == nil {
			return
		}
		if v.Verify(task) != nil {
			return
		}
		payload, err := SigningPayload(task)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := SigningPayload(good)
		if string(payload) != string(want) {
			t.Fatalf("accepted a task whose content differs from what was signed: %s", payload)
		}
	})
}

// fuzzKeyPEM is a fixed key so that fuzz inputs are reproducible.
var fuzzKeyPEM = []byte(`-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGZ1enota2V5LWZvci10YXNraXEtZ28tdGVzdHMtMDAx
-----END PRIVATE KEY-----
`)
