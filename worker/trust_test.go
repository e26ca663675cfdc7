package worker

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

func TestTaskEnviron(t *testing.T) {
	workerEnv := []string{
		"PATH=/usr/bin", "HOME=/root", "LC_ALL=C.UTF-8", "TZ=UTC",
		"AWS_SECRET_ACCESS_KEY=secret", "AWS_ACCESS_KEY_ID=id", "TASKIQ_GO_SIGNING_KEY=/k",
		"DAGSTER_HOME=/d", "DAGSTER_X=1", "PYTHONPATH=/p", "malformed",
	}
	got := TaskEnviron(workerEnv, []string{"DAGSTER_*"}, map[string]string{"MINE": "1", "PATH": "/task/bin"})
	want := []string{"DAGSTER_HOME=/d", "DAGSTER_X=1", "HOME=/root", "LC_ALL=C.UTF-8", "MINE=1", "PATH=/task/bin", "TZ=UTC"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	// Named explicitly, a credential passes: it is the operator's choice.
	got = TaskEnviron(workerEnv, []string{"AWS_ACCESS_KEY_ID"}, nil)
	if !slices.Contains(got, "AWS_ACCESS_KEY_ID=id") || slices.Contains(got, "AWS_SECRET_ACCESS_KEY=secret") {
		t.Errorf("explicit pass: %q", got)
	}
}

func TestCheckAllowed(t *testing.T) {
	look := func(name string) (string, error) {
		switch name {
		case "python3":
			return "/usr/bin/python3", nil
		case "dagster":
			return "/venv/bin/dagster", nil
		}
		return "", errors.New("not found")
	}
	cases := []struct {
		argv0    string
		patterns []string
		ok       bool
	}{
		{"anything", nil, true},
		{"python3", []string{"python*"}, true},
		{"python3", []string{"/usr/bin/python3"}, true},
		{"/usr/bin/python3", []string{"python3"}, true},
		{"dagster", []string{"/venv/bin/*"}, true},
		{"sh", []string{"python*", "/venv/bin/*"}, false},
		{"/tmp/evil/python3", []string{"/usr/bin/python3"}, false},
		{"../venv/bin/dagster", []string{"/venv/bin/*"}, false},
	}
	for _, c := range cases {
		err := CheckAllowed(c.argv0, c.patterns, look)
		if (err == nil) != c.ok {
			t.Errorf("CheckAllowed(%q, %q) = %v, want ok=%v", c.argv0, c.patterns, err, c.ok)
		}
		var na *ErrNotAllowed
		if err != nil && (!errors.As(err, &na) || na.Error() != "command "+c.argv0+" is not allowed on this worker") {
			t.Errorf("error %v", err)
		}
	}
}

// A step client's stand-in (the link `dagster-taskiq worker start` puts
// first on the worker's PATH, to the native client) is allowed by a
// pattern naming the exact path of the Python client it shadows, as that
// client itself is; a link of that name to another program is not, nor a
// stand-in that shadows nothing, nor another command that the pattern does
// not name.
func TestCheckEnvAllowed(t *testing.T) {
	for _, c := range []struct {
		env, secrets map[string]string
		refused      string
	}{
		{env: map[string]string{"A": "1", "PYTHONPATH": "/code", "LANG": "C"}},
		{env: map[string]string{"LD_PRELOAD": "/tmp/x.so"}, refused: "LD_PRELOAD"},
		{env: map[string]string{"A": "1", "LD_LIBRARY_PATH": "/tmp"}, refused: "LD_LIBRARY_PATH"},
		{env: map[string]string{"DYLD_INSERT_LIBRARIES": "/tmp/x.dylib"}, refused: "DYLD_INSERT_LIBRARIES"},
		{env: map[string]string{"DAGSTER_TASKIQ_PYTHON": "/tmp/sh"}, refused: "DAGSTER_TASKIQ_PYTHON"},
		{env: map[string]string{"DAGSTER_TASKIQ_FORKSERVER": "/tmp/sock"}, refused: "DAGSTER_TASKIQ_FORKSERVER"},
		{secrets: map[string]string{"LD_AUDIT": "env:X"}, refused: "LD_AUDIT"},
		// Names that only look alike are the task's to set.
		{env: map[string]string{"OLD_PRELOAD": "1", "XLD_PRELOAD": "1", "DAGSTER_TASKIQ_S3_BUCKET": "b"}},
	} {
		err := CheckEnvAllowed(c.env, c.secrets)
		if c.refused == "" {
			if err != nil {
				t.Errorf("%v %v: refused: %v", c.env, c.secrets, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "variable "+c.refused+" is not allowed on this worker") {
			t.Errorf("%v %v: got %v, want %s refused", c.env, c.secrets, err, c.refused)
		}
	}
}

func TestCheckAllowedStandInForTheStepClient(t *testing.T) {
	root := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(target, rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return filepath.Dir(p)
	}
	native := mk("opt/taskiq/taskiq-go-step")
	script := mk("venv/bin/dagster-taskiq-step")
	other := mk("venv/bin/sh")
	venv := filepath.Dir(script)
	standIn := link(native, "standin/dagster-taskiq-step")
	forged := link(other, "forged/dagster-taskiq-step")
	lonely := link(native, "lonely/dagster-taskiq-step")
	clients := func() []string {
		real, err := filepath.EvalSymlinks(native)
		if err != nil {
			t.Fatal(err)
		}
		return []string{real}
	}
	look := func(dirs ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(d, name)); err == nil {
					return filepath.Join(d, name), nil
				}
			}
			return "", errors.New("not found")
		}
	}
	exact := []string{script}
	cases := []struct {
		name     string
		argv0    string
		dirs     []string
		patterns []string
		ok       bool
	}{
		{"the Python client", "dagster-taskiq-step", []string{venv}, exact, true},
		{"the native stand-in", "dagster-taskiq-step", []string{standIn, venv}, exact, true},
		{"by its name", "dagster-taskiq-step", []string{standIn, venv}, []string{"dagster-taskiq-step"}, true},
		{"a link to another program", "dagster-taskiq-step", []string{forged, venv}, exact, false},
		{"a stand-in shadowing nothing", "dagster-taskiq-step", []string{lonely}, exact, false},
		{"the stand-in by its own path", filepath.Join(standIn, "dagster-taskiq-step"), []string{standIn, venv}, exact, false},
		{"another command", "sh", []string{standIn, venv}, exact, false},
		{"another pattern", "dagster-taskiq-step", []string{standIn, venv}, []string{filepath.Join(root, "elsewhere", "*")}, false},
	}
	for _, c := range cases {
		a := Allowlist{Patterns: c.patterns, LookPath: look(c.dirs...), Path: strings.Join(c.dirs, string(os.PathListSeparator)), StepClients: clients}
		if err := a.Check(c.argv0); (err == nil) != c.ok {
			t.Errorf("%s: Check(%q) with PATH %q = %v, want ok=%v", c.name, c.argv0, a.Path, err, c.ok)
		}
	}
	// Without the worker's step clients nothing is a stand-in.
	a := Allowlist{Patterns: exact, LookPath: look(standIn, venv), Path: standIn + string(os.PathListSeparator) + venv}
	if err := a.Check("dagster-taskiq-step"); err == nil {
		t.Errorf("a stand-in was allowed without knowing the step clients")
	}
}

