// Command taskiq-go-supervise is the per-task supervisor of `taskiq-go
// work` alone (see the supervisor package), without the rest of taskiq-go:
// it imports only the standard library, so a task's supervisor starts for a
// few milliseconds of CPU where the whole binary's package initialization
// (the AWS SDK's) takes about 20. The worker starts it for every task when
// it sits beside the taskiq-go executable, and re-executes itself
// otherwise. It is not run by hand: the worker hands it its command on a
// pipe.
package main

import (
	"fmt"
	"os"

	"github.com/taskiq-go/taskiq-go/supervisor"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != supervisor.Arg {
		fmt.Fprintf(os.Stderr, "%s is started by taskiq-go work for each task, not by hand\n", supervisor.Binary)
		os.Exit(2)
	}
	os.Exit(supervisor.Main())
}
