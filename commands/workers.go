package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/worker"
)

func workersCommand() *cli.Command {
	return &cli.Command{
		Name:  "workers",
		Usage: "list live workers and what they run",
		Description: "Every worker rewrites a heartbeat record in the bucket each --heartbeat. This lists them:\n" +
			"host, worker id, version, queues served, slots used and free, the tasks running, and the\n" +
			"age of the last heartbeat. A worker whose heartbeat is older than three heartbeats is\n" +
			"marked stale (it was killed or lost its connection); one that stopped cleanly removed its\n" +
			"record. Stale records older than --forget are not shown unless --all is given.\n\n" +
			"--stop ID (repeatable) or --stop-all asks live workers to shut down gracefully, as on\n" +
			"SIGTERM: each sees the request at its next heartbeat, takes no new task, lets its running\n" +
			"tasks finish (up to its --shutdown-grace) and exits 0. It prints the workers asked.",
		Flags: withConn(
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per worker"},
			&cli.BoolFlag{Name: "all", Usage: "also show long-stale workers"},
			&cli.StringSliceFlag{Name: "stop", Usage: "ask the worker `ID` to shut down gracefully (repeatable)"},
			&cli.BoolFlag{Name: "stop-all", Usage: "ask every live worker to shut down gracefully"},
			&cli.DurationFlag{Name: "forget", Value: 10 * time.Minute, Usage: "hide stale workers silent for longer than `DURATION`"},
		),
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("workers takes no arguments")
			}
			for _, id := range cliContext.StringSlice("stop") {
				// The id names the stop request's S3 key: the one name
				// validator keeps it from naming another object.
				if err := plan.ValidName(id); err != nil {
					return usagef("--stop %s", err)
				}
			}
			_, be, err := openStore(cliContext)
			if err != nil {
				return err
			}
			ws, err := Workers(cliContext.Context, be, time.Now())
			if err != nil {
				return err
			}
			out := cliContext.App.Writer
			if ids := cliContext.StringSlice("stop"); len(ids) > 0 || cliContext.Bool("stop-all") {
				asked, err := StopWorkers(cliContext.Context, be, ws, ids, time.Now())
				if cliContext.Bool("json") {
					for _, req := range asked {
						_ = writeJSON(out, req)
					}
					return err
				}
				t := newTable(out, "WORKER", "OUTCOME")
				for _, req := range asked {
					t.row(req.Worker, "stop requested")
				}
				t.flush()
				return err
			}
			var t *table
			if !cliContext.Bool("json") {
				t = newTable(out, "WORKER", "HOST", "STATE", "QUEUES", "SLOTS", "HEARTBEAT", "VERSION", "RUNNING")
			}
			for _, w := range ws {
				if w.Stale && !cliContext.Bool("all") && w.Age > cliContext.Duration("forget") {
					continue
				}
				if t == nil {
					_ = writeJSON(out, w)
					continue
				}
				state := "live"
				if w.Stale {
					state = "stale"
				}
				t.row(w.Worker, w.Host, state, strings.Join(w.Queues, ","), fmt.Sprintf("%d/%d", len(w.Running), w.Concurrency),
					w.Age.Round(time.Second).String()+" ago", w.Version, runningList(w.Running, t.human))
			}
			if t != nil {
				t.flush()
			}
			return nil
		},
	}
}

// errNoWorker is a --stop of a worker id with no live heartbeat.
var errNoWorker = errors.New("no live worker with that id")

// StopWorkers stores a stop request for each named worker, or for every
// live one when ids is empty. A named worker must be live in ws. A
// heartbeat whose worker id is not a valid name (written by hand: work
// refuses such an id) is skipped, as its stop request's key would name
// another object.
func StopWorkers(ctx context.Context, be *backend.Backend, ws []WorkerStatus, ids []string, now time.Time) ([]s3results.WorkerStopRequest, error) {
	live := map[string]bool{}
	all := len(ids) == 0
	for _, w := range ws {
		if !w.Stale && plan.ValidName(w.Worker) == nil {
			live[w.Worker] = true
			if all && !slices.Contains(ids, w.Worker) {
				ids = append(ids, w.Worker)
			}
		}
	}
	sort.Strings(ids)
	var asked []s3results.WorkerStopRequest
	for _, id := range ids {
		if !live[id] {
			return asked, fmt.Errorf("stop %s: %w", id, errNoWorker)
		}
		req := s3results.WorkerStopRequest{Worker: id, RequestedAt: now}
		if err := be.Store.PutWorkerStop(ctx, req); err != nil {
			return asked, err
		}
		asked = append(asked, req)
	}
	return asked, nil
}

// WorkerStatus is a worker's heartbeat record as `workers` reports it.
type WorkerStatus struct {
	worker.Heartbeat
	Free int `json:"free"`
	// Age is how old the last heartbeat is.
	Age        time.Duration `json:"-"`
	AgeSeconds float64       `json:"age_seconds"`
	Stale      bool          `json:"stale"`
}

// Workers reads every worker's heartbeat, newest first.
func Workers(ctx context.Context, be *backend.Backend, now time.Time) ([]WorkerStatus, error) {
	raw, err := be.Store.Workers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]WorkerStatus, 0, len(raw))
	for _, data := range raw {
		var hb worker.Heartbeat
		if json.Unmarshal(data, &hb) != nil {
			continue
		}
		age := now.Sub(hb.HeartbeatAt)
		every := max(hb.HeartbeatEvery.Std(), time.Second)
		out = append(out, WorkerStatus{Heartbeat: hb, Free: max(hb.Concurrency-len(hb.Running), 0),
			Age: age, AgeSeconds: age.Seconds(), Stale: age > 3*every+2*time.Second})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].HeartbeatAt.After(out[j].HeartbeatAt) })
	return out, nil
}

// runningList is the RUNNING column: every id for a program; on a
// terminal the first two and how many more, so that a busy worker's line
// stays readable (--json has them all).
func runningList(ids []string, human bool) string {
	if !human || len(ids) <= 2 {
		return strings.Join(ids, ",")
	}
	return fmt.Sprintf("%s,%s +%d more", ids[0], ids[1], len(ids)-2)
}
