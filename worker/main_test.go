package worker

import (
	"os"
	"testing"

	"github.com/taskiq-go/taskiq-go/supervisor"
)

// TestMain lets the test binary be the tasks' supervisor, as the taskiq-go
// binary is: the worker starts every command under os.Args[0].
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == supervisor.Arg {
		os.Exit(supervisor.Main())
	}
	os.Exit(m.Run())
}
