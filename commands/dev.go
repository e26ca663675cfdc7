package commands

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
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
	devAddress = "127.0.0.1:9324"
)

func devCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "listen", Aliases: []string{"addr"}, Value: devAddress, Usage: "listen on `HOST:PORT` (port 0 picks a free one); loopback only unless --allow-remote"},
		&cli.BoolFlag{Name: "allow-remote", Usage: "allow a --listen address beyond loopback (anyone reaching it with the credentials can run commands)"},
		&cli.StringFlag{Name: "data-dir", Usage: "keep queues, messages, objects and credentials in `DIR` across restarts (default: gone at exit)"},
		&cli.StringFlag{Name: "env-file", Usage: "also write the export lines to `PATH` (removed first, written once ready, removed at exit)"},
		&cli.StringFlag{Name: "region", Value: devserver.DefaultRegion, Usage: "`REGION` the endpoint claims (the default is one where AWS CLI v1 reads the env file's SQS endpoint)"},
		&cli.IntFlag{Name: "workers", Usage: "also run `N` workers in this process"},
	}
	for _, f := range workerFlags() {
		switch f.Names()[0] {
		case "concurrency":
			flags = append(flags, &cli.IntFlag{Name: "concurrency", Aliases: []string{"c"}, Value: 2, Usage: "with --workers, each worker runs up to `N` tasks at once"})
		case "queue":
			flags = append(flags, &cli.StringSliceFlag{Name: "queue", Aliases: []string{"q"}, Usage: "create logical queue `NAME` (beside default), repeatable; --workers serve them all"})
		case "max-tasks", "idle-exit", "metrics-addr":
		default:
			flags = append(flags, f)
		}
	}
	for _, f := range trustFlags() {
		if f.Names()[0] != flagVerifyKey { // dev makes its own key pair
			flags = append(flags, f)
		}
	}
	flags = append(flags, &cli.BoolFlag{Name: "unsigned", Usage: "do not make a signing key pair: --workers run unsigned tasks, and the export lines name no keys"})
	return &cli.Command{
		Name:  "dev",
		Usage: "serve SQS and S3 on localhost for development and tests",
		Description: "Serves the SQS API and the S3 API on one loopback port, with the default queue, a dead-letter\n" +
			"queue and a bucket created. Once ready it prints `export NAME=value` lines for every setting\n" +
			"the other commands need (credentials included: every request must be signed with them), so that\n\n" +
			"   taskiq-go dev --env-file dev.env &  then  . ./dev.env\n\n" +
			"points a shell at it. Serves until SIGINT/SIGTERM, then removes the env file. Without --data-dir\n" +
			"everything is gone at exit; with it, queues, messages and objects survive a restart.\n" +
			"Nothing of it is meant for production.",
		Flags: flags,
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("dev takes no arguments")
			}
			// A stale env file goes first, whatever else fails: a script
			// waiting for the file must not take an old one for this run.
			// Then every flag is checked before anything is listened on.
			envFile := cliContext.String("env-file")
			if envFile != "" {
				if err := os.Remove(envFile); err != nil && !errors.Is(err, os.ErrNotExist) {
					return &inputError{fmt.Errorf("remove stale --env-file: %w", err)}
				}
				if fi, err := os.Stat(filepath.Dir(envFile)); err != nil || !fi.IsDir() {
					return &inputError{fmt.Errorf("--env-file %s: no such directory", envFile)}
				}
			}
			names := nameList(cliContext, "queue")
			for _, n := range names {
				if err := plan.ValidName(n); err != nil {
					return usagef("queue name %v", err)
				}
			}
			addr := cliContext.String("listen")
			if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
				return usagef("--listen %q: want HOST:PORT", addr)
			}
			n := cliContext.Int("workers")
			if n < 0 {
				return usagef("--workers must not be negative")
			}
			log := newLogger(cliContext, zerolog.InfoLevel)
			if n > 0 {
				probe := &Settings{QueueURL: "http://127.0.0.1/000000000000/" + devQueue, Bucket: devBucket, Prefix: DefaultPrefix}
				if _, err := workerConfig(cliContext, probe, log); err != nil {
					return err
				}
			}
			longRunning()
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
			srv, err := devserver.New(devserver.Options{
				Addr:            addr,
				AllowRemote:     cliContext.Bool("allow-remote"),
				DataDir:         cliContext.String("data-dir"),
				Region:          cliContext.String("region"),
				Bucket:          devBucket,
				Queues:          sqsNames,
				DeadLetterQueue: devQueue + "-dlq",
				Log:             log,
			})
			if errors.Is(err, devserver.ErrNotLoopback) {
				return usagef("--listen %s is not a loopback address (add --allow-remote to serve beyond this machine)", addr)
			}
			if err != nil {
				return fmt.Errorf("start dev endpoint: %w", err)
			}
			defer srv.Close()
			if err := srv.Start(); err != nil {
				if errors.Is(err, syscall.EADDRINUSE) {
					return usagef("cannot listen on %s: address already in use (another taskiq-go dev? use --listen 127.0.0.1:0 for a free port)", addr)
				}
				return fmt.Errorf("start dev endpoint: %w", err)
			}
			env := devEnv(srv)
			var verifier *plan.Verifier
			if !cliContext.Bool("unsigned") {
				// Signed by default, like a real deployment should be: the
				// export lines give submitters the private key and workers
				// the public one.
				// Kept with the endpoint's state: in --data-dir, or gone
				// with the temporary state (also after a kill).
				key, pub, v, err := devKeyPair(srv.StateDir())
				if err != nil {
					return err
				}
				env["TASKIQ_GO_SIGNING_KEY"], env["TASKIQ_GO_VERIFY_KEYS"], verifier = key, pub, v
			}
			exports := formatExports(env)
			if envFile != "" {
				if err := writeFileAtomic(envFile, []byte(exports)); err != nil {
					return &inputError{fmt.Errorf("write --env-file: %w", err)}
				}
				defer removeIfOurs(envFile, exports)
			}
			fmt.Fprint(cliContext.App.Writer, exports)
			log.Info().Str("endpoint", srv.Endpoint()).Msg("dev endpoint ready")

			ctx, more, stop := commandContext(cliContext)
			defer stop()
			if err := mountDevUI(ctx, srv, env, log); err != nil {
				return err
			}
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
				cfg.Verifier = verifier
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

