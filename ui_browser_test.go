package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/taskiq-go/taskiq-go/internal/cdp"
	"github.com/taskiq-go/taskiq-go/plan"
)

// screenshotDir is where TestDashboardInBrowser leaves a PNG of each page
// ($TASKIQ_GO_SCREENSHOTS overrides it), to look at after a run.
const screenshotDir = ".cache/ui-screenshots"

// TestDashboardInBrowser drives the dashboard in a headless Chromium against
// a real `taskiq-go dev` with a real worker and real tasks: every page
// renders its rows, a task's page follows the task while it runs (its live
// tail grows) to its output without a reload, cancel and redrive work with
// --allow-actions, and a cancel is refused without the flag and from another origin even with the
// right CSRF token. Chromium comes from Debian's package (.ci/run installs
// it); without it the test is skipped, unless TASKIQ_GO_REQUIRE_BROWSER is
// set (as in CI), when it fails.
func TestDashboardInBrowser(t *testing.T) {
	chromium := cdp.Find()
	if chromium == "" {
		if os.Getenv("TASKIQ_GO_REQUIRE_BROWSER") != "" {
			t.Fatal("no chromium in PATH and TASKIQ_GO_REQUIRE_BROWSER is set: apt-get install -y chromium")
		}
		t.Skip("browser tests skipped: no chromium in PATH (apt-get install -y chromium, or set TASKIQ_GO_CHROMIUM)")
	}
	if testing.Short() {
		t.Skip("browser tests skipped in -short mode")
	}
	shots := os.Getenv("TASKIQ_GO_SCREENSHOTS")
	if shots == "" {
		shots = screenshotDir
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()

	// The endpoint, one worker, and the tasks the pages show.
	start(t, dir, nil, "dev", "--addr", "127.0.0.1:0", "--workers", "1", "--concurrency", "4",
		"--heartbeat", "1s", "--wait-time", "1s", "--kill-grace", "1s", "--env-file", filepath.Join(dir, "dev.env"))
	env := readEnv(t, ctx, filepath.Join(dir, "dev.env"))
	endpoint := envValue(env, "AWS_ENDPOINT_URL")
	half, gate := filepath.Join(dir, "half"), filepath.Join(dir, "go-on")
	taskiq(t, env, "submit", "--id", "br-ok", "--group", "br-run", "--label", "team=a", "--", "echoargs", "hello")
	taskiq(t, env, "submit", "--id", "br-fail", "--group", "br-run", "--label", "team=b", "--", "exitn", "3")
	taskiq(t, env, "submit", "--id", "br-live", "--group", "br-run", "--label", "team=a", "--env", "SECRET_TOKEN=hunter2",
		"--", "sh", "-c", `echo started; echo warming up >&2; while [ ! -f "$1" ]; do sleep 0.05; done; echo halfway; `+
			`while [ ! -f "$2" ]; do sleep 0.05; done; echo finished`, "sh", half, gate)
	taskiq(t, env, "submit", "--id", "br-victim", "--group", "br-cancel", "--", "sleeper", "5m")
	taskiq(t, env, "submit", "--id", "br-victim2", "--group", "br-cancel", "--", "sleeper", "5m")
	sendRaw(t, ctx, env, "this is not a task")
	waitState(t, ctx, env, "succeeded", "br-ok")
	waitState(t, ctx, env, "failed", "br-fail")
	waitState(t, ctx, env, "running", "br-live", "br-victim", "br-victim2")

	// Two dashboards: one with actions, one without.
	start(t, dir, env, "ui", "--listen", "127.0.0.1:0", "--allow-actions", "--url-file", filepath.Join(dir, "rw.url"))
	start(t, dir, env, "ui", "--listen", "127.0.0.1:0", "--url-file", filepath.Join(dir, "ro.url"))
	rw := strings.TrimSpace(string(waitFile(t, ctx, filepath.Join(dir, "rw.url"))))
	ro := strings.TrimSpace(string(waitFile(t, ctx, filepath.Join(dir, "ro.url"))))

	logf, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	b, err := cdp.Launch(chromium, filepath.Join(dir, "profile"), logf)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.NewPage(ctx, 1280, 800)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			data, _ := os.ReadFile(logf.Name())
			t.Fatalf("%v\nchromium log tail: %s", err, tail(string(data), 2000))
		}
	}
	wait := func(what, expr string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := p.WaitFor(wctx, expr); err != nil {
			var text string
			_ = p.Eval(ctx, "document.body.innerText", &text)
			t.Fatalf("%s: %v\npage text:\n%s", what, err, text)
		}
	}
	shot := func(name string) {
		t.Helper()
		must(p.Screenshot(ctx, filepath.Join(shots, name+".png")))
	}
	evalString := func(expr string) string {
		t.Helper()
		var s string
		must(p.Eval(ctx, expr, &s))
		return s
	}

	// Queues: the inbox and every level of the default queue, and the
	// dead-letter queue.
	must(p.Navigate(ctx, rw+"#/queues"))
	wait("queue rows", `document.querySelectorAll('#queues-table tr[data-queue="default"]').length === `+strconv.Itoa(len(plan.Bands))+` &&
		document.querySelector('#queues-table tr[data-queue="dead-letter"]')`)
	for _, band := range []string{"inbox", "p10", "p5", "p0", "below0"} {
		wait("band "+band, `document.querySelector('#queues-table tr[data-queue="default"][data-band="`+band+`"]')`)
	}
	shot("queues")

	// Workers: dev's worker, running the three long tasks.
	must(p.Navigate(ctx, rw+"#/workers"))
	wait("worker row", `(() => { const r = document.querySelector('#workers-table tr[data-worker="dev-1"]');
		return r && ["br-live", "br-victim", "br-victim2"].every((id) => r.textContent.includes(id)) && r.textContent.includes("3 / 4"); })()`)
	shot("workers")

	// Tasks of a group, newest first, with the summary; then filtered.
	must(p.Navigate(ctx, rw+"#/tasks?group=br-run"))
	wait("group rows", `[...document.querySelectorAll('#tasks-table tbody tr')].map((r) => r.dataset.id + ":" + r.dataset.state).join(" ")
		=== "br-live:running br-fail:failed br-ok:succeeded"`)
	wait("summary", `document.querySelector('#task-summary').textContent.includes("3 tasks")`)
	shot("tasks")
	must(p.Navigate(ctx, rw+"#/tasks?group=br-run&label=team%3Da"))
	wait("label filter", `[...document.querySelectorAll('#tasks-table tbody tr')].map((r) => r.dataset.id).join(" ") === "br-live br-ok"`)
	must(p.Navigate(ctx, rw+"#/tasks?group=br-run&state=failed"))
	wait("state filter", `[...document.querySelectorAll('#tasks-table tbody tr')].map((r) => r.dataset.id).join(" ") === "br-fail"`)
	// Without a group: the newest tasks of the history.
	must(p.Navigate(ctx, rw+"#/tasks"))
	wait("known tasks", `document.querySelectorAll('#tasks-table tbody tr[data-id]').length >= 5 && document.querySelector('#tasks-scope')`)
	wait("group list", `[...document.querySelectorAll('#group-list a')].map((a) => a.textContent).join(" ") === "br-cancel br-run"`)
	shot("tasks-all")

	// A running task's page follows it to its end without a reload.
	must(p.Navigate(ctx, rw+"#/task/br-live"))
	wait("running task", `document.querySelector('#task-meta').dataset.state === "running" &&
		document.querySelector('section[data-attempt="1"]').dataset.state === "running" &&
		document.querySelector('#stdout-1').dataset.stored === "live" &&
		document.querySelector('#stdout-1').textContent === "started\n" &&
		document.querySelector('#stderr-1').textContent === "warming up\n"`)
	if text := evalString("document.body.innerText"); !strings.Contains(text, "SECRET_TOKEN") || strings.Contains(text, "hunter2") ||
		!strings.Contains(text, "vm/dev-1") && !strings.Contains(text, "/dev-1") {
		t.Fatalf("task page shows env values or no worker:\n%s", text)
	}
	shot("task-running")
	must(p.Eval(ctx, "window.__noReload = 1", nil))
	// The live tail grows while the task still runs.
	if err := os.WriteFile(half, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait("live tail grown", `document.querySelector('#task-meta').dataset.state === "running" &&
		document.querySelector('#stdout-1').dataset.stored === "live" &&
		document.querySelector('#stdout-1').textContent === "started\nhalfway\n"`)
	shot("task-running-more")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait("finished task", `document.querySelector('#task-meta').dataset.state === "succeeded" &&
		document.querySelector('#stdout-1').textContent === "started\nhalfway\nfinished\n" &&
		document.querySelector('#stderr-1').textContent === "warming up\n"`)
	if evalString("String(window.__noReload)") != "1" {
		t.Fatal("the task page reloaded instead of updating")
	}
	shot("task-done")
	must(p.Navigate(ctx, rw+"#/task/br-fail"))
	wait("failed task", `document.querySelector('#task-meta').dataset.state === "failed" && document.querySelector('section[data-attempt="1"]').textContent.includes("3")`)

	// Dead letters, with the worker's reason.
	waitDeadLetters(t, ctx, env, 1)
	must(p.Navigate(ctx, rw+"#/dlq"))
	wait("dead letter row", `[...document.querySelectorAll('#dlq-table tbody tr[data-message]')].some((r) => /decode|JSON|invalid/i.test(r.textContent))`)
	shot("dlq")

	// Without --allow-actions: no buttons, and a POST with the token is refused.
	must(p.Navigate(ctx, ro+"#/tasks?group=br-cancel"))
	wait("read-only rows", `document.querySelectorAll('#tasks-table tbody tr[data-id]').length === 2`)
	if n := evalString(`String(document.querySelectorAll('button').length)`); n != "1" { // the filter form's
		t.Fatalf("read-only dashboard shows %s buttons", n)
	}
	status := evalString(`fetch("api/cancel", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrfToken()},
		body: JSON.stringify({ids: ["br-victim2"]})}).then((r) => r.text().then((t) => r.status + " " + t))`)
	if !strings.HasPrefix(status, "403 ") || !strings.Contains(status, "--allow-actions") {
		t.Fatalf("cancel without --allow-actions: %s", status)
	}
	shot("tasks-read-only")

	// From another origin, even with the right token: refused.
	must(p.Navigate(ctx, rw+"#/tasks?group=br-cancel"))
	token := evalString(`csrfToken()`)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="POST" action="%sapi/cancel">
<input name="id" value="br-victim2"><input name="csrf" value="%s"></form>
<script>document.getElementById("f").submit()</script>`, rw, token)
	}))
	defer evil.Close()
	must(p.Navigate(ctx, evil.URL))
	wait("cross-origin answer", `location.href.endsWith("/api/cancel") && document.body.innerText.includes("cross-origin request refused")`)
	shot("cross-origin-refused")

	// With --allow-actions: cancel one task from its row.
	must(p.Navigate(ctx, rw+"#/tasks?group=br-cancel"))
	wait("cancel button", `document.querySelector('tr[data-id="br-victim"] button[data-action="cancel"]')`)
	must(p.Eval(ctx, `document.querySelector('tr[data-id="br-victim"] button[data-action="cancel"]').click()`, nil))
	wait("cancel outcome", `document.querySelector('#flash').textContent.includes("br-victim: cancelling")`)
	wait("cancelled row", `document.querySelector('tr[data-id="br-victim"]').dataset.state === "cancelled"`)
	shot("tasks-cancelled")
	waitState(t, ctx, env, "cancelled", "br-victim")
	// The refused ones did nothing.
	if st := states(t, env, "br-victim2"); st["br-victim2"] != "running" {
		t.Fatalf("a refused cancel cancelled br-victim2: %v", st)
	}

	// Redrive the dead letter.
	must(p.Navigate(ctx, rw+"#/dlq"))
	wait("redrive checkbox", `document.querySelector('#dlq-table input[type="checkbox"]')`)
	must(p.Eval(ctx, `document.querySelector('#dlq-table input[type="checkbox"]').click(); document.querySelector('#redrive-selected').click()`, nil))
	wait("redrive outcome", `document.querySelector('#flash').dataset.kind === "ok" && document.querySelector('#flash').textContent.includes("moved to")`)
	shot("dlq-redriven")

	// A whole group, with the second click the button asks for.
	must(p.Navigate(ctx, rw+"#/tasks?group=br-cancel"))
	wait("group cancel button", `document.querySelector('#cancel-group')`)
	must(p.Eval(ctx, `document.querySelector('#cancel-group').click()`, nil))
	wait("armed", `document.querySelector('#cancel-group').textContent.startsWith("Click again")`)
	if st := states(t, env, "br-victim2"); st["br-victim2"] != "running" {
		t.Fatalf("one click cancelled the group: %v", st)
	}
	must(p.Eval(ctx, `document.querySelector('#cancel-group').click()`, nil))
	wait("group cancel outcome", `document.querySelector('#flash').textContent.includes("br-victim2: cancelling")`)
	waitState(t, ctx, env, "cancelled", "br-victim2")

	// dev serves the same dashboard at /ui/.
	must(p.Navigate(ctx, endpoint+"/ui/#/workers"))
	wait("dev ui worker row", `document.querySelector('#workers-table tr[data-worker="dev-1"]')`)
	if evalString(`document.body.dataset.actions`) != "false" {
		t.Fatal("dev's dashboard allows actions")
	}
	shot("dev-ui-workers")
}

// start runs taskiq-go ARGS in the background with env added, and stops it
// with SIGINT at the end of the test.
func start(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("taskiq-go", args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(dir, args[0]+fmt.Sprint(time.Now().UnixNano())+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
}

// taskiq runs taskiq-go ARGS to the end and returns its stdout.
func taskiq(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("taskiq-go", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("taskiq-go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

func states(t *testing.T, env []string, ids ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(taskiq(t, env, append([]string{"poll", "--json"}, ids...)...)))
	for sc.Scan() {
		var st struct{ ID, State string }
		if json.Unmarshal(sc.Bytes(), &st) == nil {
			out[st.ID] = st.State
		}
	}
	return out
}

// waitState waits until every task is in state.
func waitState(t *testing.T, ctx context.Context, env []string, state string, ids ...string) {
	t.Helper()
	for {
		st := states(t, env, ids...)
		ok := true
		for _, id := range ids {
			ok = ok && st[id] == state
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("tasks never all %s: %v", state, st)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitDeadLetters(t *testing.T, ctx context.Context, env []string, n int) {
	t.Helper()
	for {
		if strings.Count(taskiq(t, env, "dlq", "list", "--json"), "\n") >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("fewer than %d dead letters", n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitFile(t *testing.T, ctx context.Context, path string) []byte {
	t.Helper()
	for {
		if data, err := os.ReadFile(path); err == nil {
			return data
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never appeared", path)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readEnv waits for dev's env file and returns its settings as NAME=value.
func readEnv(t *testing.T, ctx context.Context, path string) []string {
	t.Helper()
	var env []string
	for _, line := range strings.Split(string(waitFile(t, ctx, path)), "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env = append(env, k+"="+strings.Trim(v, "'"))
		}
	}
	return env
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// sendRaw puts a body that is no task on the default queue: the worker
// dead-letters it with its reason.
func sendRaw(t *testing.T, ctx context.Context, env []string, body string) {
	t.Helper()
	api := awssqs.New(awssqs.Options{
		Region:       envValue(env, "AWS_REGION"),
		BaseEndpoint: aws.String(envValue(env, "AWS_ENDPOINT_URL")),
		Credentials:  credentials.NewStaticCredentialsProvider(envValue(env, "AWS_ACCESS_KEY_ID"), envValue(env, "AWS_SECRET_ACCESS_KEY"), ""),
	})
	if _, err := api.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(envValue(env, "TASKIQ_GO_QUEUE_URL")), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
