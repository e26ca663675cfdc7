package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeSource is an in-memory Source that records the actions it was asked for.
type fakeSource struct {
	tasks     map[string][]TaskRow // by group
	cancelled []string
	redriven  []string
}

func newFake() *fakeSource {
	zero, three := 0, 3
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakeSource{tasks: map[string][]TaskRow{
		"run1": {
			{ID: "t1", Group: "run1", State: "succeeded", ExitCode: &zero, Labels: map[string]string{"team": "a"}, SubmittedAt: at},
			{ID: "t2", Group: "run1", State: "failed", ExitCode: &three, Labels: map[string]string{"team": "b"}, SubmittedAt: at.Add(time.Second)},
			{ID: "t3", Group: "run1", State: "running", Labels: map[string]string{"team": "a"}, SubmittedAt: at.Add(2 * time.Second)},
		},
	}}
}

func (f *fakeSource) Queues(context.Context) ([]QueueDepth, error) {
	return []QueueDepth{{Name: "default", Band: "inbox", Visible: 2, InFlight: 1}, {Name: "dead-letter", Visible: 1}}, nil
}

func (f *fakeSource) Workers(context.Context) ([]Worker, error) {
	return []Worker{{ID: "w1", Host: "h", Queues: []string{"default"}, Slots: 2, Running: []string{"t3"}, AgeSeconds: 1}}, nil
}

func (f *fakeSource) GroupTasks(_ context.Context, g string) ([]TaskRow, error) {
	rows, ok := f.tasks[g]
	if !ok {
		return nil, fmt.Errorf("group %s: %w", g, ErrNotFound)
	}
	return rows, nil
}

func (f *fakeSource) Groups(_ context.Context, max int) ([]string, bool, error) {
	var out []string
	for g := range f.tasks {
		out = append(out, g)
	}
	sort.Strings(out)
	return out[:min(max, len(out))], len(out) > max, nil
}

func (f *fakeSource) Recent(_ context.Context, q HistoryQuery) ([]TaskRow, error) {
	var out []TaskRow
	for _, rows := range f.tasks {
		out = append(out, rows...)
	}
	return out[:min(q.Limit, len(out))], nil
}