// removeStaleEnvFile removes the --env-file of a `dev` command line before
// the line is parsed, so that a script waiting for the file never takes an
// old one for this run, even when dev stops before its action: at a flag
// the parser refuses, a bad --log-level or a stray argument. dev's action
// removes it again and reports an error doing so.
func removeStaleEnvFile(app *cli.App, args []string) {
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		i++
	}
	if i >= len(args) {
		return
	}
	if c := findCommand(app.Commands, args[i]); c == nil || c.Name != "dev" {
		return
	}
	for j := i + 1; j < len(args) && args[j] != "--"; j++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[j], "-"), "=")
		if !strings.HasPrefix(args[j], "-") || name != "env-file" {
			continue
		}
		if !hasValue {
			if j+1 >= len(args) {
				return
			}
			value = args[j+1]
		}
		if value != "" {
			_ = os.Remove(value)
		}
	}
}

// removeIfOurs removes the env file at exit unless another run has replaced
// it since, so that a script never reads the address of a stopped endpoint.
func removeIfOurs(path, exports string) {
	if data, err := os.ReadFile(path); err == nil && string(data) == exports {
		_ = os.Remove(path)
	}
}

// devEnv is every setting the other commands need to use the endpoint.
// devKeyPair reads the dev endpoint's signing key pair from dir, making it
// the first time, and returns both paths and a verifier of the public key.
func devKeyPair(dir string) (key, pub string, v *plan.Verifier, err error) {
	// Absolute, so that the export lines work from any directory.
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", nil, fmt.Errorf("dev signing key: %w", err)
	}
	key = filepath.Join(dir, "signing.key")
	pub = key + ".pub"
	if _, err := os.Stat(pub); errors.Is(err, os.ErrNotExist) {
		if _, err := writeKeyPair(key); err != nil {
			return "", "", nil, fmt.Errorf("dev signing key: %w", err)
		}
	}
	data, err := os.ReadFile(pub)
	if err != nil {
		return "", "", nil, fmt.Errorf("dev signing key: %w", err)
	}
	pk, err := plan.ParseVerifyKey(data)
	if err != nil {
		return "", "", nil, fmt.Errorf("dev signing key %s: %w", pub, err)
	}
	return key, pub, plan.NewVerifier(pk), nil
}

func devEnv(srv *devserver.Server) map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     srv.Credentials().AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": srv.Credentials().SecretAccessKey,
		"AWS_REGION":            srv.Region(),
		"AWS_DEFAULT_REGION":    srv.Region(),
		"AWS_ENDPOINT_URL":      srv.Endpoint(),
		"AWS_ENDPOINT_URL_SQS":  srv.Endpoint(),
		"AWS_ENDPOINT_URL_S3":   srv.Endpoint(),
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
