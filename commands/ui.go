package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/devserver"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/ops"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/ui"
)

// defaultUIListen is where `ui` listens unless told.
const defaultUIListen = "127.0.0.1:8080"

// uiShowBytes bounds how much of one stored output stream the task page
// shows: its start, then the tail the result keeps inline.
const uiShowBytes = 256 << 10

func uiCommand() *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "serve the web dashboard",
		Description: "Serves a dashboard of the configured queues and bucket: queue depths by inbox and priority level with a\n" +
			"short history, workers, the newest tasks or those of a group, a task's attempts and its\n" +
			"output (live while it runs), and the dead letters, updated live. It is read-only unless\n" +
			"--allow-actions is given, which adds cancel and redrive buttons (POST requests from the\n" +
			"dashboard's own page, with a CSRF token).\n\n" +
			"   taskiq-go ui                                  # http://127.0.0.1:8080/\n" +
			"   taskiq-go ui --listen 127.0.0.1:0 --allow-actions\n\n" +
			"It listens on loopback unless --allow-remote is given: the dashboard has no login, so anyone\n" +
			"who reaches the port sees every task's command line. `taskiq-go dev` serves the same at /ui/.",
		Flags: withConn(
			&cli.StringFlag{Name: "listen", Value: defaultUIListen, Usage: "listen on `HOST:PORT` (port 0 picks a free one)"},
			&cli.BoolFlag{Name: "allow-actions", Usage: "allow cancelling tasks and redriving dead letters from the page"},
			&cli.BoolFlag{Name: "allow-remote", Usage: "allow a --listen address that is not loopback (no login: put it behind one)"},
			&cli.StringSliceFlag{Name: "queue", Aliases: []string{"q"}, Usage: "also show logical queue `NAME`, repeatable"},
			&cli.StringFlag{Name: "url-file", Usage: "write the dashboard's URL to `PATH` once it serves"},
		),
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("ui takes no arguments (did you mean --listen?)")
			}
			addr := cliContext.String("listen")
			loopback, err := checkListen(addr)
			if err != nil {
				return err
			}
			if !loopback && !cliContext.Bool("allow-remote") {
				return usagef("--listen %s is not a loopback address: the dashboard has no login; add --allow-remote to serve it anyway", addr)
			}
			s, err := resolveQueueAndBucket(cliContext)
			if err != nil {
				return err
			}
			longRunning()
			log := newLogger(cliContext, zerolog.InfoLevel)
			if !loopback {
				log.Warn().Str("listen", addr).Msg("the dashboard is served beyond this machine and has no login")
			}
			ctx, _, stop := commandContext(cliContext)
			defer stop()
			be, err := s.open(ctx, 0)
			if err != nil {
				return err
			}
			names := append([]string{plan.DefaultQueue}, s.QueueNames()...)
			names = append(names, nameList(cliContext, "queue")...)
			for _, n := range names {
				if _, err := s.QueueURLFor(n); err != nil {
					return err
				}
			}
			srv := ui.New(newUISource(s, be, names), ui.Options{AllowActions: cliContext.Bool("allow-actions"), Log: log, LoopbackOnly: loopback})
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return usagef("cannot listen on %s: %v", addr, errors.Unwrap(err))
			}
			url := "http://" + ln.Addr().String() + "/"
			go srv.Run(ctx)
			hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = hs.Shutdown(sctx)
			}()
			if p := cliContext.String("url-file"); p != "" {
				if err := writeFileAtomic(p, []byte(url+"\n")); err != nil {
					return &inputError{fmt.Errorf("write --url-file: %w", err)}
				}
			}
			fmt.Fprintln(cliContext.App.Writer, url)
			log.Info().Str("url", url).Bool("actions", cliContext.Bool("allow-actions")).Msg("dashboard ready")
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve dashboard: %w", err)
			}
			return nil
		},
	}
}

// checkListen refuses a listen address that cannot be one and says
// whether it is loopback only. An empty host means every interface.
func checkListen(addr string) (loopback bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, usagef("--listen %q is not HOST:PORT (for example 127.0.0.1:8080)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return false, usagef("--listen %q: port must be a number from 0 to 65535", addr)
	}
	if host == "localhost" {
		return true, nil
	}
	if host == "" {
		return false, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false, usagef("--listen %q: host must be an IP address or localhost", addr)
	}
	return ip.IsLoopback(), nil
}

