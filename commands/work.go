package commands

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/metrics"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/worker"
)

func workerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "queue", Aliases: []string{"q"}, Usage: "logical queue `NAME` to serve, repeatable (default: default)", EnvVars: []string{"TASKIQ_GO_QUEUES"}},
		&cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: runtime.NumCPU(), DefaultText: "number of CPUs", Usage: "run up to `N` tasks at once", EnvVars: []string{"TASKIQ_GO_CONCURRENCY"}},
		&cli.DurationFlag{Name: "visibility-timeout", Value: 30 * time.Second, Usage: "take a lease of `DURATION` on each message; the heartbeat extends it while the task runs"},
		&cli.DurationFlag{Name: "heartbeat", Value: 3 * time.Second, Usage: "extend leases, refresh running markers and check cancels every `DURATION`"},
		&cli.DurationFlag{Name: "wait-time", Value: 20 * time.Second, Usage: "wait up to `DURATION` in one receive (long poll, at most 20s)"},
		// SQS's 12-hour cap on a message's visibility, made small in tests.
		&cli.DurationFlag{Name: "visibility-cap", Hidden: true, Value: 12 * time.Hour},
		&cli.DurationFlag{Name: "kill-grace", Value: 10 * time.Second, Usage: "wait `DURATION` between SIGTERM and SIGKILL when a task is stopped"},
		&cli.DurationFlag{Name: "shutdown-grace", Value: 30 * time.Second, Usage: "on SIGTERM, let running tasks go on for up to `DURATION` before they are stopped and released"},
		&cli.DurationFlag{Name: "dead-letter-check", Value: 5 * time.Minute, Usage: "look for tasks SQS moved to the dead-letter queue at start and every `DURATION`, so that poll says dead_letter (0: never)"},
		&cli.IntFlag{Name: "max-tasks", Usage: "exit after finishing `N` tasks (0: no limit)"},
		&cli.DurationFlag{Name: "idle-exit", Usage: "exit after `DURATION` with nothing to do (0: never)"},
		&cli.StringFlag{Name: "worker-id", Usage: "`ID` reported in results (default: w-HOST-PID)", EnvVars: []string{"TASKIQ_GO_WORKER_ID"}},
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus /metrics and /healthz on `HOST:PORT`", EnvVars: []string{"TASKIQ_GO_METRICS_ADDR"}},
	}
}

func workCommand() *cli.Command {
	return &cli.Command{
		Name:  "work",
		Usage: "run tasks from the queues until stopped",
		Description: "Receives only as many tasks as it has free slots, runs each as a subprocess in its own\n" +
			"process group, keeps the message's lease alive while it runs, and stores the result in S3\n" +
			"before deleting the message. The first SIGINT/SIGTERM stops receiving and lets running\n" +
			"tasks finish within --shutdown-grace, then stops them and puts them back on the queue;\n" +
			"a second signal does that at once. Logs go to stderr.",
		Flags: withConn(append(workerFlags(), trustFlags()...)...),
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("work takes no arguments (did you mean --queue?)")
			}
			s, err := resolveQueueAndBucket(cliContext)
			if err != nil {
				return err
			}
			longRunning()
			log := newLogger(cliContext, zerolog.InfoLevel)
			cfg, err := workerConfig(cliContext, s, log)
			if err != nil {
				return err
			}
			be, err := s.open(cliContext.Context, 0)
			if err != nil {
				return err
			}
			ctx, more, stop := commandContext(cliContext)
			defer stop()
			if err := checkBackend(ctx, be, cfg); err != nil {
				return err
			}
			return runWorker(ctx, more, be, cfg, cliContext.String("metrics-addr"))
		},
	}
}

