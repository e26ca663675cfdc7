// Package ui owns the web dashboard: an http.Handler that serves a few
// embedded static files (plain HTML, CSS and JavaScript, no build step) and
// the JSON endpoints they poll for live updates. Everything it shows and
// does goes through Source, so the package knows nothing of SQS or S3.
//
// Actions (cancel, redrive) change state, so they are off unless
// Options.AllowActions is set, and even then a request must be a POST from
// the dashboard's own origin carrying the per-server CSRF token in both a
// cookie and a header (or form field).
package ui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

//go:embed static
var staticFS embed.FS

// CSRFCookie is the cookie that carries the server's CSRF token, and
// CSRFHeader the header (CSRFField the form field) that must repeat it.
const (
	CSRFCookie = "taskiq_csrf"
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf"
)

// Defaults for Options.
const (
	DefaultSampleEvery = 5 * time.Second
	// maxKnownGroups bounds the groups remembered for the task list.
	maxKnownGroups = 50
	// maxGroupNames bounds the group names listed from the store.
	maxGroupNames = 500
	// dlqCacheFor is how long a read of the dead-letter queue is reused:
	// reading it hides its messages for a moment, so open pages must not
	// read it on every poll.
	dlqCacheFor = 3 * time.Second
	// maxBody bounds the body of an action request.
	maxBody = 64 << 10
)

// Options configures a Server.
type Options struct {
	// AllowActions turns on cancel and redrive; without it every action
	// request is refused with 403.
	AllowActions bool
	// SampleEvery is how often Run samples the queue depths for their
	// history. Default DefaultSampleEvery.
	SampleEvery time.Duration
	// Log receives one line per refused or failed request.
	Log zerolog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// LoopbackOnly refuses requests whose Host is not a loopback address
	// or localhost: a web page whose own name resolves to 127.0.0.1 (DNS
	// rebinding) must not read the dashboard as if it were its origin.
	LoopbackOnly bool
}

// Server is the dashboard's handler.
type Server struct {
	src   Source
	opts  Options
	token string
	mux   *http.ServeMux
	hist  *history

	mu     sync.Mutex
	groups []string // most recently seen first
	dlqAt  time.Time
	dlq    []DeadLetter
}

// New builds the dashboard over src.
func New(src Source, opts Options) *Server {
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = DefaultSampleEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	s := &Server{src: src, opts: opts, token: hex.EncodeToString(b), mux: http.NewServeMux(), hist: newHistory()}
	static, _ := fs.Sub(staticFS, "static")
	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /api/session", s.session)
	s.mux.HandleFunc("GET /api/queues", s.queues)
	s.mux.HandleFunc("GET /api/workers", s.workers)
	s.mux.HandleFunc("GET /api/groups", s.groupNames)
	s.mux.HandleFunc("GET /api/tasks", s.tasks)
	s.mux.HandleFunc("GET /api/tasks/{id}", s.task)
	s.mux.HandleFunc("GET /api/dlq", s.deadLetters)
	s.mux.HandleFunc("POST /api/cancel", s.action(s.cancel))
	s.mux.HandleFunc("POST /api/redrive", s.action(s.redrive))
	return s
}

// Token is the server's CSRF token (for tests and for a program that
// drives the actions).
func (s *Server) Token() string { return s.token }

// ServeHTTP serves the dashboard.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	if s.opts.LoopbackOnly && !loopbackHost(r.Host) {
		s.fail(w, r, http.StatusMisdirectedRequest, errors.New("the dashboard answers only to a loopback host name (127.0.0.1, [::1] or localhost)"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run samples the queue depths every SampleEvery until ctx ends, so that
// the queues page has a history as soon as it is opened.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.SampleEvery)
	defer t.Stop()
	for {
		if rows, err := s.src.Queues(ctx); err == nil {
			s.hist.add(s.opts.Now(), rows, s.opts.SampleEvery/2)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: s.token, Path: "/", SameSite: http.SameSiteStrictMode})
	data, err := staticFS.ReadFile("static/index.html")
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(data)
}

// Session is what the page learns about the server at start.
type Session struct {
	AllowActions bool `json:"allow_actions"`
	// SampleEvery is the queue history's sampling period in seconds.
	SampleEvery float64 `json:"sample_every"`
}

func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Session{AllowActions: s.opts.AllowActions, SampleEvery: s.opts.SampleEvery.Seconds()})
}

