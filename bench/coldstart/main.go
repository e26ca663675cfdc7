// Command coldstart measures the wall time of single taskiq-go commands
// (submit, poll ID, result ID) against a running dev endpoint, as ratios to
// the floor program measured in the same run. Run it through bench/run.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/taskiq-go", "taskiq-go binary")
	floor := flag.String("floor", "bin/floor", "floor binary")
	n := flag.Int("n", 50, "runs of each command")
	flag.Parse()
	out, err := exec.Command(*bin, "submit", "--", "true").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "submit:", err)
		os.Exit(1)
	}
	id := strings.TrimSpace(string(out))
	// One finished task for `result`.
	if err := exec.Command(*bin, "result", "--wait", "--timeout", "60s", id).Run(); err != nil {
		fmt.Fprintln(os.Stderr, "the task did not finish: is a worker running?", err)
		os.Exit(1)
	}
	cases := []struct {
		name string
		cmd  []string
	}{
		{"floor (config + 1 SendMessage)", []string{*floor}},
		{"submit -- true", []string{*bin, "submit", "--", "true"}},
		{"poll ID", []string{*bin, "poll", id}},
		{"result ID", []string{*bin, "result", id}},
	}
	// Runs are interleaved (one of each case per round) so that a change
	// in the machine's load shifts every case alike.
	times := make([][]time.Duration, len(cases))
	for round := -3; round < *n; round++ {
		for i, c := range cases {
			cmd := exec.Command(c.cmd[0], c.cmd[1:]...)
			cmd.Stderr = os.Stderr
			start := time.Now()
			if out, err := cmd.Output(); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v: %s\n", strings.Join(c.cmd, " "), err, out)
				os.Exit(1)
			}
			if round >= 0 { // the first rounds warm the page cache
				times[i] = append(times[i], time.Since(start))
			}
		}
	}
	var base time.Duration
	for i, c := range cases {
		slices.Sort(times[i])
		m := times[i][len(times[i])/2]
		if i == 0 {
			base = m
		}
		fmt.Printf("%-32s median %7.2f ms  ratio %.2f\n", c.name, float64(m.Microseconds())/1000, float64(m)/float64(base))
	}
}
