// Command taskiq-go-step is the native Dagster step client alone (see the
// forkclient package), without the rest of taskiq-go: a process that
// imports only the standard library starts for about 3 ms of CPU, where
// the whole binary's package initialization (the AWS SDK's) takes about 20.
// dagster-taskiq worker start links it as dagster-taskiq-step when it is
// installed beside taskiq-go, and taskiq-go itself otherwise.
package main

import (
	"os"

	"github.com/taskiq-go/taskiq-go/forkclient"
)

func main() { os.Exit(forkclient.Main(os.Args)) }