// QueueRow is a queue with its recent history.
type QueueRow struct {
	QueueDepth
	History []Sample `json:"history"`
}

func (s *Server) queues(w http.ResponseWriter, r *http.Request) {
	rows, err := s.src.Queues(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	s.hist.add(s.opts.Now(), rows, time.Second)
	out := make([]QueueRow, len(rows))
	for i, q := range rows {
		out[i] = QueueRow{QueueDepth: q, History: s.hist.get(q)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
}

func (s *Server) workers(w http.ResponseWriter, r *http.Request) {
	ws, err := s.src.Workers(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if ws == nil {
		ws = []Worker{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": ws})
}

// historyLimit is how many of the newest tasks the list shows without a
// group.
const historyLimit = 200

// TaskList is the answer of /api/tasks.
type TaskList struct {
	Tasks []TaskRow `json:"tasks"`
	// Summary counts the tasks listed (before the state filter) by state.
	Summary map[string]int `json:"summary"`
	// Groups are the groups this server has seen, most recent first.
	Groups []string `json:"groups"`
	// Scope says where the list comes from: "group" (every task of one
	// group), or "recent" (the newest historyLimit tasks of the history
	// index that match the labels and time).
	Scope string `json:"scope"`
}

func (s *Server) tasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	group := q.Get("group")
	var labels [][2]string
	for _, l := range q["label"] {
		if l == "" {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			s.fail(w, r, http.StatusBadRequest, errors.New("label filter must be KEY=VALUE"))
			return
		}
		labels = append(labels, [2]string{k, v})
	}
	var since time.Time
	if d := q.Get("since"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil || dur <= 0 {
			s.fail(w, r, http.StatusBadRequest, errors.New("since must be a duration such as 30m or 2h"))
			return
		}
		since = s.opts.Now().Add(-dur)
	}
	var rows []TaskRow
	var err error
	list := TaskList{Scope: "group"}
	if group != "" {
		rows, err = s.src.GroupTasks(r.Context(), group)
		if errors.Is(err, ErrNotFound) {
			s.fail(w, r, http.StatusNotFound, err)
			return
		}
		if err == nil {
			s.remember(group)
		}
	} else {
		list.Scope = "recent"
		want := map[string]string{}
		for _, kv := range labels {
			want[kv[0]] = kv[1]
		}
		rows, err = s.src.Recent(r.Context(), HistoryQuery{Labels: want, Since: since, Limit: historyLimit})
		for _, t := range rows {
			if t.Group != "" {
				s.remember(t.Group)
			}
		}
	}
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	list.Summary = map[string]int{}
	list.Tasks = []TaskRow{}
	state := q.Get("state")
	for _, t := range rows {
		if !matchLabels(t.Labels, labels) || (!since.IsZero() && t.SubmittedAt.Before(since)) {
			continue
		}
		list.Summary[t.State]++
		if state == "" || t.State == state {
			list.Tasks = append(list.Tasks, t)
		}
	}
	// Newest first: ids are time-ordered when submit made them, and the
	// submit time breaks ties between given ids.
	sort.SliceStable(list.Tasks, func(i, j int) bool {
		a, b := list.Tasks[i], list.Tasks[j]
		if !a.SubmittedAt.Equal(b.SubmittedAt) {
			return a.SubmittedAt.After(b.SubmittedAt)
		}
		return a.ID > b.ID
	})
	list.Groups = s.knownGroups()
	writeJSON(w, http.StatusOK, list)
}

func matchLabels(have map[string]string, want [][2]string) bool {
	for _, kv := range want {
		if v, ok := have[kv[0]]; !ok || v != kv[1] {
			return false
		}
	}
	return true
}

func (s *Server) remember(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.groups, group); i >= 0 {
		s.groups = slices.Delete(s.groups, i, i+1)
	}
	s.groups = slices.Insert(s.groups, 0, group)
	if len(s.groups) > maxKnownGroups {
		s.groups = s.groups[:maxKnownGroups]
	}
}

func (s *Server) knownGroups() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.groups...)
}

func (s *Server) groupNames(w http.ResponseWriter, r *http.Request) {
	names, more, err := s.src.Groups(r.Context(), maxGroupNames)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": names, "more": more})
}

func (s *Server) task(w http.ResponseWriter, r *http.Request) {
	t, err := s.src.Task(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, err)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if t.Group != "" {
		s.remember(t.Group)
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	fresh := s.dlq != nil && s.opts.Now().Sub(s.dlqAt) < dlqCacheFor
	dls := s.dlq
	s.mu.Unlock()
	if !fresh {
		var err error
		if dls, err = s.src.DeadLetters(r.Context()); err != nil {
			s.fail(w, r, http.StatusBadGateway, err)
			return
		}
		if dls == nil {
			dls = []DeadLetter{}
		}
		s.mu.Lock()
		s.dlq, s.dlqAt = dls, s.opts.Now()
		s.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": dls})
}

// ActionRequest is the body of /api/cancel and /api/redrive (JSON, or a
// form with repeated "id" fields and a "group" field).
type ActionRequest struct {
	IDs   []string `json:"ids"`
	Group string   `json:"group,omitempty"`
}

// action wraps an action handler with the checks every action passes:
// actions allowed, same origin, CSRF token.
func (s *Server) action(h func(context.Context, ActionRequest) ([]Outcome, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.opts.AllowActions {
			s.fail(w, r, http.StatusForbidden, errors.New("actions are turned off: start the dashboard with --allow-actions"))
			return
		}
		if err := sameOrigin(r); err != nil {
			s.fail(w, r, http.StatusForbidden, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		req, token, err := readAction(r)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, err)
			return
		}
		c, cerr := r.Cookie(CSRFCookie)
		if cerr != nil || !equal(c.Value, s.token) || !equal(token, s.token) {
			s.fail(w, r, http.StatusForbidden, errors.New("missing or wrong CSRF token: reload the dashboard"))
			return
		}
		out, err := h(r.Context(), req)
		var bad *requestError
		if errors.As(err, &bad) {
			s.fail(w, r, http.StatusBadRequest, err)
			return
		}
		if errors.Is(err, ErrNotFound) {
			writeJSON(w, http.StatusNotFound, map[string]any{"outcomes": out, "error": err.Error()})
			return
		}
		if err != nil {
			s.opts.Log.Warn().Err(err).Str("path", r.URL.Path).Msg("ui: action failed")
			writeJSON(w, http.StatusBadGateway, map[string]any{"outcomes": out, "error": err.Error()})
			return
		}
		if out == nil {
			out = []Outcome{}
		}
		s.opts.Log.Info().Str("path", r.URL.Path).Int("n", len(out)).Msg("ui: action done")
		writeJSON(w, http.StatusOK, map[string]any{"outcomes": out})
	}
}

// sameOrigin refuses a request a browser sent from another site or
// origin. Browsers send Sec-Fetch-Site and Origin on every POST; a program
// that sends neither is not a browser and still needs the token.
func sameOrigin(r *http.Request) error {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" && sfs != "same-origin" && sfs != "none" {
		return errors.New("cross-origin request refused (Sec-Fetch-Site: " + sfs + ")")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return errors.New("cross-origin request refused (Origin: " + o + ")")
		}
	}
	return nil
}

func readAction(r *http.Request) (ActionRequest, string, error) {
	var req ActionRequest
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return req, "", errors.New("body is not a JSON action request")
		}
		return req, r.Header.Get(CSRFHeader), nil
	}
	if err := r.ParseForm(); err != nil {
		return req, "", errors.New("body is not a form")
	}
	req.IDs, req.Group = r.PostForm["id"], r.PostForm.Get("group")
	token := r.Header.Get(CSRFHeader)
	if token == "" {
		token = r.PostForm.Get(CSRFField)
	}
	return req, token, nil
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (s *Server) cancel(ctx context.Context, req ActionRequest) ([]Outcome, error) {
	if (len(req.IDs) == 0) == (req.Group == "") {
		return nil, badRequest("cancel needs task ids or a group, not both")
	}
	return s.src.Cancel(ctx, req.IDs, req.Group)
}

func (s *Server) redrive(ctx context.Context, req ActionRequest) ([]Outcome, error) {
	if len(req.IDs) == 0 {
		return nil, badRequest("redrive needs the ids of the dead letters")
	}
	out, err := s.src.Redrive(ctx, req.IDs)
	s.mu.Lock()
	s.dlq = nil // show the queue as it is now
	s.mu.Unlock()
	return out, err
}

// badRequest is an action refused for its content, answered with 400.
func badRequest(msg string) error { return &requestError{msg} }

type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	if code >= 500 || code == http.StatusForbidden {
		s.opts.Log.Warn().Err(err).Str("path", r.URL.Path).Int("status", code).Msg("ui: request refused or failed")
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
