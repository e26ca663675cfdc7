package commands

import "github.com/taskiq-go/taskiq-go/supervisor"

// supervising reports whether args start the hidden supervisor mode, the
// per-task watchdog a worker starts for each command (see the supervisor
// package). It is checked before the command line is set up, so that a
// task starts without the cost of building it.
func supervising(args []string) bool {
	return len(args) > 1 && args[1] == supervisor.Arg
}
