package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

func scrape(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestCountersMove(t *testing.T) {
	m := New("w1")
	h := m.Handler(func() error { return nil })
	m.TaskStarted("default")
	m.TaskStarted("default")
	m.TaskEnded("default", plan.StateSucceeded, 1500*time.Millisecond)
	m.Received("default", 2, 30*time.Millisecond)
	m.BackendError("s3", "put_result")

	code, body := scrape(t, h, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`taskiq_tasks_started_total{queue="default",worker="w1"} 2`,
		`taskiq_tasks_ended_total{queue="default",state="succeeded",worker="w1"} 1`,
		`taskiq_tasks_in_flight{queue="default",worker="w1"} 1`,
		`taskiq_task_run_seconds_count{queue="default",state="succeeded",worker="w1"} 1`,
		`taskiq_messages_received_total{queue="default",worker="w1"} 2`,
		`taskiq_receive_seconds_count{queue="default",worker="w1"} 1`,
		`taskiq_backend_errors_total{op="put_result",service="s3",worker="w1"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestHealthz(t *testing.T) {
	m := New("w1")
	var health error
	h := m.Handler(func() error { return health })
	if code, body := scrape(t, h, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthy: %d %q", code, body)
	}
	health = errors.New("no successful receive for 2m0s")
	if code, body := scrape(t, h, "/healthz"); code != 503 || !strings.Contains(body, "no successful receive") {
		t.Fatalf("unhealthy: %d %q", code, body)
	}
}
