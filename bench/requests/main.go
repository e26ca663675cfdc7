// Command requests is a counting HTTP proxy for bench/requests.sh: it
// forwards every request to an AWS endpoint (the embedded dev endpoint or
// moto_server) and counts it by service and operation, so that a run can
// say how many AWS requests each task cost.
//
//	requests -target URL -env-file FILE [-log FILE]
//
// It listens on 127.0.0.1:0 and writes `export AWS_ENDPOINT_URL=http://ADDR`
// (and the _SQS and _S3 variants) to FILE. Requests under /__counts are its own: GET /__counts/reset zeroes
// the counts, GET /__counts/report?tasks=N prints them, per task when N is
// given. SQS calls (JSON protocol) are named by their X-Amz-Target header,
// or their Action parameter (query protocol); S3 calls by method and the
// object key with the task id left out ("PUT taskiq/tasks/*/result.json"),
// or "LIST prefix". With -log, each request answered is also written to a
// file as one line (its start and end in unix milliseconds, service,
// operation), for a timeline of a run.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type counter struct {
	mu sync.Mutex
	n  map[[2]string]int
	// busy is the time each operation took to be answered, summed: under
	// load, a single-threaded emulator's cost of each kind of request.
	busy map[[2]string]time.Duration
}

func (c *counter) add(service, op string, took time.Duration) {
	c.mu.Lock()
	k := [2]string{service, op}
	c.n[k]++
	c.busy[k] += took
	c.mu.Unlock()
}

func main() {
	target := flag.String("target", "", "endpoint to forward to")
	envFile := flag.String("env-file", "", "file to write the proxy's AWS_ENDPOINT_URL to")
	logFile := flag.String("log", "", "file to write one line per request to: start and end (unix ms), service, operation")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" || *envFile == "" {
		log.Fatal("usage: requests -target URL -env-file FILE")
	}
	c := &counter{n: map[[2]string]int{}, busy: map[[2]string]time.Duration{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	var tl *timeline
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			log.Fatal(err)
		}
		tl = &timeline{f: f}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/__counts/reset", func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		clear(c.n)
		clear(c.busy)
		c.mu.Unlock()
	})
	mux.HandleFunc("/__counts/report", func(w http.ResponseWriter, r *http.Request) {
		tasks, _ := strconv.Atoi(r.URL.Query().Get("tasks"))
		report(w, c, tasks)
	})
	mux.HandleFunc("/__counts/times", func(w http.ResponseWriter, _ *http.Request) {
		times(w, c)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		service, op := classify(r)
		began := time.Now()
		proxy.ServeHTTP(w, r)
		c.add(service, op, time.Since(began))
		tl.add(began, service, op)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	// The service-specific variables too: the dev endpoint's env file sets
	// them, and they win over AWS_ENDPOINT_URL.
	u2 := "http://" + ln.Addr().String()
	env := "export AWS_ENDPOINT_URL=" + u2 + "\nexport AWS_ENDPOINT_URL_SQS=" + u2 + "\nexport AWS_ENDPOINT_URL_S3=" + u2 + "\n"
	if err := os.WriteFile(*envFile, []byte(env), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(ln, mux))
}

// timeline writes one line per request answered, for a run's timeline:
// when it began and ended (unix milliseconds), its service and operation.
type timeline struct {
	mu sync.Mutex
	f  *os.File
}

func (t *timeline) add(began time.Time, service, op string) {
	if t == nil {
		return
	}
	end := time.Now()
	line := fmt.Sprintf("%.3f %.3f %s %s\n", float64(began.UnixMicro())/1000, float64(end.UnixMicro())/1000, service, op)
	t.mu.Lock()
	_, _ = t.f.WriteString(line)
	t.mu.Unlock()
}

// classify names a request's service and operation.
func classify(r *http.Request) (string, string) {
	if t := r.Header.Get("X-Amz-Target"); strings.HasPrefix(t, "AmazonSQS.") {
		return "sqs", strings.TrimPrefix(t, "AmazonSQS.")
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		// Read and put back: the body still has to be forwarded.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") != "" {
			return "sqs", form.Get("Action")
		}
	}
	q := r.URL.Query()
	// Path style: /BUCKET/KEY.
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	key := ""
	if len(parts) == 2 {
		key = parts[1]
	}
	// A key's kind is its path with the task id left out:
	// "taskiq/tasks/ID/result.json" is "taskiq/tasks/*/result.json".
	first := func(s string) string {
		seg := strings.Split(s, "/")
		for i := 1; i+1 < len(seg); i++ {
			switch seg[i] {
			case "tasks", "workers":
				seg[i+1] = "*"
			case "groups", "group-ends", "index":
				// A group's keys (GROUP/ID, an end key's state after it)
				// and the index's pages: one kind each, the names left out.
				for j := i + 1; j < len(seg); j++ {
					if seg[j] != "" {
						seg[j] = "*"
					}
				}
				seg = slices.Compact(seg)
				i = len(seg)
			}
		}
		return strings.Join(seg, "/")
	}
	switch {
	case r.Method == http.MethodGet && key == "" && (q.Has("list-type") || q.Has("prefix")):
		return "s3", "LIST " + first(q.Get("prefix"))
	case r.Method == http.MethodPost && q.Has("delete"):
		return "s3", "DELETE (batch)"
	case r.Method == http.MethodPut && r.Header.Get("If-None-Match") != "":
		return "s3", "PUT " + first(key) + " (if-none-match)"
	}
	return "s3", r.Method + " " + first(key)
}

// times prints, for each operation, its count, the seconds its requests
// took in all and on average: what each kind of request costs the
// endpoint.
func times(w http.ResponseWriter, c *counter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([][2]string, 0, len(c.busy))
	for k := range c.busy {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return c.busy[keys[i]] > c.busy[keys[j]] })
	fmt.Fprintf(w, "%-4s %-48s %7s %9s %8s\n", "svc", "operation", "count", "total s", "mean ms")
	for _, k := range keys {
		fmt.Fprintf(w, "%-4s %-48s %7d %9.2f %8.1f\n", k[0], k[1], c.n[k], c.busy[k].Seconds(),
			float64(c.busy[k].Microseconds())/1000/float64(c.n[k]))
	}
}

func report(w http.ResponseWriter, c *counter, tasks int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([][2]string, 0, len(c.n))
	totals := map[string]int{}
	all := 0
	for k, n := range c.n {
		keys = append(keys, k)
		totals[k[0]] += n
		all += n
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] > keys[j][0]
		}
		return c.n[keys[i]] > c.n[keys[j]]
	})
	per := func(n int) string {
		if tasks <= 0 {
			return ""
		}
		return fmt.Sprintf("%8.2f", float64(n)/float64(tasks))
	}
	fmt.Fprintf(w, "%-4s %-48s %7s %8s\n", "svc", "operation", "count", "per task")
	for _, k := range keys {
		fmt.Fprintf(w, "%-4s %-48s %7d %s\n", k[0], k[1], c.n[k], per(c.n[k]))
	}
	for _, s := range []string{"sqs", "s3"} {
		fmt.Fprintf(w, "%-4s %-48s %7d %s\n", s, "(all)", totals[s], per(totals[s]))
	}
	fmt.Fprintf(w, "%-4s %-48s %7d %s\n", "all", "(all)", all, per(all))
}
