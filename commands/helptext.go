package commands

import (
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// examples are the usage examples of the commands whose description does
// not carry its own, keyed by the command's path ("dlq list"); each
// command's --help ends with them.
var examples = map[string][]string{
	"poll": {
		`taskiq-go poll "$id"`,
		`taskiq-go poll --wait --timeout 10m --group run-42      # exit 0 when all succeeded`,
		`taskiq-go poll --json "$id1" "$id2"`,
	},
	"result": {
		`taskiq-go result --wait "$id"                           # exits like the command`,
		`taskiq-go result --json "$id"`,
	},
	"cancel": {
		`taskiq-go cancel "$id"`,
		`taskiq-go cancel --group run-42 --wait --timeout 1m`,
	},
	"serve": {
		`taskiq-go serve --stdio                                 # JSON requests on stdin, answers on stdout`,
	},
	"work": {
		`taskiq-go work                                          # the default queue, one task per CPU`,
		`taskiq-go work --queue gpu --concurrency 1 --verify-key signing.pub`,
	},
	"queues": {
		`taskiq-go queues`,
		`taskiq-go queues --queue gpu --json`,
	},
	"workers": {
		`taskiq-go workers`,
		`taskiq-go workers --stop host-1/1234`,
		`taskiq-go workers --json --all`,
	},
	"init": {
		`taskiq-go init --queue-url "$TASKIQ_GO_QUEUE_URL" --bucket my-bucket`,
		`taskiq-go init --print-iam-policy --role work            # creates nothing`,
	},
	"dlq": {
		`taskiq-go dlq list`,
		`taskiq-go dlq redrive                                   # every dead letter`,
	},
	"dlq list": {
		`taskiq-go dlq list --json --max 100`,
	},
	"dlq redrive": {
		`taskiq-go dlq redrive "$message_or_task_id"`,
		`taskiq-go dlq redrive --to default`,
	},
	"version": {
		`taskiq-go version`,
		`taskiq-go version --json`,
	},
}

// finishHelp makes every command's --help say things as people write
// them: its examples appended, and duration defaults as 30s or 10m (not
// 10m0s).
func finishHelp(cmds []*cli.Command, parent string) {
	for _, c := range cmds {
		path := strings.TrimSpace(parent + " " + c.Name)
		if ex := examples[path]; len(ex) > 0 {
			if c.Description != "" {
				c.Description += "\n\n"
			}
			c.Description += "Examples:\n   " + strings.Join(ex, "\n   ")
		}
		for _, f := range c.Flags {
			if d, ok := f.(*cli.DurationFlag); ok && d.DefaultText == "" {
				d.DefaultText = shortDuration(d.Value)
			}
		}
		finishHelp(c.Subcommands, path)
	}
}

// shortDuration writes d as people do: 10m, 1h30m, 500ms, 0.
func shortDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