// mountDevUI serves the dashboard (read-only) at /ui/ on the dev
// endpoint's own port, reading it with the settings of env (the export
// lines dev prints).
func mountDevUI(ctx context.Context, srv *devserver.Server, env map[string]string, log zerolog.Logger) error {
	for k, v := range env {
		os.Setenv(k, v)
	}
	s := &Settings{QueueURL: env["TASKIQ_GO_QUEUE_URL"], Bucket: srv.Bucket(), Prefix: DefaultPrefix,
		Region: srv.Region(), EndpointURL: srv.Endpoint(), DeadLetterURL: srv.QueueURL(devQueue + "-dlq")}
	be, err := s.open(ctx, 0)
	if err != nil {
		return err
	}
	h := ui.New(newUISource(s, be, []string{plan.DefaultQueue}), ui.Options{Log: log, LoopbackOnly: true})
	go h.Run(ctx)
	srv.Mount("/ui/", http.StripPrefix("/ui", h))
	log.Info().Str("url", srv.Endpoint()+"/ui/").Msg("dashboard ready")
	return nil
}

// uiSource is the dashboard's view of the queues and the store, over the
// same functions the commands use.
type uiSource struct {
	s     *Settings
	be    *backend.Backend
	names []string

	mu    sync.Mutex
	tasks map[string]*plan.Task // task records never change once written
}

var _ ui.Source = (*uiSource)(nil)

func newUISource(s *Settings, be *backend.Backend, names []string) *uiSource {
	return &uiSource{s: s, be: be, names: names, tasks: map[string]*plan.Task{}}
}

// notFound turns the store's "no such task" into the dashboard's.
func notFound(err error) error {
	if errors.Is(err, plan.ErrTaskNotFound) {
		return fmt.Errorf("%w: %v", ui.ErrNotFound, err)
	}
	return err
}

func (u *uiSource) Queues(ctx context.Context) ([]ui.QueueDepth, error) {
	rows, err := Queues(ctx, u.s, u.be, u.names)
	out := make([]ui.QueueDepth, len(rows))
	for i, r := range rows {
		out[i] = ui.QueueDepth{Name: r.Name, Band: r.Band, Visible: r.Visible, InFlight: r.InFlight, Delayed: r.Delayed}
	}
	return out, err
}

func (u *uiSource) Workers(ctx context.Context) ([]ui.Worker, error) {
	ws, err := Workers(ctx, u.be, time.Now())
	if err != nil {
		return nil, err
	}
	out := make([]ui.Worker, len(ws))
	for i, w := range ws {
		out[i] = ui.Worker{ID: w.Worker, Host: w.Host, PID: w.PID, Version: w.Version, Queues: w.Queues,
			Slots: w.Concurrency, Running: w.Running, Finished: w.Finished, StartedAt: w.StartedAt,
			HeartbeatAt: w.HeartbeatAt, AgeSeconds: w.AgeSeconds, Stale: w.Stale}
	}
	return out, nil
}

func (u *uiSource) GroupTasks(ctx context.Context, group string) ([]ui.TaskRow, error) {
	if err := plan.ValidName(group); err != nil {
		return nil, fmt.Errorf("%w: group %v", ui.ErrNotFound, err)
	}
	ids, err := ops.TaskIDs(ctx, u.be, nil, group)
	if err != nil {
		return nil, notFound(err)
	}
	return u.Tasks(ctx, ids)
}

func (u *uiSource) Groups(ctx context.Context, max int) ([]string, bool, error) {
	return u.be.Store.Groups(ctx, max)
}

func (u *uiSource) Recent(ctx context.Context, q ui.HistoryQuery) ([]ui.TaskRow, error) {
	rows, err := ops.Tasks(ctx, u.be, ops.TasksOptions{Labels: q.Labels, Since: q.Since, Limit: q.Limit, Now: time.Now()})
	out := make([]ui.TaskRow, len(rows))
	for i, r := range rows {
		out[i] = ui.TaskRow{ID: r.ID, Group: r.Group, Queue: r.Queue, State: string(r.State), ExitCode: r.ExitCode,
			Attempt: r.Attempt, Worker: r.Worker.String(), Labels: r.Labels, Error: r.Error,
			SubmittedAt: r.SubmittedAt, FinishedAt: r.FinishedAt}
	}
	return out, err
}

