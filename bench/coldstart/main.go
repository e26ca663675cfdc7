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

func median(cmd []string, n int) (time.Duration, error) {
	times := make([]time.Duration, 0, n)
	for range n {
		c := exec.Command(cmd[0], cmd[1:]...)
		c.Stderr = os.Stderr
		start := time.Now()
		if out, err := c.Output(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", strings.Join(cmd, " "), err, out)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[n/2], nil
}

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
	var base time.Duration
	for i, c := range cases {
		// Interleave a warm-up so the page cache holds both binaries.
		if _, err := median(c.cmd, 3); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		m, err := median(c.cmd, *n)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if i == 0 {
			base = m
		}
		fmt.Printf("%-32s median %7.2f ms  ratio %.2f\n", c.name, float64(m.Microseconds())/1000, float64(m)/float64(base))
	}
}
