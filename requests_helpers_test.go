package main

// Helper programs that count AWS requests, for scripts that bound what a
// command costs (registered in TestMain):
//
//	countproxy ENVFILE TARGET
//	reqcount URL reset | show | atmost N [MATCH...] | atleast N [MATCH...]
//
// countproxy forwards every request to TARGET (HOST:PORT, the script's
// endpoint) from 127.0.0.1:0, writes `export COUNTPROXY_URL=http://ADDR`
// to ENVFILE, and names each request it forwards: "sqs OPERATION" or "s3
// METHOD KEY" ("s3 LIST PREFIX" for a listing), an SQS one followed by
// its queue's name, "<NAME>", and " wait" for a long poll. reqcount asks
// it over /__counts: reset zeroes the counts, show prints them, atmost fails when
// more than N requests whose name contains one of the MATCH strings (all
// requests without one) were made, and atleast waits (60 s at most) until
// N such requests were made. With COUNTPROXY_DENY set, a request whose name
// contains it is counted and answered 400 AccessDenied, as SQS answers an
// action the caller's IAM policy does not allow.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func mainCountProxy() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: countproxy ENVFILE TARGET")
		os.Exit(2)
	}
	target := &url.URL{Scheme: "http", Host: os.Args[2]}
	var mu sync.Mutex
	counts := map[string]int{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	mux := http.NewServeMux()
	mux.HandleFunc("/__counts", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Query().Has("reset") {
			clear(counts)
			return
		}
		names := make([]string, 0, len(counts))
		for k := range counts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(w, "%d\t%s\n", counts[k], k)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		name := requestName(r)
		mu.Lock()
		counts[name]++
		mu.Unlock()
		if deny := os.Getenv("COUNTPROXY_DENY"); deny != "" && strings.Contains(name, deny) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"__type":"com.amazon.coral.service#AccessDeniedException","message":"User is not authorized to perform: sqs:SendMessage"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "countproxy:", err)
		os.Exit(1)
	}
	tmp := os.Args[1] + ".tmp"
	os.WriteFile(tmp, []byte("export COUNTPROXY_URL=http://"+ln.Addr().String()+"\n"), 0o644)
	os.Rename(tmp, os.Args[1])
	fmt.Fprintln(os.Stderr, http.Serve(ln, mux))
	os.Exit(1)
}

// requestName names an SQS request by its operation and an S3 one by its
// method and key (path style: /BUCKET/KEY), a listing by its prefix.
func requestName(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); strings.HasPrefix(t, "AmazonSQS.") {
		return "sqs " + strings.TrimPrefix(t, "AmazonSQS.") + sqsTarget(r)
	}
	q := r.URL.Query()
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if r.Method == http.MethodGet && key == "" && (q.Has("list-type") || q.Has("prefix")) {
		return "s3 LIST " + q.Get("prefix")
	}
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
		return "sqs (query protocol)"
	}
	return "s3 " + r.Method + " " + key
}

// sqsTarget names the queue of an SQS request, " <NAME>", and says
// " wait" for a receive that long-polls; the body is read and put back.
func sqsTarget(r *http.Request) string {
	b, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return ""
	}
	var in struct {
		QueueUrl        string
		WaitTimeSeconds int
	}
	if json.Unmarshal(b, &in) != nil || in.QueueUrl == "" {
		return ""
	}
	out := " <" + path.Base(in.QueueUrl) + ">"
	if in.WaitTimeSeconds > 0 {
		out += " wait"
	}
	return out
}

// kindOf finds the task id (or member id) in a request's name, for
// counts printed by kind: "s3 PUT taskiq/tasks/*/result.json".
var kindOf = regexp.MustCompile(`((?:tasks|groups/[^/]+|group-ends/[^/]+)/)[^/ ]+`)

func mainReqCount() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: reqcount URL reset|show|atmost N [MATCH...]|atleast N [MATCH...]")
		os.Exit(2)
	}
	base, op := os.Args[1], os.Args[2]
	get := func(query string) string {
		resp, err := http.Get(base + "/__counts" + query)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reqcount:", err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if op == "reset" {
		get("?reset=1")
		return
	}
	if op == "show" {
		fmt.Print(get(""))
		return
	}
	if len(os.Args) < 4 || (op != "atmost" && op != "atleast") {
		fmt.Fprintln(os.Stderr, "usage: reqcount URL atmost|atleast N [MATCH...]")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[3])
	match := os.Args[4:]
	count := func() (int, string) {
		text := get("")
		total := 0
		kinds := map[string]int{}
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			c, name, _ := strings.Cut(sc.Text(), "\t")
			k, _ := strconv.Atoi(c)
			hit := len(match) == 0
			for _, m := range match {
				hit = hit || strings.Contains(name, m)
			}
			if hit {
				total += k
				kinds[kindOf.ReplaceAllString(name, "$1*")] += k
			}
		}
		var lines []string
		for k, c := range kinds {
			lines = append(lines, fmt.Sprintf("%d\t%s", c, k))
		}
		sort.Strings(lines)
		return total, strings.Join(lines, "\n")
	}
	if op == "atmost" {
		got, lines := count()
		fmt.Printf("%d requests\n%s\n", got, lines)
		if got > n {
			fmt.Fprintf(os.Stderr, "reqcount: %d requests matching %q, want at most %d\n", got, match, n)
			os.Exit(1)
		}
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, lines := count()
		if got >= n {
			fmt.Printf("%d requests\n%s\n", got, lines)
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "reqcount: %d requests matching %q after 60 s, want at least %d\n", got, match, n)
			os.Exit(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mainWaitFor is `waitfor FILE`: a task that runs until FILE exists, for
// scripts that keep a task running while they count what a wait costs.
func mainWaitFor() {
	for {
		if _, err := os.Stat(os.Args[1]); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mainNotRan is `notran CANCEL_OUTPUT DIR`: fail if a task that cancel
// printed as "ID<TAB>cancelled" has DIR/ID (its command ran), and print how
// many tasks were cancelled and how many of the others ran.
func mainNotRan() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "notran:", err)
		os.Exit(2)
	}
	cancelled, ran, bad := 0, 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		id, outcome, _ := strings.Cut(line, "\t")
		_, err := os.Stat(filepath.Join(os.Args[2], id))
		switch {
		case outcome == "cancelled" && err == nil:
			fmt.Fprintf(os.Stderr, "notran: %s was reported cancelled but ran\n", id)
			bad++
		case outcome == "cancelled":
			cancelled++
		case err == nil:
			ran++
		}
	}
	fmt.Printf("cancelled %d, others that ran %d\n", cancelled, ran)
	if bad > 0 {
		os.Exit(1)
	}
}