func (f *fakeSource) Tasks(_ context.Context, ids []string) ([]TaskRow, error) {
	var out []TaskRow
	for _, rows := range f.tasks {
		for _, t := range rows {
			if slices.Contains(ids, t.ID) {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

func (f *fakeSource) Task(_ context.Context, id string) (*TaskDetail, error) {
	for _, rows := range f.tasks {
		for _, t := range rows {
			if t.ID == id {
				return &TaskDetail{TaskRow: t, Argv: []string{"echo", "hi"}, EnvNames: []string{"SECRET"},
					Attempts: []Attempt{{N: 1, State: t.State, Stdout: Stream{Stored: true, Size: 3, Text: "hi\n"}}}}, nil
			}
		}
	}
	return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
}

func (f *fakeSource) DeadLetters(context.Context) ([]DeadLetter, error) {
	return []DeadLetter{{MessageID: "m1", TaskID: "t9", Reason: "cannot decode", ReceiveCount: 1, Body: "{"}}, nil
}

func (f *fakeSource) Cancel(_ context.Context, ids []string, group string) ([]Outcome, error) {
	if group != "" {
		f.cancelled = append(f.cancelled, "group:"+group)
		return []Outcome{{ID: group, Outcome: "cancelled"}}, nil
	}
	f.cancelled = append(f.cancelled, ids...)
	out := []Outcome{}
	for _, id := range ids {
		out = append(out, Outcome{ID: id, Outcome: "cancelling"})
	}
	return out, nil
}

func (f *fakeSource) Redrive(_ context.Context, ids []string) ([]Outcome, error) {
	f.redriven = append(f.redriven, ids...)
	return []Outcome{{ID: ids[0], Outcome: "moved"}}, nil
}

const host = "127.0.0.1:8080"

func get(t *testing.T, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://"+host+path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %q", path, rec.Code, rec.Body.String())
	}
	return rec.Code, body
}

// post sends an action as the dashboard's own page would, then changes it
// with edit (nil: unchanged).
func post(h *Server, path, body string, edit func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "http://"+host+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Origin", "http://"+host)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set(CSRFHeader, h.Token())
	r.AddCookie(&http.Cookie{Name: CSRFCookie, Value: h.Token()})
	if edit != nil {
		edit(r)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestActionsRefusedWithoutFlag(t *testing.T) {
	src := newFake()
	h := New(src, Options{})
	for _, path := range []string{"/api/cancel", "/api/redrive"} {
		rec := post(h, path, `{"ids":["t3"]}`, nil)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "--allow-actions") {
			t.Errorf("%s without --allow-actions: %d %s", path, rec.Code, rec.Body)
		}
	}
	if len(src.cancelled)+len(src.redriven) != 0 {
		t.Fatalf("actions ran: %v %v", src.cancelled, src.redriven)
	}
	if _, s := get(t, h, "/api/session"); s["allow_actions"] != false {
		t.Errorf("session says actions allowed: %v", s)
	}
}

func TestActionsNeedCSRFToken(t *testing.T) {
	src := newFake()
	h := New(src, Options{AllowActions: true})
	cases := map[string]func(*http.Request){
		"no cookie":    func(r *http.Request) { r.Header.Del("Cookie") },
		"no header":    func(r *http.Request) { r.Header.Del(CSRFHeader) },
		"wrong header": func(r *http.Request) { r.Header.Set(CSRFHeader, strings.Repeat("0", 64)) },
		"wrong both": func(r *http.Request) {
			r.Header.Del("Cookie")
			r.AddCookie(&http.Cookie{Name: CSRFCookie, Value: "x"})
			r.Header.Set(CSRFHeader, "x")
		},
	}
	for name, edit := range cases {
		if rec := post(h, "/api/cancel", `{"ids":["t3"]}`, edit); rec.Code != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	if len(src.cancelled) != 0 {
		t.Fatalf("cancel ran without the token: %v", src.cancelled)
	}
	rec := post(h, "/api/cancel", `{"ids":["t3"]}`, nil)
	if rec.Code != http.StatusOK || !reflect.DeepEqual(src.cancelled, []string{"t3"}) {
		t.Fatalf("cancel with the token: %d %s, cancelled %v", rec.Code, rec.Body, src.cancelled)
	}
	var out struct{ Outcomes []Outcome }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Outcomes) != 1 || out.Outcomes[0].Outcome != "cancelling" {
		t.Fatalf("outcomes: %s", rec.Body)
	}
	// A form post carries the token in a field.
	form := url.Values{"group": {"run1"}, CSRFField: {h.Token()}}.Encode()
	rec = post(h, "/api/cancel", form, func(r *http.Request) {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Del(CSRFHeader)
	})
	if rec.Code != http.StatusOK || src.cancelled[1] != "group:run1" {
		t.Fatalf("form cancel: %d %s %v", rec.Code, rec.Body, src.cancelled)
	}
}

func TestActionsRefusedCrossOrigin(t *testing.T) {
	src := newFake()
	h := New(src, Options{AllowActions: true})
	cases := map[string]func(*http.Request){
		"other origin":     func(r *http.Request) { r.Header.Set("Origin", "http://evil.example") },
		"other port":       func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:9999") },
		"null origin":      func(r *http.Request) { r.Header.Set("Origin", "null") },
		"cross-site fetch": func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") },
		"same-site fetch":  func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-site") },
	}
	for name, edit := range cases {
		rec := post(h, "/api/redrive", `{"ids":["m1"]}`, edit)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "cross-origin") {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body)
		}
	}
	if len(src.redriven) != 0 {
		t.Fatalf("redrive ran cross-origin: %v", src.redriven)
	}
	// A program that is no browser sends neither header and needs only the token.
	rec := post(h, "/api/redrive", `{"ids":["m1"]}`, func(r *http.Request) {
		r.Header.Del("Origin")
		r.Header.Del("Sec-Fetch-Site")
	})
	if rec.Code != http.StatusOK || !reflect.DeepEqual(src.redriven, []string{"m1"}) {
		t.Fatalf("redrive: %d %s %v", rec.Code, rec.Body, src.redriven)
	}
}

func TestActionRequestsChecked(t *testing.T) {
	h := New(newFake(), Options{AllowActions: true})
	for body, want := range map[string]int{
		`{}`:                           http.StatusBadRequest,
		`{"ids":["a"],"group":"run1"}`: http.StatusBadRequest,
		`not json`:                     http.StatusBadRequest,
	} {
		if rec := post(h, "/api/cancel", body, nil); rec.Code != want {
			t.Errorf("cancel %s: %d, want %d", body, rec.Code, want)
		}
	}
	if rec := post(h, "/api/redrive", `{"ids":[]}`, nil); rec.Code != http.StatusBadRequest {
		t.Errorf("redrive of nothing: %d", rec.Code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://"+host+"/api/cancel", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET of an action: %d", rec.Code)
	}
}

func TestJSONShapes(t *testing.T) {
	h := New(newFake(), Options{})
	code, q := get(t, h, "/api/queues")
	rows := q["queues"].([]any)
	if code != 200 || len(rows) != 2 {
		t.Fatalf("queues: %d %v", code, q)
	}
	if got := keys(rows[0].(map[string]any)); !reflect.DeepEqual(got, []string{"band", "delayed", "history", "in_flight", "name", "visible"}) {
		t.Errorf("queue keys %v", got)
	}
	if hist := rows[0].(map[string]any)["history"].([]any); len(hist) != 1 || len(hist[0].([]any)) != 4 {
		t.Errorf("history %v", hist)
	}
	_, w := get(t, h, "/api/workers")
	if got := keys(w["workers"].([]any)[0].(map[string]any)); !reflect.DeepEqual(got, []string{"age_seconds", "finished", "heartbeat_at",
		"host", "id", "pid", "queues", "running", "slots", "stale", "started_at", "version"}) {
		t.Errorf("worker keys %v", got)
	}
	code, d := get(t, h, "/api/tasks/t1")
	if code != 200 || d["argv"] == nil || d["env_names"].([]any)[0] != "SECRET" || len(d["attempts"].([]any)) != 1 {
		t.Errorf("task: %d %v", code, d)
	}
	if _, ok := d["env"]; ok {
		t.Errorf("task page carries the environment's values: %v", d)
	}
	if code, _ := get(t, h, "/api/tasks/nope"); code != http.StatusNotFound {
		t.Errorf("unknown task: %d", code)
	}
	if code, _ := get(t, h, "/api/tasks?group=nope"); code != http.StatusNotFound {
		t.Errorf("unknown group: %d", code)
	}
	if code, g := get(t, h, "/api/groups"); code != 200 || !reflect.DeepEqual(g["groups"], []any{"run1"}) || g["more"] != false {
		t.Errorf("groups: %d %v", code, g)
	}
	code, dl := get(t, h, "/api/dlq")
	if code != 200 || dl["dead_letters"].([]any)[0].(map[string]any)["reason"] != "cannot decode" {
		t.Errorf("dlq: %d %v", code, dl)
	}
}

func TestTaskFilters(t *testing.T) {
	h := New(newFake(), Options{})
	ids := func(path string) ([]string, map[string]any) {
		code, body := get(t, h, path)
		if code != 200 {
			t.Fatalf("%s: %d %v", path, code, body)
		}
		var out []string
		for _, r := range body["tasks"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
		return out, body
	}
	got, body := ids("/api/tasks?group=run1")
	if !reflect.DeepEqual(got, []string{"t3", "t2", "t1"}) || body["scope"] != "group" {
		t.Errorf("newest first: %v %v", got, body["scope"])
	}
	got, body = ids("/api/tasks?group=run1&label=team%3Da&state=succeeded")
	if !reflect.DeepEqual(got, []string{"t1"}) {
		t.Errorf("label and state: %v", got)
	}
	// The summary counts the tasks before the state filter.
	if s := body["summary"].(map[string]any); s["succeeded"] != 1.0 || s["running"] != 1.0 || s["failed"] != nil {
		t.Errorf("summary %v", s)
	}
	if code, _ := get(t, h, "/api/tasks?label=nokey"); code != http.StatusBadRequest {
		t.Errorf("bad label: %d", code)
	}
	if code, _ := get(t, h, "/api/tasks?since=soon"); code != http.StatusBadRequest {
		t.Errorf("bad since: %d", code)
	}
	// Without a group: the newest tasks of the history.
	got, body = ids("/api/tasks")
	if !reflect.DeepEqual(got, []string{"t3", "t2", "t1"}) || body["scope"] != "recent" || body["groups"].([]any)[0] != "run1" {
		t.Errorf("recent tasks: %v %v", got, body)
	}
}

func TestIndexAndAssets(t *testing.T) {
	h := New(newFake(), Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://"+host+"/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `src="static/app.js"`) {
		t.Fatalf("index: %d %s", rec.Code, rec.Body)
	}
	c := rec.Result().Cookies()
	if len(c) != 1 || c[0].Name != CSRFCookie || c[0].Value != h.Token() || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %v", c)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for _, p := range []string{"/static/app.js", "/static/style.css"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://"+host+p, nil))
		if rec.Code != 200 || rec.Body.Len() < 100 {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
	if New(newFake(), Options{}).Token() == h.Token() {
		t.Error("two servers share a CSRF token")
	}
}

func TestLoopbackOnlyRefusesOtherHostNames(t *testing.T) {
	h := New(newFake(), Options{LoopbackOnly: true})
	for hostname, want := range map[string]int{
		"127.0.0.1:8080":    http.StatusOK,
		"localhost:8080":    http.StatusOK,
		"[::1]:8080":        http.StatusOK,
		"evil.example:8080": http.StatusMisdirectedRequest,
		"10.1.2.3:8080":     http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest("GET", "http://"+hostname+"/api/session", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("Host %s: %d, want %d", hostname, rec.Code, want)
		}
	}
}
