package commands

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestInterspersed(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{
		{Name: "result", Flags: []cli.Flag{&cli.BoolFlag{Name: "wait"}, &cli.DurationFlag{Name: "timeout"}}},
		{Name: "submit", Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}}},
		{Name: "dlq", Subcommands: []*cli.Command{
			{Name: "redrive", Flags: []cli.Flag{&cli.StringFlag{Name: "to"}}},
		}},
	}}
	for in, want := range map[string]string{
		"t result ID --wait":                   "t result --wait ID",
		"t result ID --timeout 5s --wait":      "t result --timeout 5s --wait ID",
		"t result --wait ID":                   "t result --wait ID",
		"t result ID --timeout=5s":             "t result --timeout=5s ID",
		"t result ID -- --wait":                "t result ID -- --wait",
		"t result ID --bogus":                  "t result --bogus ID",
		"t result ID --timeout":                "t result --timeout ID",
		"t submit echo hi --json":              "t submit echo hi --json",
		"t dlq redrive a b --to gpu":           "t dlq redrive --to gpu a b",
		"t --log-level debug result ID --wait": "t --log-level debug result ID --wait",
		"t nosuch x --y":                       "t nosuch x --y",
		"t":                                    "t",
	} {
		got := strings.Join(interspersed(app, strings.Fields(in)), " ")
		if got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
	// The input is not modified.
	args := strings.Fields("t result ID --wait")
	orig := slices.Clone(args)
	interspersed(app, args)
	if !slices.Equal(args, orig) {
		t.Errorf("input changed: %q", args)
	}
}
