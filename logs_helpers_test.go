package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// mainTalker PREFIX: print "one" (followed by $TALK_SECRET when set; and
// "err one" on stderr), wait for the file PREFIX-1, print "two", wait for
// PREFIX-2, print "three" and exit 3: a task whose output a script can
// watch grow.
func mainTalker() {
	wait := func(p string) {
		for {
			if _, err := os.Stat(p); err == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fmt.Println(strings.TrimSpace("one " + os.Getenv("TALK_SECRET")))
	fmt.Fprintln(os.Stderr, "err one")
	wait(os.Args[1] + "-1")
	fmt.Println("two")
	wait(os.Args[1] + "-2")
	fmt.Println("three")
	os.Exit(3)
}

// mainOutTo FILE CMD ARGS...: run CMD with its stdout copied to FILE too,
// so that a script can wait for a line a background command prints; exits
// as CMD did.
func mainOutTo() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: outto FILE CMD [ARG...]")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[1], os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "outto:", err)
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, io.MultiWriter(os.Stdout, f), os.Stderr
	err = cmd.Run()
	f.Close()
	if err != nil && cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "outto:", err)
		os.Exit(2)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// waitrunning [-timeout D] WORKER TASK: wait until WORKER's heartbeat
// names TASK among its running tasks.
func cmdWaitRunning(ts *testscript.TestScript, neg bool, args []string) {
	timeout, args := timeoutOption(ts, args, 30*time.Second)
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitrunning [-timeout D] WORKER TASK")
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_ = ts.Exec("taskiq-go", "workers", "--json")
		for _, line := range strings.Split(ts.ReadFile("stdout"), "\n") {
			var w struct {
				Worker  string
				Running []string
			}
			if json.Unmarshal([]byte(line), &w) == nil && w.Worker == args[0] && slices.Contains(w.Running, args[1]) {
				return
			}
		}
	}
	ts.Fatalf("worker %s does not run %s after %s", args[0], args[1], timeout)
}
