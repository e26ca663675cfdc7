package serve

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// fakeOps answers from memory; block holds every Poll until it is closed,
// to prove requests run concurrently.
type fakeOps struct {
	mu     sync.Mutex
	states map[string]plan.State
	block  chan struct{}
	polls  int
}

func (f *fakeOps) Submit(_ context.Context, tasks []*plan.Task) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, t := range tasks {
		f.states[t.ID] = plan.StateQueued
		out = append(out, t.ID)
	}
	return out, nil
}

func (f *fakeOps) Poll(ctx context.Context, ids []string, group string) ([]plan.Status, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	var out []plan.Status
	for _, id := range ids {
		st, ok := f.states[id]
		if !ok {
			return nil, plan.ErrTaskNotFound
		}
		out = append(out, plan.Status{ID: id, State: st})
	}
	return out, nil
}

// Watch follows the tasks through fakeWatcher.
func (f *fakeOps) Watch(ctx context.Context, ids []string, group string) (Watcher, error) {
	if _, err := f.Poll(ctx, ids, group); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.polls--
	f.mu.Unlock()
	return &fakeWatcher{f: f, ids: ids, ended: map[string]plan.Status{}}, nil
}

// fakeWatcher reads a task seen ended never again, as ops.Poller does,
// and counts its rounds, the reads they made and its full reads; a full
// read says so in each status's error.
type fakeWatcher struct {
	f                   *fakeOps
	ids                 []string
	ended               map[string]plan.Status
	rounds, reads, full int
}

func (w *fakeWatcher) read(full bool) []plan.Status {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	var out []plan.Status
	for _, id := range w.ids {
		if st, ok := w.ended[id]; ok {
			out = append(out, st)
			continue
		}
		w.reads++
		st := plan.Status{ID: id, State: w.f.states[id]}
		if full {
			st.Error = "read in full"
		}
		if st.State.Final() {
			w.ended[id] = st
		}
		out = append(out, st)
	}
	return out
}

func (w *fakeWatcher) Round(context.Context) ([]plan.Status, error) {
	w.rounds++
	return w.read(false), nil
}

func (w *fakeWatcher) Full(context.Context) ([]plan.Status, error) {
	w.full++
	return w.read(true), nil
}

func (f *fakeOps) Cancel(context.Context, []string, string, string) (any, error) {
	return nil, errors.New("not here")
}

func (f *fakeOps) Result(_ context.Context, id string) (*plan.Result, error) {
	return nil, plan.ErrNotFinished
}

func code(err error) int {
	switch {
	case errors.Is(err, plan.ErrTaskNotFound):
		return 67
	case errors.Is(err, plan.ErrNotFinished):
		return 75
	}
	var de *plan.DecodeError
	var ve *plan.ValidationError
	if errors.As(err, &de) || errors.As(err, &ve) {
		return 65
	}
	return 70
}

