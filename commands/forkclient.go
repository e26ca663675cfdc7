package commands

import "github.com/taskiq-go/taskiq-go/forkclient"

// forkClient reports whether the binary was started as the native Dagster
// step client (under the name forkclient.Name, see the forkclient package).
// Like the supervisor mode it is checked before the command line is set up.
func forkClient(args []string) bool {
	return forkclient.Named(args)
}
