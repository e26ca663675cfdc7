package commands

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/devserver"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/worker"
)

// Names the dev endpoint gives what it creates.
const (
	devQueue   = "taskiq"
	devBucket  = "taskiq"
	devKeyID   = "taskiq-dev"
	devSecret  = "taskiq-dev-secret"
	devAddress = "127.0.0.1:9324"
)

func devCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "addr", Value: devAddress, Usage: "listen on `HOST:PORT` (port 0 picks a free one)"},
		&cli.StringFlag{Name: "data-dir", Usage: "keep S3 objects in `DIR` across restarts (default: in memory)"},
		&cli.StringFlag{Name: "env-file", Usage: "also write the export lines to `PATH` (written once ready)"},
		&cli.StringFlag{Name: "region", Value: "us-east-1", Usage: "`REGION` the endpoint claims"},
		&cli.IntFlag{Name: "workers", Usage: "also run `N` workers in this process"},
	}
	for _, f := range workerFlags() {
		switch f.Names()[0] {
		case "concurrency":
			flags = append(flags, &cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: 2, Usage: "with --workers, tasks each worker runs at once"})
		case "queue":
			flags = append(flags, &cli.StringSliceFlag{Name: "queue", Aliases: []string{"q"}, Usage: "create logical queue `NAME` (beside default), repeatable; --workers serve them all"})
		case "max-tasks", "idle-exit", "metrics-addr":
		default:
			flags = append(flags, f)
		}
	}
	return &cli.Command{
		Name:  "dev",
		Usage: "serve SQS and S3 on localhost for development and tests",
		Description: "Serves the SQS API and the S3 API on one loopback port, with the default queue, a dead-letter\n" +
			"queue and a bucket created. Once ready it prints `export NAME=value` lines for every setting\n" +
			"the other commands need, so that\n\n" +
			"   taskiq-go dev --env-file dev.env &  then  . ./dev.env\n\n" +
			"points a shell at it. Serves until SIGINT/SIGTERM. Nothing of it is meant for production:\n" +
			"no authentication, and queues live in memory.",
		Flags: flags,
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("dev takes no arguments")
			}
			names := nameList(cliContext, "queue")
			for _, n := range names {
				if err := plan.ValidName(n); err != nil {
					return usagef("queue name %v", err)
				}
			}
			longRunning()
			log := newLogger(cliContext, zerolog.InfoLevel)
			// Every band of every logical queue is an SQS queue.
			var sqsNames []string
			for _, n := range append([]string{plan.DefaultQueue}, names...) {
				base := devQueue
				if n != plan.DefaultQueue {
					base += "-" + n
				}
				for _, b := range plan.Bands {
					if !slices.Contains(sqsNames, base+b.Suffix) {
						sqsNames = append(sqsNames, base+b.Suffix)
					}
				}
			}
			srv, err := devserver.Start(devserver.Options{
				Addr:            cliContext.String("addr"),
				DataDir:         cliContext.String("data-dir"),
				Region:          cliContext.String("region"),
				Bucket:          devBucket,
				Queues:          sqsNames,
				DeadLetterQueue: devQueue + "-dlq",
				Log:             log,
			})
			if err != nil {
				if strings.Contains(err.Error(), "address already in use") {
					return usagef("cannot listen on %s: address already in use (another taskiq-go dev? use --addr 127.0.0.1:0 for a free port)", cliContext.String("addr"))
				}
				return fmt.Errorf("start dev endpoint: %w", err)
			}
			defer srv.Close()
			env := devEnv(srv)
			exports := formatExports(env)
			if p := cliContext.String("env-file"); p != "" {
				if err := writeFileAtomic(p, []byte(exports)); err != nil {
					return &inputError{fmt.Errorf("write --env-file: %w", err)}
				}
			}
			fmt.Fprint(cliContext.App.Writer, exports)
			log.Info().Str("endpoint", srv.Endpoint()).Msg("dev endpoint ready")

			ctx, more, stop := commandContext(cliContext)
			defer stop()
			if err := mountDevUI(ctx, srv, env, log); err != nil {
				return err
			}
			n := cliContext.Int("workers")
			if n <= 0 {
				<-ctx.Done()
				return nil
			}
			// The workers in this process use the same settings the
			// export lines give to others.
			for k, v := range env {
				os.Setenv(k, v)
			}
			s := &Settings{QueueURL: env["TASKIQ_GO_QUEUE_URL"], Bucket: devBucket, Prefix: DefaultPrefix,
				Region: srv.Region(), EndpointURL: srv.Endpoint(), DeadLetterURL: srv.QueueURL(devQueue + "-dlq")}
			be, err := s.open(ctx, 0)
			if err != nil {
				return err
			}
			queues := append([]string{plan.DefaultQueue}, names...)
			var wg sync.WaitGroup
			errs := make([]error, n)
			aborts := make([]chan os.Signal, n)
			for i := range n {
				cfg, err := workerConfig(cliContext, s, log)
				if err != nil {
					return err
				}
				if cfg.Queues, err = bandRefs(s, queues); err != nil {
					return err
				}
				cfg.Info = worker.DefaultInfo(fmt.Sprintf("dev-%d", i+1))
				cfg.Log = log
				aborts[i] = make(chan os.Signal, 1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = runWorker(ctx, aborts[i], be, cfg, "")
				}()
			}
			go func() {
				for s := range more {
					for _, a := range aborts {
						select {
						case a <- s:
						default:
						}
					}
				}
			}()
			wg.Wait()
			return errors.Join(errs...)
		},
	}
}

// devEnv is every setting the other commands need to use the endpoint.
func devEnv(srv *devserver.Server) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     devKeyID,
		"AWS_SECRET_ACCESS_KEY": devSecret,
		"AWS_REGION":            srv.Region(),
		"AWS_ENDPOINT_URL":      srv.Endpoint(),
		"TASKIQ_GO_QUEUE_URL":   srv.QueueURL(devQueue),
		"TASKIQ_GO_BUCKET":      srv.Bucket(),
	}
}

func formatExports(env map[string]string) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeFileAtomic writes through a temporary file and a rename, so that a
// reader polling for the file never sees it half written.
func writeFileAtomic(path string, data []byte) error {
	tmp := fmt.Sprintf("%s.tmp%d", path, time.Now().UnixNano())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