func serveLines(t *testing.T, ops Ops, in string) map[string]Response {
	t.Helper()
	var out strings.Builder
	s := &Server{Ops: ops, Code: code}
	if err := s.Serve(context.Background(), strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := map[string]Response{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r struct {
			ID    json.RawMessage `json:"id"`
			OK    json.RawMessage `json:"ok"`
			Error *Error          `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("response %q: %v", line, err)
		}
		if _, dup := got[string(r.ID)]; dup && string(r.ID) != "null" {
			t.Fatalf("two responses for id %s", r.ID)
		}
		got[string(r.ID)] = Response{ID: r.ID, OK: string(r.OK), Error: r.Error}
	}
	return got
}

func TestServeAnswersEachRequestByID(t *testing.T) {
	ops := &fakeOps{states: map[string]plan.State{"a": plan.StateSucceeded}}
	got := serveLines(t, ops, strings.Join([]string{
		`{"id":1,"op":"submit","args":{"spec":{"id":"b","argv":["true"]}}}`,
		`{"id":"two","op":"poll","args":{"ids":["a"]}}`,
		`{"id":3,"op":"poll","args":{"ids":["nope"]}}`,
		`{"id":4,"op":"frobnicate"}`,
		`not json`,
		``,
		`{"id":5,"op":"submit","args":{"spec":{"argv":[]}}}`,
		`{"id":6,"op":"result","args":{"id":"a"}}`,
		`{"id":7,"op":"poll","args":{"ids":["a"],"group":"g"}}`,
		`{"id":8,"op":"submit","args":{"batch":[{"id":"c","argv":["x"]},{"id":"d","argv":["y"]}]}}`,
		`{"id":9,"op":"wait","args":{"ids":["a"],"timeout":"1s"}}`,
	}, "\n")) // no final newline: the last line still counts
	want := map[string]string{
		"1": `ok ["b"]`, `"two"`: `ok [{"id":"a","state":"succeeded","exit_code":null,"worker":{"host":"","pid":0,"id":""},"attempt":0}]`,
		"3": "error 67", "4": "error 64", "null": "error 65", "5": "error 65", "6": "error 75",
		"7": "error 64", "8": `ok ["c","d"]`, "9": `ok [{"id":"a","state":"succeeded","exit_code":null,"worker":{"host":"","pid":0,"id":""},"attempt":0}]`,
	}
	if len(got) != len(want) {
		t.Errorf("got %d responses, want %d: %v", len(got), len(want), got)
	}
	for id, w := range want {
		r, ok := got[id]
		if !ok {
			t.Errorf("no response for id %s", id)
			continue
		}
		var s string
		if r.Error != nil {
			s = "error " + itoa(r.Error.Code)
			if r.Error.Message == "" {
				t.Errorf("id %s: error without message", id)
			}
		} else {
			s = "ok " + r.OK.(string)
		}
		if s != w {
			t.Errorf("id %s: got %s, want %s", id, s, w)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestServeRunsRequestsConcurrentlyAndDrainsAtEOF(t *testing.T) {
	ops := &fakeOps{states: map[string]plan.State{"a": plan.StateRunning}, block: make(chan struct{})}
	pr, pw := io.Pipe()
	var out strings.Builder
	done := make(chan error, 1)
	go func() { done <- (&Server{Ops: ops, Code: code, Limit: 4}).Serve(context.Background(), pr, &out) }()
	for i := 0; i < 4; i++ {
		if _, err := io.WriteString(pw, `{"id":`+itoa(i)+`,"op":"poll","args":{"ids":["a"]}}`+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	// All four are in flight at once (the limit), none answered yet: the
	// server has read EOF and must wait for them.
	select {
	case err := <-done:
		t.Fatalf("Serve returned before its requests finished: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(ops.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 4 {
		t.Fatalf("got %d responses, want 4:\n%s", n, out.String())
	}
}

// A wait follows its tasks by rounds of one Watcher (ops.Poller in the
// command), never by a Poll of every task each round, and a wait that times
// out answers with the unfinished tasks read in full.
func TestWaitReturnsLastStatesAtItsTimeout(t *testing.T) {
	ops := &fakeOps{states: map[string]plan.State{"a": plan.StateRunning, "b": plan.StateSucceeded}}
	var w *fakeWatcher
	watching := &watchSpy{fakeOps: ops, got: &w}
	got := serveLines(t, watching, `{"id":1,"op":"wait","args":{"ids":["a","b"],"timeout":"300ms","interval":"50ms"}}`+"\n")
	r := got["1"]
	if r.Error != nil || !strings.Contains(r.OK.(string), `"state":"running",`) || !strings.Contains(r.OK.(string), `"error":"read in full"}`) {
		t.Fatalf("got %+v", r)
	}
	if ops.polls != 0 {
		t.Errorf("wait made %d polls of every task, want 0", ops.polls)
	}
	if w.rounds < 2 || w.full != 1 {
		t.Fatalf("wait made %d rounds and %d full reads, want several and 1", w.rounds, w.full)
	}
	// b ended at the first round and is never read again: one read of it,
	// one of a per round and at the end.
	if want := 1 + w.rounds + w.full; w.reads != want {
		t.Errorf("%d reads in %d rounds, want %d", w.reads, w.rounds, want)
	}
}

// watchSpy keeps the watcher a wait got.
type watchSpy struct {
	*fakeOps
	got **fakeWatcher
}

func (s *watchSpy) Watch(ctx context.Context, ids []string, group string) (Watcher, error) {
	w, err := s.fakeOps.Watch(ctx, ids, group)
	if err == nil {
		*s.got = w.(*fakeWatcher)
	}
	return w, err
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"submit","args":{"spec":{"argv":["true"]}}}`,
		`{"id":"x","op":"poll","args":{"group":"g"}}`,
		`{"id":1.5e3,"op":"wait","args":{"ids":["a"],"timeout":"2s"}}`,
		`{"id":null,"op":"cancel"}`, `{"op":"x"}`, `[]`, `{"id":{},"op":"poll"}`, `{}{}`, `"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := DecodeRequest(line)
		if err != nil {
			var ue *UsageError
			var me *MalformedError
			if !errors.As(err, &ue) && !errors.As(err, &me) {
				t.Fatalf("error of an unexpected kind %T: %v", err, err)
			}
		}
		// Whatever id is kept must be echoed as valid JSON.
		if len(req.ID) > 0 && !json.Valid(req.ID) {
			t.Fatalf("id %q is not valid JSON", req.ID)
		}
		if err == nil {
			switch req.Op {
			case OpSubmit, OpPoll, OpWait, OpCancel, OpResult, OpVersion:
			default:
				t.Fatalf("accepted op %q", req.Op)
			}
			// A request that decodes must be handled without a panic.
			s := &Server{Ops: &fakeOps{states: map[string]plan.State{}}, Code: code}
			r := s.handle(context.Background(), line)
			if r.Error != nil && r.Error.Code == 70 && strings.HasPrefix(r.Error.Message, "internal error") {
				t.Fatalf("handling %q panicked: %s", line, r.Error.Message)
			}
		}
	})
}
