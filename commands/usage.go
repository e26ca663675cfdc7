package commands

import (
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

var (
	reUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)
	reNeedsArg  = regexp.MustCompile(`^flag needs an argument: -+(.+)$`)
	reBadValue  = regexp.MustCompile(`^invalid value "(.*)" for flag -+([^:]+): .*$`)
	reBadBool   = regexp.MustCompile(`^invalid boolean value "(.*)" for -+([^:]+): .*$`)
)

// usageMessage rewrites the flag package's messages into the project's
// words: flags spelled as users type them (--name), and for a bad value
// what to type instead, with no Go type names.
func usageMessage(cliContext *cli.Context, err error) string {
	msg := err.Error()
	cmd := "taskiq-go"
	if cliContext != nil && cliContext.Command != nil && cliContext.Command.Name != "" && cliContext.Command.Name != cliContext.App.Name {
		cmd = cliContext.Command.HelpName
	}
	if m := reUndefined.FindStringSubmatch(msg); m != nil {
		return "unknown flag " + dashed(m[1]) + " (see " + cmd + " --help)"
	}
	if m := reNeedsArg.FindStringSubmatch(msg); m != nil {
		return dashed(m[1]) + " needs a value"
	}
	if m := reBadValue.FindStringSubmatch(msg); m != nil {
		value, name := m[1], m[2]
		return dashed(name) + " " + strings.TrimSpace(valueHint(cliContext, name, value))
	}
	if m := reBadBool.FindStringSubmatch(msg); m != nil {
		return dashed(m[2]) + " takes true or false, not " + quote(m[1])
	}
	return msg
}

// dashed spells a flag name as people type it: -c, --concurrency.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// valueHint says what kind of value a flag takes.
func valueHint(cliContext *cli.Context, name, value string) string {
	var f cli.Flag
	if cliContext != nil && cliContext.Command != nil {
		for _, fl := range cliContext.Command.Flags {
			for _, n := range fl.Names() {
				if n == name {
					f = fl
				}
			}
		}
	}
	switch f.(type) {
	case *cli.DurationFlag:
		return "takes a duration such as 30s, 5m or 1h30m, not " + quote(value) + hintSeconds(value)
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag:
		return "takes a whole number, not " + quote(value)
	case *cli.BoolFlag:
		return "takes true or false, not " + quote(value)
	case *cli.Float64Flag:
		return "takes a number, not " + quote(value)
	}
	return "has an invalid value " + quote(value)
}

func hintSeconds(v string) string {
	if regexp.MustCompile(`^[0-9]+$`).MatchString(v) {
		return " (did you mean " + v + "s?)"
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }

// idsOrGroup checks that a command got task ids or --group, one of them.
func idsOrGroup(cmd string, ids []string, group string) error {
	switch {
	case len(ids) == 0 && group == "":
		return usagef("%s needs task ids or --group GROUP (see taskiq-go %s --help)", cmd, cmd)
	case len(ids) > 0 && group != "":
		return usagef("%s takes task ids or --group, not both", cmd)
	}
	return nil
}
