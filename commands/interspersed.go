package commands

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves the flags that follow a command's arguments in front
// of them, so that `result ID --wait` reads --wait as people expect: the
// flag package behind urfave/cli stops at the first argument. Everything
// after "--" stays where it is, and so does everything of commands whose
// arguments are themselves a command line (submit), where a later flag
// belongs to the task's command.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	// Global flags before the command name are left alone.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		i++
	}
	cmds := app.Commands
	var cmd *cli.Command
	for i < len(args) {
		c := findCommand(cmds, args[i])
		if c == nil {
			break
		}
		cmd, cmds = c, c.Subcommands
		i++
		if len(cmds) == 0 {
			break
		}
		// Flags of a parent command may stand before its subcommand.
		for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
			i += flagWidth(cmd, args, i)
		}
	}
	if cmd == nil || cmd.Name == "submit" || cmd.SkipFlagParsing {
		return args
	}
	out := append([]string{}, args[:i]...)
	var flags, rest []string
	for j := i; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			rest = append(rest, args[j:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			n := flagWidth(cmd, args, j)
			flags = append(flags, args[j:j+n]...)
			j += n - 1
			continue
		}
		rest = append(rest, a)
	}
	return append(append(out, flags...), rest...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// flagWidth is how many arguments the flag at args[i] takes up: one for a
// boolean flag, a "--name=value" or an unknown flag (left for the parser
// to refuse), two for a flag that takes its value from the next argument.
func flagWidth(cmd *cli.Command, args []string, i int) int {
	a := args[i]
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") || i+1 >= len(args) {
		return 1
	}
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, isBool := f.(*cli.BoolFlag); isBool {
				return 1
			}
			return 2
		}
	}
	if name == "help" || name == "h" {
		return 1
	}
	return 1
}
