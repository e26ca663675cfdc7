// Command requests is a counting HTTP proxy for bench/requests.sh: it
// forwards every request to an AWS endpoint (the embedded dev endpoint or
// moto_server) and counts it by service and operation, so that a run can
// say how many AWS requests each task cost.
//
//	requests -target URL -env-file FILE
//
// It listens on 127.0.0.1:0 and writes `export AWS_ENDPOINT_URL=http://ADDR`
// (and the _SQS and _S3 variants) to FILE. Requests under /__counts are its own: GET /__counts/reset zeroes
// the counts, GET /__counts/report?tasks=N prints them, per task when N is
// given. SQS calls (JSON protocol) are named by their X-Amz-Target header,
// or their Action parameter (query protocol); S3 calls by method and the
// object key with the task id left out ("PUT taskiq/tasks/*/result.json"),
// or "LIST prefix".
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
	"sort"
	"strconv"
	"strings"
	"sync"
)

type counter struct {
	mu sync.Mutex
	n  map[[2]string]int
}

func (c *counter) add(service, op string) {
	c.mu.Lock()
	c.n[[2]string{service, op}]++
	c.mu.Unlock()
}

func main() {
	target := flag.String("target", "", "endpoint to forward to")
	envFile := flag.String("env-file", "", "file to write the proxy's AWS_ENDPOINT_URL to")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" || *envFile == "" {
		log.Fatal("usage: requests -target URL -env-file FILE")
	}
	c := &counter{n: map[[2]string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	mux := http.NewServeMux()
	mux.HandleFunc("/__counts/reset", func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		clear(c.n)
		c.mu.Unlock()
	})
	mux.HandleFunc("/__counts/report", func(w http.ResponseWriter, r *http.Request) {
		tasks, _ := strconv.Atoi(r.URL.Query().Get("tasks"))
		report(w, c, tasks)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		service, op := classify(r)
		c.add(service, op)
		proxy.ServeHTTP(w, r)
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
			if seg[i] == "tasks" || seg[i] == "workers" {
				seg[i+1] = "*"
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