func (u *uiSource) Tasks(ctx context.Context, ids []string) ([]ui.TaskRow, error) {
	sts, errs := lifecycle.Statuses(ctx, u.be.Store, ids, time.Now())
	var out []ui.TaskRow
	for i, st := range sts {
		if errors.Is(errs[i], plan.ErrTaskNotFound) {
			continue
		}
		if errs[i] != nil {
			return nil, errs[i]
		}
		row := ui.TaskRow{ID: st.ID, Group: st.Group, State: string(st.State), ExitCode: st.ExitCode,
			Attempt: st.Attempt, Worker: st.Worker.String(), Error: st.Error, FinishedAt: st.FinishedAt}
		if t := u.task(ctx, st.ID); t != nil {
			row.Group, row.Queue, row.Labels, row.SubmittedAt = t.Group, t.Queue, t.Labels, t.SubmittedAt
		}
		out = append(out, row)
	}
	return out, nil
}

// task reads a task record once; nil when it cannot be read (the
// dashboard then shows what the status says).
func (u *uiSource) task(ctx context.Context, id string) *plan.Task {
	u.mu.Lock()
	t, ok := u.tasks[id]
	u.mu.Unlock()
	if ok {
		return t
	}
	t, err := u.be.Store.GetTask(ctx, id)
	if err != nil {
		return nil
	}
	u.mu.Lock()
	if len(u.tasks) > 10000 {
		clear(u.tasks)
	}
	u.tasks[id] = t
	u.mu.Unlock()
	return t
}

func (u *uiSource) Task(ctx context.Context, id string) (*ui.TaskDetail, error) {
	if err := plan.ValidName(id); err != nil {
		return nil, fmt.Errorf("%w: task id %v", ui.ErrNotFound, err)
	}
	snap, err := lifecycle.Read(ctx, u.be.Store, id)
	if err != nil {
		return nil, notFound(err)
	}
	st := snap.Status(id, time.Now())
	d := &ui.TaskDetail{TaskRow: ui.TaskRow{ID: id, Group: st.Group, State: string(st.State), ExitCode: st.ExitCode,
		Attempt: st.Attempt, Worker: st.Worker.String(), Error: st.Error, FinishedAt: st.FinishedAt}, Cancel: snap.Cancel,
		EnvNames: []string{}, MaxAttempts: 1}
	if t := u.task(ctx, id); t != nil {
		d.Group, d.Queue, d.Labels, d.SubmittedAt = t.Group, t.Queue, t.Labels, t.SubmittedAt
		d.Argv, d.Dir, d.Priority = t.Argv, t.Dir, t.Priority
		d.MaxAttempts = max(t.MaxAttempts, 1)
		if t.Timeout > 0 {
			d.Timeout = t.Timeout.Std().String()
		}
		for k := range t.Env {
			d.EnvNames = append(d.EnvNames, k)
		}
		sort.Strings(d.EnvNames)
	}
	last := snap.LastClaim()
	if snap.Result != nil {
		last = max(last, snap.Result.Attempt)
	}
	for n := 1; n <= last; n++ {
		a, err := u.attempt(ctx, id, n, snap)
		if err != nil {
			return nil, err
		}
		d.Attempts = append(d.Attempts, a)
	}
	return d, nil
}

