package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A key's kind leaves out the task id, the group and what an end key
// carries, so that one operation is one row however many tasks ran.
func TestClassifyNamesKinds(t *testing.T) {
	cases := []struct{ method, target, inm, want string }{
		{"PUT", "/b/taskiq/tasks/t1/task.json", "*", "PUT taskiq/tasks/*/task.json (if-none-match)"},
		{"GET", "/b/taskiq/tasks/t1/result.json", "", "GET taskiq/tasks/*/result.json"},
		{"PUT", "/b/taskiq/groups/g-1/t1", "", "PUT taskiq/groups/*"},
		{"PUT", "/b/taskiq/group-ends/g-1/t1/1,succeeded,0,1,5452,vm,w,2026-12-02T08:44:26Z,", "", "PUT taskiq/group-ends/*"},
		{"PUT", "/b/taskiq/index/8203799354675-22f9dfbc-9996.json", "", "PUT taskiq/index/*"},
		{"GET", "/b?list-type=2&prefix=taskiq/groups/g-1/", "", "LIST taskiq/groups/*/"},
		{"GET", "/b?list-type=2&prefix=taskiq/tasks/t1/", "", "LIST taskiq/tasks/*/"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.target, nil)
		if c.inm != "" {
			r.Header.Set("If-None-Match", c.inm)
		}
		if svc, op := classify(r); svc != "s3" || op != c.want {
			t.Errorf("%s %s: got %s %q, want s3 %q", c.method, c.target, svc, op, c.want)
		}
	}
}

// The times report sums each operation's time and gives its mean.
func TestTimesReport(t *testing.T) {
	c := &counter{n: map[[2]string]int{}, busy: map[[2]string]time.Duration{}}
	c.add("sqs", "ReceiveMessage", 300*time.Millisecond)
	c.add("sqs", "ReceiveMessage", 100*time.Millisecond)
	c.add("s3", "GET x", 10*time.Millisecond)
	w := httptest.NewRecorder()
	times(w, c)
	lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows, got %q", w.Body.String())
	}
	if f := strings.Fields(lines[1]); len(f) != 5 || f[1] != "ReceiveMessage" || f[2] != "2" || f[3] != "0.40" || f[4] != "200.0" {
		t.Errorf("first row (the costliest) = %q", lines[1])
	}
}
