package s3results

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// An end key gives back the status the result itself gives, to the JSON
// byte: poll --group prints from keys what poll ID prints from results.
func TestGroupEndRoundTrip(t *testing.T) {
	k := Keys{Prefix: "p"}
	cet := time.FixedZone("CET", 3600)
	for _, r := range []*plan.Result{
		{ID: "a1", Group: "run-7", State: plan.StateSucceeded, ExitCode: plan.IntPtr(0), Attempt: 1,
			Worker:     plan.WorkerInfo{Host: "ip-10-0-0-1.ec2.internal", PID: 4242, ID: "w-1"},
			FinishedAt: time.Date(2026, 12, 2, 5, 0, 1, 123456789, time.UTC)},
		{ID: "a2", Group: "run-7", State: plan.StateFailed, ExitCode: plan.IntPtr(-1), Attempt: 3,
			Worker: plan.WorkerInfo{Host: "höst name/with,odd%chars+", PID: 1, ID: "w:2"},
			Error:  "stdout lost: s3 put s3://b/k, 50% off: 100+ tries / é", FinishedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, cet)},
		{ID: "a3", Group: "g", State: plan.StateCancelled, Error: "cancelled before it started: why, not"},
	} {
		key, ok := k.GroupEnd(r)
		if !ok {
			t.Fatalf("%s: no key", r.ID)
		}
		if !strings.HasPrefix(key, k.GroupEndDir(r.Group)+r.ID+"/") {
			t.Errorf("%s is not under its task's end prefix", key)
		}
		e, ok := k.ParseGroupEnd(r.Group, key)
		if !ok || e.ErrorOmitted {
			t.Fatalf("%s: parse %q: ok=%v omitted=%v", r.ID, key, ok, e.ErrorOmitted)
		}
		want := plan.Status{ID: r.ID, State: r.State, ExitCode: r.ExitCode, Worker: r.Worker, Attempt: r.Attempt,
			Group: r.Group, Error: r.Error, FinishedAt: r.FinishedAt}
		got, _ := json.Marshal(e.Status)
		exp, _ := json.Marshal(want)
		if string(got) != string(exp) {
			t.Errorf("%s:\n got %s\nwant %s", r.ID, got, exp)
		}
	}
}

// An error too long for a key is left out and flagged; a status that does
// not fit at all gets no key; keys in other formats are not read.
func TestGroupEndLimits(t *testing.T) {
	k := Keys{Prefix: "p"}
	r := &plan.Result{ID: "a", Group: "g", State: plan.StateFailed, ExitCode: plan.IntPtr(1), Attempt: 1,
		Error: strings.Repeat("x", 2000)}
	key, ok := k.GroupEnd(r)
	if !ok || len(key) > maxKeyBytes {
		t.Fatalf("key %d bytes, ok=%v", len(key), ok)
	}
	e, ok := k.ParseGroupEnd("g", key)
	if !ok || !e.ErrorOmitted || e.Status.Error != "" || e.Status.State != plan.StateFailed {
		t.Fatalf("parsed %+v ok=%v", e, ok)
	}
	r.Worker.Host = strings.Repeat("h", 1100)
	if _, ok := k.GroupEnd(r); ok {
		t.Error("a key longer than S3 allows was made")
	}
	if _, ok := k.GroupEnd(&plan.Result{ID: "a", State: plan.StateSucceeded}); ok {
		t.Error("a task without a group got an end key")
	}
	dir := k.GroupEndDir("g")
	for _, bad := range []string{dir + "a", dir + "a/2,succeeded,0,1,0,h,w,,", dir + "a/1,running,,1,0,h,w,,",
		dir + "a/1,succeeded,x,1,0,h,w,,", dir + "a/1,succeeded,0,1,0,h,w,,,extra", dir + "/1,succeeded,0,1,0,h,w,,"} {
		if e, ok := k.ParseGroupEnd("g", bad); ok {
			t.Errorf("%q read as %+v", bad, e)
		}
	}
}