// attempt reads what is stored of attempt n: its result record, or the
// running marker while it runs, or only its claim (an attempt whose worker
// stopped without a record).
func (u *uiSource) attempt(ctx context.Context, id string, n int, snap *lifecycle.Snapshot) (ui.Attempt, error) {
	var r *plan.Result
	switch {
	case snap.Result != nil && snap.Result.Attempt == n:
		r = snap.Result
	case slices.Contains(snap.Attempts, n):
		var err error
		if r, err = u.be.Store.GetAttempt(ctx, id, n); err != nil && !errors.Is(err, plan.ErrTaskNotFound) && !errors.Is(err, s3results.ErrNoObject) {
			return ui.Attempt{}, err
		}
	}
	if r != nil {
		return ui.Attempt{N: n, State: string(r.State), Worker: r.Worker.String(), ExitCode: r.ExitCode, Signal: r.Signal,
			Error: r.Error, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
			Stdout: u.stream(ctx, r.Stdout), Stderr: u.stream(ctx, r.Stderr)}, nil
	}
	run := snap.Running
	if run == nil || run.Attempt != n {
		c, err := u.be.Store.GetRunning(ctx, id, n)
		if errors.Is(err, s3results.ErrNoObject) {
			c, err = u.be.Store.GetClaim(ctx, id, n)
		}
		if errors.Is(err, s3results.ErrNoObject) {
			return ui.Attempt{N: n, State: "unknown"}, nil
		}
		if err != nil {
			return ui.Attempt{}, err
		}
		run = c
	}
	state := string(plan.StateRunning)
	if time.Since(run.HeartbeatAt) > run.StaleAfter() {
		state = string(plan.StateLost)
	}
	a := ui.Attempt{N: n, State: state, Worker: run.Worker.String(), StartedAt: run.StartedAt, HeartbeatAt: run.HeartbeatAt}
	if l, err := u.be.Store.GetLive(ctx, id, n); err == nil {
		a.Stdout, a.Stderr = liveStream(l.Stdout), liveStream(l.Stderr)
	}
	return a, nil
}

// liveStream is what the page shows of a running attempt's stored tail.
func liveStream(l s3results.LiveStream) ui.Stream {
	return ui.Stream{Live: true, Size: l.End(), Text: strings.ToValidUTF8(string(l.Data), "\uFFFD"), Truncated: l.Offset > 0}
}

// stream is what the page shows of one stored stream: all of it when
// inline, else up to uiShowBytes of its start and the stored tail.
func (u *uiSource) stream(ctx context.Context, o plan.Output) ui.Stream {
	s := ui.Stream{Stored: true, Size: o.Size, Text: o.Data}
	if o.Key == "" {
		return s
	}
	rc, err := u.be.Store.OpenLog(ctx, o.Key)
	if err != nil {
		s.Text, s.Truncated = o.Tail, true
		return s
	}
	defer rc.Close()
	head, _ := io.ReadAll(io.LimitReader(rc, uiShowBytes))
	s.Text = strings.ToValidUTF8(string(head), "\uFFFD")
	if int64(len(head)) < o.Size {
		s.Text += "\n…\n" + o.Tail
		s.Truncated = true
	}
	return s
}

func (u *uiSource) DeadLetters(ctx context.Context) ([]ui.DeadLetter, error) {
	dls, err := DLQList(ctx, u.s, u.be, DefaultDLQMax)
	out := make([]ui.DeadLetter, len(dls))
	for i, d := range dls {
		out[i] = ui.DeadLetter{MessageID: d.MessageID, TaskID: d.TaskID, Reason: d.Reason, SourceQueue: d.sourceName(),
			Worker: d.Worker, SentAt: d.SentAt, ReceiveCount: d.ReceiveCount, Body: d.Body}
	}
	return out, err
}

func (u *uiSource) Cancel(ctx context.Context, ids []string, group string) ([]ui.Outcome, error) {
	if err := checkNames(ids, group); err != nil {
		return nil, fmt.Errorf("%w: %v", ui.ErrNotFound, err)
	}
	cs, _, err := ops.Cancel(ctx, u.be, ops.CancelOptions{IDs: ids, Group: group, Reason: "cancelled from the dashboard"}, time.Now())
	out := make([]ui.Outcome, len(cs))
	for i, c := range cs {
		out[i] = ui.Outcome{ID: c.ID, Outcome: c.Outcome}
	}
	return out, notFound(err)
}

func (u *uiSource) Redrive(ctx context.Context, ids []string) ([]ui.Outcome, error) {
	moved, err := DLQRedrive(ctx, u.s, u.be, ids, "", DefaultDLQMax)
	out := make([]ui.Outcome, len(moved))
	for i, m := range moved {
		out[i] = ui.Outcome{ID: m.MessageID, Outcome: "moved to " + m.To}
	}
	return out, notFound(err)
}
