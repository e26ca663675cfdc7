package commands

import (
	"context"
	"fmt"

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
			"--queue), each of its priority bands, and the dead-letter queue: messages visible, in flight (taken by a worker) and\n" +
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
// dead-letter queue (named "dead-letter").
func Queues(ctx context.Context, s *Settings, be *backend.Backend, names []string) ([]QueueDepth, error) {
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
