package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Shell completion asks the program itself for candidates
// (--generate-bash-completion, urfave/cli's protocol), so the scripts
// stay right as commands and flags change.
const bashCompletion = `# bash completion for taskiq-go: eval "$(taskiq-go completion bash)"
_taskiq_go() {
	local cur words
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == -* ]]; then
		words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		words=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _taskiq_go taskiq-go
`

const zshCompletion = `#compdef taskiq-go
# zsh completion for taskiq-go: eval "$(taskiq-go completion zsh)"
_taskiq_go() {
	local -a opts
	local cur="${words[-1]}"
	if [[ "$cur" == -* ]]; then
		opts=("${(@f)$(${words[@]:0:#words[@]-1} "$cur" --generate-bash-completion 2>/dev/null)}")
	else
		opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
	fi
	_describe 'values' opts
}
compdef _taskiq_go taskiq-go
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script",
		ArgsUsage: "bash|zsh|fish",
		Description: "Prints a script that completes commands and flags, asking taskiq-go itself:\n\n" +
			"   eval \"$(taskiq-go completion bash)\"      # in ~/.bashrc\n" +
			"   eval \"$(taskiq-go completion zsh)\"       # in ~/.zshrc\n" +
			"   taskiq-go completion fish > ~/.config/fish/completions/taskiq-go.fish",
		Action: func(cliContext *cli.Context) error {
			if cliContext.NArg() != 1 {
				return usagef("completion needs one shell: bash, zsh or fish")
			}
			out := cliContext.App.Writer
			switch sh := cliContext.Args().First(); sh {
			case "bash":
				_, err := fmt.Fprint(out, bashCompletion)
				return err
			case "zsh":
				_, err := fmt.Fprint(out, zshCompletion)
				return err
			case "fish":
				s, err := cliContext.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("fish completion: %w", err)
				}
				_, err = fmt.Fprint(out, s)
				return err
			default:
				return usagef("completion knows bash, zsh and fish, not %q", sh)
			}
		},
	}
}

func manCommand() *cli.Command {
	return &cli.Command{
		Name:        "man",
		Usage:       "print the manual page (roff)",
		Description: "   taskiq-go man | man -l -\n   taskiq-go man > /usr/local/share/man/man1/taskiq-go.1",
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("man takes no arguments")
			}
			s, err := cliContext.App.ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("man page: %w", err)
			}
			_, err = fmt.Fprint(cliContext.App.Writer, s)
			return err
		},
	}
}
