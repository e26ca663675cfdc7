// Package commands is the taskiq-go command line: one file per subcommand,
// the shared flags and settings, and the one place that maps errors to exit
// codes.
//
// Output rules: results (ids, states, task output) go to stdout, with --json
// for programs; messages and logs go to stderr. An error is printed once, at
// the top, as one line "taskiq-go: ..." in lowercase without a trailing
// period, and ends the program with the code from codeFor.
package commands

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/forkclient"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/supervisor"
)

// Build information, stamped by the release build with -ldflags -X.
var (
	Version = "dev"
	Commit  = ""
	Date    = ""
)

// Main runs the command line and returns the exit code.
func Main(args []string) int {
	if supervising(args) {
		return supervisor.Main()
	}
	if forkClient(args) {
		return forkclient.Main(args)
	}
	// Most commands live for a few milliseconds and allocate little: the
	// garbage collector only slows their start (about 2 ms of 15). It runs
	// once the heap reaches 64 MiB; long-running commands (work, dev) turn
	// it back on with longRunning.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(64 << 20)
	// TASKIQ_GO_CPUPROFILE writes a CPU profile of the whole run, for the
	// benchmarks in bench/.
	if p := os.Getenv("TASKIQ_GO_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			defer f.Close()
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	return run(args, os.Stdin, os.Stdout, os.Stderr)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var notFound string
	app := &cli.App{
		Name:  "taskiq-go",
		Usage: "run commands as tasks on workers fed by AWS SQS, with results in S3",
		Description: "Submit a command with `taskiq-go submit -- CMD ARGS`, run workers with `taskiq-go work`,\n" +
			"and read states and output back with `poll` and `result`. `taskiq-go dev` serves SQS and S3\n" +
			"on localhost, so all of it works on a laptop with no AWS account:\n\n" +
			"   taskiq-go dev --workers 2 --env-file dev.env &\n" +
			"   . ./dev.env\n" +
			"   id=$(taskiq-go submit -- echo hello)\n" +
			"   taskiq-go result --wait \"$id\"",
		Version:              Version,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		// urfave splits repeatable flags at commas, which would cut
		// --env 'JSON={"a":1,"b":2}' or --label tags=a,b in pieces (or
		// silently into two variables). Names lists split in nameList.
		DisableSliceFlagSeparator: true,
		// The library must never exit on its own: errors come back here.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(cliContext *cli.Context, err error, _ bool) error {
			return &usageError{usageMessage(cliContext, err)}
		},
		CommandNotFound: func(_ *cli.Context, name string) { notFound = name },
		Commands: []*cli.Command{
			submitCommand(),
			pollCommand(),
			tasksCommand(),
			resultCommand(),
			logsCommand(),
			cancelCommand(),
			serveCommand(),
			workCommand(),
			queuesCommand(),
			workersCommand(),
			initCommand(),
			dlqCommand(),
			devCommand(),
			keygenCommand(),
			completionCommand(),
			manCommand(),
			uiCommand(),
			versionCommand(),
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
		if !slices.Contains([]string{"version", "keygen", "completion", "man"}, c.Name) {
			c.Flags = append(c.Flags, logFlags()...)
			c.Before = checkLogFlags
		}
		for _, sub := range c.Subcommands {
			sub.OnUsageError = app.OnUsageError
			sub.Before = checkLogFlags
		}
	}
	finishHelp(app.Commands, "")
	args = interspersed(app, args)
	removeStaleEnvFile(app, args)
	err := app.Run(args)
	if err == nil && notFound != "" {
		err = usagef("unknown command %q (see taskiq-go --help)", notFound)
	}
	if err != nil {
		if _, silent := err.(exitCode); !silent {
			fmt.Fprintf(stderr, "taskiq-go: %s\n", message(err))
		}
		return codeFor(err)
	}
	return ExitOK
}

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Category: "Logging", Usage: "log `LEVEL`: debug, info, warn, error (default: info for work and dev, warn otherwise)", EnvVars: []string{"TASKIQ_GO_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Category: "Logging", Value: "auto", Usage: "log `FORMAT`: auto (console on a terminal, else json), console, json", EnvVars: []string{"TASKIQ_GO_LOG_FORMAT"}},
	}
}

// checkLogFlags refuses a log level or format that newLogger would not
// understand, before the command does anything.
func checkLogFlags(cliContext *cli.Context) error {
	if cliContext.IsSet("log-level") {
		l := cliContext.String("log-level")
		if _, err := zerolog.ParseLevel(l); err != nil || l == "" || l == "trace" || l == "panic" || l == "disabled" {
			return usagef("--log-level must be debug, info, warn or error, not %q", l)
		}
	}
	switch f := cliContext.String("log-format"); f {
	case "auto", "console", "json":
	default:
		return usagef("--log-format must be auto, console or json, not %q", f)
	}
	return nil
}

// longRunning restores the garbage collector's defaults for commands that
// run for hours.
func longRunning() {
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
}

// newLogger builds the zerolog logger on stderr: console format on a
// terminal, JSON otherwise, unless --log-format says.
func newLogger(cliContext *cli.Context, defaultLevel zerolog.Level) zerolog.Logger {
	// One name for errors in every log line: .Err(err) writes zerolog's
	// global field name, and the worker also logs messages under "err".
	zerolog.ErrorFieldName = "err"
	w := cliContext.App.ErrWriter
	format := cliContext.String("log-format")
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "console"
		}
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	level := defaultLevel
	if s := cliContext.String("log-level"); s != "" {
		if l, err := zerolog.ParseLevel(s); err == nil {
			level = l
		}
	}
	// Millisecond timestamps: a task's start and end are often less than
	// a second apart.
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	// Durations with their unit ("took":"1.52s"), not bare milliseconds.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// commandContext derives the context a command runs on: cancelled by the
// first SIGINT or SIGTERM. The returned channel receives later signals, for
// commands (work, dev) that treat a second signal as "stop now".
func commandContext(cliContext *cli.Context) (context.Context, <-chan os.Signal, func()) {
	ctx, cancel := context.WithCancel(cliContext.Context)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	more := make(chan os.Signal, 4)
	go func() {
		first := true
		for s := range sigs {
			if first {
				first = false
				cancel()
				continue
			}
			select {
			case more <- s:
			default:
			}
		}
	}()
	return ctx, more, func() { signal.Stop(sigs); cancel() }
}

// versionInfo is what `version --json` prints (and serve's version op).
func versionInfo() map[string]any {
	return map[string]any{
		"version": Version, "commit": Commit, "date": Date,
		// What Task and Result records this binary reads and writes,
		// so that a caller can tell a binary it cannot talk to.
		"wire_version": plan.Version,
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON object"}},
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("version takes no arguments")
			}
			out := cliContext.App.Writer
			if cliContext.Bool("json") {
				return writeJSON(out, versionInfo())
			}
			s := "taskiq-go " + Version
			if Commit != "" {
				s += " (" + Commit + ")"
			}
			_, err := fmt.Fprintln(out, s)
			return err
		},
	}
}