// A verifying worker binds a signed task to its queue, its priority and
// its age: one signed for another queue, one whose message claims a higher
// priority and one submitted longer ago than MaxTaskAge (a replay after
// its objects expired) each go to the dead-letter queue unrun and write
// nothing; a fresh recorded task runs.
func TestWorkerBindsSignedTasksToQueueAndAge(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	ctx := context.Background()
	privPEM, _, err := plan.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := plan.ParseSigningKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	now := time.Now()
	signed := func(id, queue, mark string) *plan.Task {
		tk := &plan.Task{ID: id, Queue: queue, Argv: []string{"touch", filepath.Join(dir, mark)}, SubmittedAt: now.Add(-time.Minute)}
		tk.Normalize()
		if err := k.Sign(tk); err != nil {
			t.Fatal(err)
		}
		return tk
	}
	sendBody := func(tk *plan.Task) {
		body, _ := json.Marshal(tk)
		if _, err := q.Send(ctx, qURL, sqs.Entry{Body: string(body)}); err != nil {
			t.Fatal(err)
		}
	}
	record := func(tk *plan.Task) {
		if _, err := st.PutTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	// Recorded, but signed for the gpu queue and sent to default.
	other := signed("other-queue", "gpu", "ran-other-queue")
	record(other)
	sendBody(other)
	// Submitted 31 days ago, under a 30-day limit: a replay of a task
	// whose objects have expired (so no claim stops it).
	old := signed("too-old", "", "ran-too-old")
	old.SubmittedAt = now.Add(-31 * 24 * time.Hour)
	if err := k.Sign(old); err != nil {
		t.Fatal(err)
	}
	sendBody(old)
	// Recorded, and sent again with a priority above its signed one.
	bumped := signed("bumped", "", "ran-bumped")
	record(bumped)
	bumpedBody, _ := json.Marshal(bumped)
	if _, err := q.Send(ctx, qURL, sqs.Entry{Body: string(bumpedBody), Attributes: map[string]string{plan.AttrPriority: "10"}}); err != nil {
		t.Fatal(err)
	}
	real := signed("victim", "", "ran-victim")
	record(real)
	sendBody(real)

	w := newTestWorker(t, q, st, func(c *Config) {
		c.Verifier = plan.NewVerifier(k.Public())
		c.MaxTaskAge = 30 * 24 * time.Hour
		c.DeadLetterURL = dlqURL
		c.Concurrency = 1
	})
	runUntil(t, w, func() bool { return q.Len(qURL) == 0 && st.Result("victim") != nil })

	for _, mark := range []string{"ran-other-queue", "ran-too-old", "ran-bumped"} {
		if _, err := os.Stat(filepath.Join(dir, mark)); err == nil {
			t.Errorf("%s: a refused task ran", mark)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ran-victim")); err != nil {
		t.Errorf("the recorded task did not run: %v", err)
	}
	if r := st.Result("victim"); r == nil || r.State != plan.StateSucceeded {
		t.Errorf("victim's result = %+v", r)
	}
	if n := q.Len(dlqURL); n != 3 {
		t.Fatalf("%d messages in the dead-letter queue, want 3", n)
	}
	reasons := map[string]bool{}
	for range 3 {
		msgs, err := q.Receive(ctx, dlqURL, 10, 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			reasons[m.Attributes["taskiq_reason"]] = true
		}
	}
	for _, want := range []string{
		"refused: task is signed for queue gpu but was received from queue default",
		"refused: task was submitted 31d ago, more than this worker's --max-task-age 30d (a replay after its objects expired)",
		"refused: task is signed with priority 0 but its message says 10",
	} {
		if !reasons[want] {
			t.Errorf("no dead letter says %q; got %v", want, reasons)
		}
	}
	for _, id := range []string{"other-queue", "too-old", "bumped"} {
		if st.Result(id) != nil {
			t.Errorf("%s has a result", id)
		}
		if d, err := st.GetDeadLetter(ctx, id); err == nil {
			t.Errorf("%s: a refusal by binding was recorded: %+v", id, d)
		}
	}
}

// A signed task read from the level of its signed priority runs, whether
// its submit sent it there straight or a worker parked it; one found in a
// higher level (a copy sent there to jump the queue) is refused unrun.
func TestWorkerBindsSignedTasksToTheirLevel(t *testing.T) {
	q, st := testbroker.NewQueue(), testbroker.NewStore()
	ctx := context.Background()
	privPEM, _, err := plan.GenerateKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := plan.ParseSigningKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	send := func(id, level string, prio int, attr bool) {
		tk := &plan.Task{ID: id, Argv: []string{"touch", filepath.Join(dir, id)}, Priority: prio, SubmittedAt: time.Now()}
		tk.Normalize()
		if err := k.Sign(tk); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutTask(ctx, tk); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(tk)
		attrs := map[string]string{}
		if attr {
			attrs[plan.AttrPriority] = strconv.Itoa(prio)
		}
		if _, err := q.Send(ctx, qURL+level, sqs.Entry{Body: string(body), Attributes: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	send("straight", "-p6", 6, true)
	send("clamped", "-p10", 40, true)
	send("lower", "-p0", 3, false)
	send("jumped", "-p10", 2, false)
	w := newTestWorker(t, q, st, func(c *Config) {
		c.Verifier = plan.NewVerifier(k.Public())
		c.DeadLetterURL = dlqURL
		c.Queues, c.Concurrency, c.Heartbeat = levelRefs(), 1, time.Hour
	})
	runUntil(t, w, func() bool {
		return q.Len(dlqURL) == 1 && st.Result("straight") != nil && st.Result("clamped") != nil && st.Result("lower") != nil
	})
	if _, err := os.Stat(filepath.Join(dir, "jumped")); err == nil {
		t.Error("a task found above its signed level ran")
	}
	msgs, err := q.Receive(ctx, dlqURL, 10, 0, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%v %v", msgs, err)
	}
	if got, want := msgs[0].Attributes["taskiq_reason"], "refused: task is signed with priority 2 but was received from level p10"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}
