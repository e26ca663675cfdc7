package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

func queuesCommand() *cli.Command {
	return &cli.Command{
		Name:  "queues",
		Usage: "show queue depths",
		Description: "For each queue (default, those in the config file's queues map, and those named with\n" +
			"--queue), its inbox and each of its priority levels, and the dead-letter queue: messages visible, in flight (taken by a worker) and\n" +
			"delayed (waiting to be retried), as SQS approximates them.",
		Flags: withConn(
			&cli.StringSliceFlag{Name: "queue", Aliases: []string{"q"}, Usage: "also show logical queue `NAME`, repeatable"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per queue"},
		),
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("queues takes no arguments (did you mean --queue?)")
			}
			s, err := resolveSettings(cliContext)
			if err != nil {
				return err
			}
			if err := s.needQueue(); err != nil {
				return err
			}
			names := append([]string{"default"}, s.QueueNames()...)
			names = append(names, nameList(cliContext, "queue")...)
			be, err := s.open(cliContext.Context, 0)
			if err != nil {
				return err
			}
			rows, err := Queues(cliContext.Context, s, be, names)
			if cliContext.Bool("json") {
				for _, r := range rows {
					_ = writeJSON(cliContext.App.Writer, r)
				}
				return err
			}
			t := newTable(cliContext.App.Writer, "QUEUE", "BAND", "VISIBLE", "IN_FLIGHT", "DELAYED", "URL")
			for _, r := range rows {
				t.row(r.Name, r.Band, fmt.Sprint(r.Visible), fmt.Sprint(r.InFlight), fmt.Sprint(r.Delayed), r.URL)
			}
			t.flush()
			return err
		},
	}
}

// QueueDepth is one queue's line in `queues`.
type QueueDepth struct {
	Name string `json:"name"`
	Band string `json:"band,omitempty"`
	URL  string `json:"url"`
	sqs.Stats
}

// Queues reads the depths of the named logical queues and of the
// dead-letter queue (named "dead-letter"). SQS counts a message hidden
// until its retry as in flight, like one a worker runs: the live workers'
// heartbeats say how many of each queue's messages they run, and the rest
// of the in-flight ones are counted as delayed (waiting for a retry, or
// for the lease of a worker that died to run out).
func Queues(ctx context.Context, s *Settings, be *backend.Backend, names []string) ([]QueueDepth, error) {
	var running map[string]int
	known := false
	if s.Bucket != "" {
		// Without a bucket (queues needs none) nothing can be told apart.
		var err error
		if running, known, err = runningByQueue(ctx, be); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	var out []QueueDepth
	add := func(name, band, url string) error {
		if seen[url] {
			return nil
		}
		seen[url] = true
		st, err := be.Queue.Stats(ctx, url)
		if err != nil {
			return err
		}
		if known && name != "dead-letter" {
			taken := min(running[url], st.InFlight)
			st.Delayed += st.InFlight - taken
			st.InFlight = taken
		}
		out = append(out, QueueDepth{Name: name, Band: band, URL: url, Stats: st})
		return nil
	}
	for _, n := range names {
		u, err := s.QueueURLFor(n)
		if err != nil {
			return out, err
		}
		for _, b := range plan.Bands {
			if err := add(n, b.Name, u+b.Suffix); err != nil {
				return out, err
			}
		}
	}
	if s.DeadLetterURL != "" {
		if err := add("dead-letter", "", s.DeadLetterURL); err != nil {
			return out, err
		}
	}
	return out, nil
}

// runningByQueue sums the live workers' running tasks by queue URL; known
// is false when a live worker runs tasks without saying where from (an
// older version), and nothing can be told apart.
func runningByQueue(ctx context.Context, be *backend.Backend) (map[string]int, bool, error) {
	ws, err := Workers(ctx, be, time.Now())
	if err != nil {
		return nil, false, err
	}
	out := map[string]int{}
	for _, w := range ws {
		if w.Stale {
			continue
		}
		if w.RunningByQueue == nil && len(w.Running) > 0 {
			return nil, false, nil
		}
		for u, n := range w.RunningByQueue {
			out[u] += n
		}
	}
	return out, true, nil
}