// workerConfig builds a worker's settings from the worker flags.
func workerConfig(cliContext *cli.Context, s *Settings, log zerolog.Logger) (worker.Config, error) {
	names := nameList(cliContext, "queue")
	if len(names) == 0 {
		names = []string{"default"}
	}
	cfg := worker.Config{
		DeadLetterURL:     s.DeadLetterURL,
		DeadLetterCheck:   cmp.Or(cliContext.Duration("dead-letter-check"), -1),
		Concurrency:       cliContext.Int("concurrency"),
		VisibilityTimeout: cliContext.Duration("visibility-timeout"),
		Heartbeat:         cliContext.Duration("heartbeat"),
		WaitTime:          min(cliContext.Duration("wait-time"), 20*time.Second),
		KillGrace:         cliContext.Duration("kill-grace"),
		VisibilityCap:     cliContext.Duration("visibility-cap"),
		ShutdownGrace:     cliContext.Duration("shutdown-grace"),
		MaxTasks:          cliContext.Int("max-tasks"),
		IdleExit:          cliContext.Duration("idle-exit"),
		Info:              worker.DefaultInfo(cliContext.String("worker-id")),
		Version:           Version,
		Log:               log,
	}
	if id := cliContext.String("worker-id"); cliContext.IsSet("worker-id") {
		// The id becomes part of S3 keys (heartbeat records): the one name
		// validator keeps it from naming another object.
		if err := plan.ValidName(id); err != nil {
			return cfg, usagef("--worker-id %s", err)
		}
	}
	if cfg.Concurrency < 1 {
		return cfg, usagef("--concurrency must be at least 1")
	}
	if cfg.Heartbeat >= cfg.VisibilityTimeout/2 {
		return cfg, usagef("--heartbeat (%s) must be under half of --visibility-timeout (%s)", cfg.Heartbeat, cfg.VisibilityTimeout)
	}
	trust, err := resolveTrust(cliContext)
	if err != nil {
		return cfg, err
	}
	cfg.Verifier, cfg.MaxTaskAge, cfg.Allow, cfg.PassEnv = trust.Verifier, trust.MaxTaskAge, trust.Allow, trust.PassEnv
	cfg.Queues, err = bandRefs(s, names)
	return cfg, err
}

// bandRefs lists the SQS queues behind logical queues: the inbox and every
// priority level of each (plan.Bands), the queues in the given order.
func bandRefs(s *Settings, names []string) ([]worker.QueueRef, error) {
	var refs []worker.QueueRef
	for _, b := range plan.Bands {
		for _, n := range names {
			u, err := s.QueueURLFor(n)
			if err != nil {
				return nil, err
			}
			refs = append(refs, worker.QueueRef{Name: n, Band: b.Name, URL: u + b.Suffix, Level: !b.Inbox, Min: b.Min})
		}
	}
	return refs, nil
}

// checkBackend fails fast when a queue or the bucket is missing, instead of
// logging receive errors for ever.
func checkBackend(ctx context.Context, be *backend.Backend, cfg worker.Config) error {
	for _, q := range cfg.Queues {
		if err := be.Queue.Check(ctx, q.URL); err != nil {
			return err
		}
	}
	return be.Store.Check(ctx)
}

// runWorker runs one worker until ctx ends; a further signal aborts.
func runWorker(ctx context.Context, more <-chan os.Signal, be *backend.Backend, cfg worker.Config, metricsAddr string) error {
	var m *metrics.Metrics
	if metricsAddr != "" {
		m = metrics.New(cfg.Info.ID)
		cfg.Metrics = m
	}
	if cfg.Secrets == nil {
		cfg.Secrets = be.Secrets
	}
	if cfg.Verifier == nil {
		cfg.Log.Warn().Str("worker", cfg.Info.ID).Msg("tasks are not verified: this worker runs any task sent to its queues (give --verify-key to run only signed tasks)")
	} else {
		cfg.Log.Info().Str("worker", cfg.Info.ID).Strs("keys", cfg.Verifier.KeyIDs()).Msg("running only tasks signed by these keys")
	}
	w := worker.New(cfg, be.Queue, be.Store)
	if m != nil {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return usagef("--metrics-addr %s: %v", metricsAddr, err)
		}
		srv := &http.Server{Handler: m.Handler(w.Healthy), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		cfg.Log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics and /healthz")
	}
	go func() {
		select {
		case <-more:
			w.Abort()
		case <-ctx.Done():
			select {
			case <-more:
				w.Abort()
			case <-time.After(cfg.ShutdownGrace + cfg.KillGrace + time.Minute):
			}
		}
	}()
	cfg.Log.Info().Str("worker", cfg.Info.ID).Int("concurrency", cfg.Concurrency).Interface("queues", queueNames(cfg)).Msg("worker started")
	return w.Run(ctx)
}

// nameList reads a repeatable flag of names, each of which may also be a
// comma-separated list (--queue a,b, TASKIQ_GO_QUEUES=a,b): names never
// hold commas, unlike --env and --label values.
func nameList(cliContext *cli.Context, flag string) []string {
	var out []string
	for _, v := range cliContext.StringSlice(flag) {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

func queueNames(cfg worker.Config) []string {
	var out []string
	for _, q := range cfg.Queues {
		if !slices.Contains(out, q.Name) {
			out = append(out, q.Name)
		}
	}
	return out
}
