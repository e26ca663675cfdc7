// Command throughput measures how many /bin/true tasks per second one
// worker finishes at a given concurrency, as a ratio to the rate at which
// this Go program can fork/exec /bin/true itself. Run it through
// bench/run.sh, which starts the dev endpoint.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/taskiq-go", "taskiq-go binary")
	tasks := flag.Int("tasks", 2000, "tasks per run")
	conc := flag.String("concurrency", "1,4,16", "worker concurrencies to measure")
	flag.Parse()

	start := time.Now()
	for range *tasks {
		if err := exec.Command("/bin/true").Run(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	floor := float64(*tasks) / time.Since(start).Seconds()
	fmt.Printf("%-28s %8.0f /s\n", "fork/exec /bin/true (floor)", floor)

	var batch bytes.Buffer
	for range *tasks {
		batch.WriteString(`{"argv":["/bin/true"]}` + "\n")
	}
	for _, c := range strings.Split(*conc, ",") {
		sub := exec.Command(*bin, "submit", "--batch", "-")
		sub.Stdin = bytes.NewReader(batch.Bytes())
		sub.Stderr = os.Stderr
		if err := sub.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "submit:", err)
			os.Exit(1)
		}
		w := exec.Command(*bin, "work", "--concurrency", c, "--max-tasks", fmt.Sprint(*tasks), "--log-level", "warn")
		w.Stderr = os.Stderr
		start := time.Now()
		if err := w.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "work:", err)
			os.Exit(1)
		}
		rate := float64(*tasks) / time.Since(start).Seconds()
		fmt.Printf("worker concurrency %-9s %8.0f /s  ratio %.2f\n", c, rate, rate/floor)
	}
}
