package main

import (
	"bufio"
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/commands"
	"github.com/taskiq-go/taskiq-go/devserver"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/supervisor"
)

// TestMain registers the taskiq-go command and the small programs that
// scripts run as tasks, so that scripts need no shell.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"taskiq-go": func() { os.Exit(commands.Main(os.Args)) },
		// taskiq-go-supervise beside taskiq-go, as make build puts it: the
		// workers start their supervisors from it.
		"taskiq-go-supervise": func() { os.Exit(supervisor.Main()) },
		// exitn N: exit with status N.
		"exitn": func() {
			n, _ := strconv.Atoi(os.Args[1])
			os.Exit(n)
		},
		// sleeper D [FILE]: write FILE (if given) then sleep D.
		"sleeper": func() {
			d, _ := time.ParseDuration(os.Args[1])
			if len(os.Args) > 2 {
				os.WriteFile(os.Args[2], []byte(strconv.Itoa(os.Getpid())), 0o644)
			}
			time.Sleep(d)
		},
		// ignoreterm D FILE: ignore SIGTERM, write FILE, sleep D.
		"ignoreterm": func() {
			signal.Ignore(syscall.SIGTERM)
			os.WriteFile(os.Args[2], []byte(strconv.Itoa(os.Getpid())), 0o644)
			d, _ := time.ParseDuration(os.Args[1])
			time.Sleep(d)
		},
		// printbytes N [stderr]: write N deterministic bytes, not all valid
		// UTF-8, to stdout (or stderr).
		"printbytes": func() {
			n, _ := strconv.Atoi(os.Args[1])
			out := os.Stdout
			if len(os.Args) > 2 && os.Args[2] == "stderr" {
				out = os.Stderr
			}
			w := bufio.NewWriterSize(out, 1<<16)
			r := rand.New(rand.NewPCG(1, 2))
			for range n {
				w.WriteByte(byte(r.IntN(256)))
			}
			w.Flush()
		},
		// echoargs: print the number of arguments and their total size, and
		// the environment variable TASK_ENV.
		"echoargs": func() {
			total := 0
			for _, a := range os.Args[1:] {
				total += len(a)
			}
			fmt.Printf("%d args, %d bytes, TASK_ENV=%s\n", len(os.Args)-1, total, os.Getenv("TASK_ENV"))
			fmt.Fprintln(os.Stderr, "to stderr")
		},
		// genspec N SIZE: print a task spec whose argv is echoargs and N
		// arguments of SIZE bytes each.
		"genspec": func() {
			n, _ := strconv.Atoi(os.Args[1])
			size, _ := strconv.Atoi(os.Args[2])
			argv := []string{"echoargs"}
			for i := range n {
				argv = append(argv, strings.Repeat(string(rune('a'+i%26)), size))
			}
			json.NewEncoder(os.Stdout).Encode(map[string]any{"argv": argv, "id": os.Args[3]})
		},
		// failonce FILE: fail (exit 1) unless FILE exists; create it.
		"failonce": func() {
			if _, err := os.Stat(os.Args[1]); err == nil {
				fmt.Println("second time lucky")
				return
			}
			os.WriteFile(os.Args[1], nil, 0o644)
			fmt.Println("failing once")
			os.Exit(1)
		},
		// slowonce FILE: the first time (no FILE), write FILE and sleep a
		// minute; later, print "quick" and exit 0.
		"slowonce": func() {
			if _, err := os.Stat(os.Args[1]); err == nil {
				fmt.Println("quick")
				return
			}
			os.WriteFile(os.Args[1], []byte(strconv.Itoa(os.Getpid())), 0o644)
			time.Sleep(time.Minute)
		},
		// touchfile FILE: create FILE (proves a task ran).
		"touchfile": func() {
			f, _ := os.OpenFile(os.Args[1], os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			fmt.Fprintln(f, "ran")
			f.Close()
		},
		// spawner D FILE: start `sleeper D FILE` as a child (which writes
		// its pid to FILE), then sleep D: a task with a process tree.
		"spawner": func() {
			d, _ := time.ParseDuration(os.Args[1])
			child := exec.Command("sleeper", os.Args[1], os.Args[2])
			if err := child.Start(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			time.Sleep(d)
		},
		// signalwhen SIG FILE|- CMD ARGS...: run CMD, send it SIG (INT or
		// TERM) once FILE exists (with -, once CMD has opened a network
		// connection: it has set up its signal handling by then), and exit
		// as CMD did (128+N when a signal N killed it).
		"signalwhen": mainSignalWhen,
		// faultproxy ENVFILE CONTROL TARGET: a TCP proxy to TARGET on
		// 127.0.0.1:0 that writes `export FAULTPROXY_URL=http://ADDR` to
		// ENVFILE, and is down while CONTROL exists (listener and every open
		// connection closed: connections are refused), back on the same port
		// once CONTROL is removed. When CONTROL holds a duration, the proxy
		// removes it itself that long after going down. CONTROL.ack exists
		// while the proxy is down, for scripts to wait on.
		"faultproxy": mainFaultProxy,
		// runlog [-ignoreterm] FILE TAG D [DLATER]: append "start TAG PID
		// UNIXMS" to FILE, sleep D (DLATER when TAG has run before), append
		// "end TAG PID UNIXMS". While it runs it holds a lock per TAG: a copy
		// that finds the lock taken, a second copy running at the same time,
		// first appends "overlap TAG PID UNIXMS".
		"runlog": mainRunLog,
		// genbatch N PREFIX GROUP ARGV...: print N task lines for submit
		// --batch with ids PREFIX-01..N, every "{}" in ARGV replaced by the id.
		"genbatch": mainGenBatch,
		// logto FILE CMD ARGS...: run CMD with its stderr copied to FILE too,
		// passing SIGINT and SIGTERM on, so that a script can wait for a log
		// line of a background command; exits as CMD did.
		"logto":    mainLogTo,
		"signtask": mainSignTask,
		// s3fault ENVFILE CONTROL TARGET: S3 answers 500 while CONTROL says (faults_test.go).
		"s3fault": mainS3Fault,
		// tree exit|sleep: write leader.pid, start a background child
		// (bg.pid) and one in a session of its own (setsid.pid) that sleep
		// five minutes, then exit 0 or sleep five minutes too.
		"tree": mainTree,
		// withpid FILE CMD ARGS...: write this process's pid to FILE, then
		// become CMD (exec), so that FILE holds CMD's pid.
		"withpid": mainWithPid,
		// talker PREFIX and outto FILE CMD ARGS... (logs_helpers_test.go).
		"talker": mainTalker,
		"outto":  mainOutTo,
		// countproxy ENVFILE TARGET and reqcount URL ... count the AWS
		// requests a command makes (requests_helpers_test.go).
		"countproxy": mainCountProxy,
		"reqcount":   mainReqCount,
		// waitfor FILE: run until FILE exists.
		"waitfor": mainWaitFor,
		// notran CANCEL_OUTPUT DIR: no task cancel reported cancelled ran.
		"notran": mainNotRan,
	})
}

func mainFaultProxy() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: faultproxy ENVFILE CONTROL TARGET")
		os.Exit(2)
	}
	envFile, control, target := os.Args[1], os.Args[2], os.Args[3]
	p := &faultProxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultproxy:", err)
		os.Exit(1)
	}
	addr := ln.Addr().String()
	p.serve(ln)
	tmp := envFile + ".tmp"
	os.WriteFile(tmp, []byte("export FAULTPROXY_URL=http://"+addr+"\n"), 0o644)
	os.Rename(tmp, envFile)
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "faultproxy %s: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	logf("up on %s, to %s", addr, target)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var downAt time.Time
	var downFor time.Duration
	for {
		select {
		case <-stop:
			logf("stopping")
			os.Exit(0)
		case <-tick.C:
		}
		data, err := os.ReadFile(control)
		switch {
		case err == nil && ln != nil:
			ln.Close()
			ln = nil
			n := p.setDown(true)
			downAt = time.Now()
			downFor, _ = time.ParseDuration(strings.TrimSpace(string(data)))
			os.WriteFile(control+".ack", nil, 0o644)
			logf("down (%d sockets closed)", n)
		case err == nil && downFor == 0:
			// Read while it was being written (a script's cp is not
			// atomic): the duration may only be there now.
			downFor, _ = time.ParseDuration(strings.TrimSpace(string(data)))
		case err == nil && time.Since(downAt) >= downFor:
			os.Remove(control)
		case err != nil && ln == nil:
			// The same port again: clients keep their configured address.
			if ln, err = net.Listen("tcp", addr); err != nil {
				ln = nil
				continue
			}
			p.setDown(false)
			p.serve(ln)
			os.Remove(control + ".ack")
			logf("up again after %s, %d connections accepted so far", time.Since(downAt).Round(time.Millisecond), p.accepted.Load())
		}
	}
}

type faultProxy struct {
	target   string
	mu       sync.Mutex
	down     bool
	conns    map[net.Conn]struct{}
	accepted atomic.Int64
}

// add tracks c, or closes it when the proxy is down, or when it goes with
// a connection (its client side) dropped meanwhile.
func (p *faultProxy) add(c, with net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.conns[with]; p.down || with != nil && !ok {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) remove(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// setDown marks the proxy down (closing every connection, and reporting
// how many) or up.
func (p *faultProxy) setDown(down bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	n := 0
	for c := range p.conns {
		if down {
			c.Close()
			delete(p.conns, c)
			n++
		}
	}
	return n
}

func (p *faultProxy) serve(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			if p.add(c, nil) {
				go p.pipe(c)
			}
		}
	}()
}

func (p *faultProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		p.remove(c)
		return
	}
	if !p.add(up, c) {
		c.Close()
		p.remove(c)
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.remove(c)
	p.remove(up)
}

func mainRunLog() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "-ignoreterm" {
		signal.Ignore(syscall.SIGTERM)
		args = args[1:]
	}
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: runlog [-ignoreterm] FILE TAG D [DLATER]")
		os.Exit(2)
	}
	file, tag := args[0], args[1]
	d, _ := time.ParseDuration(args[2])
	appendLine := func(what string) {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "runlog:", err)
			os.Exit(2)
		}
		fmt.Fprintf(f, "%s %s %d %d\n", what, tag, os.Getpid(), time.Now().UnixMilli())
		f.Close()
	}
	lock, err := os.OpenFile(file+"."+tag+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "runlog:", err)
		os.Exit(2)
	}
	// Held until this process ends, however it ends.
	if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		appendLine("overlap")
	}
	if len(args) > 3 {
		before, _ := os.ReadFile(file)
		if strings.Contains("\n"+string(before), "\nstart "+tag+" ") {
			d, _ = time.ParseDuration(args[3])
		}
	}
	appendLine("start")
	time.Sleep(d)
	appendLine("end")
}

func mainGenBatch() {
	if len(os.Args) < 5 {
		fmt.Fprintln(os.Stderr, "usage: genbatch N PREFIX GROUP ARGV...")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[1])
	enc := json.NewEncoder(os.Stdout)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s-%02d", os.Args[2], i)
		var argv []string
		for _, a := range os.Args[4:] {
			argv = append(argv, strings.ReplaceAll(a, "{}", id))
		}
		enc.Encode(map[string]any{"id": id, "group": os.Args[3], "argv": argv})
	}
}

func mainLogTo() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: logto FILE CMD [ARG...]")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[1], os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "logto:", err)
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, io.MultiWriter(os.Stderr, f)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "logto:", err)
		os.Exit(2)
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	cmd.Wait()
	f.Close()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

func mainSignalWhen() {
	sig := map[string]syscall.Signal{"INT": syscall.SIGINT, "TERM": syscall.SIGTERM}[os.Args[1]]
	if sig == 0 || len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: signalwhen INT|TERM FILE|- CMD [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[3], os.Args[4:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "signalwhen:", err)
		os.Exit(2)
	}
	exited := make(chan struct{})
	go func() {
		ready := func() bool {
			if os.Args[2] == "-" {
				return hasSocket(cmd.Process.Pid)
			}
			_, err := os.Stat(os.Args[2])
			return err == nil
		}
		for deadline := time.Now().Add(30 * time.Second); !ready() && time.Now().Before(deadline); {
			select {
			case <-exited:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		cmd.Process.Signal(sig)
	}()
	cmd.Wait()
	close(exited)
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// hasSocket reports whether process pid has a socket open.
func hasSocket(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			return true
		}
	}
	return false
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       os.Getenv("TASKIQ_GO_UPDATE") != "",
		Setup:               setupEndpoint,
		// [moto]: the script runs against moto_server, which also serves
		// the services the embedded endpoint does not (SSM).
		Condition: func(cond string) (bool, error) {
			if cond == "moto" {
				return os.Getenv("TASKIQ_GO_TEST_ENDPOINT") != "", nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitstate":   cmdWaitState,
			"jsonvar":     cmdJSONVar,
			"startorder":  cmdStartOrder,
			"freeport":    cmdFreePort,
			"httpget":     cmdHTTPGet,
			"httpreq":     cmdHTTPReq,
			"waitfile":    cmdWaitFile,
			"sqssend":     cmdSQSSend,
			"sqssendattr": cmdSQSSendAttr,
			"sqscount":    cmdSQSCount,
			"exitcode":    cmdExitCode,
			"pidgone":     cmdPidGone,
			"killpid":     cmdKillPid,
			"sqsredrive":  cmdSQSRedrive,
			"sqsreceive":  cmdSQSReceive,
			"loadenv":     cmdLoadEnv,
			"s3put":       cmdS3Put,
			"envsubst":    cmdEnvSubst,
			"waitlines":   cmdWaitLines,
			"waitrunning": cmdWaitRunning,
			"waitgone":    cmdWaitGone,
			"runsummary":  cmdRunSummary,
			"now":         cmdNow,
			"sqssendfile": cmdSQSSendFile,
			"s3grep":      cmdS3Grep,
			"sqsgrep":     cmdSQSGrep,
			"sqsattr":     cmdSQSAttr,
			"s3sse":       cmdS3SSE,
			"ssmput":      cmdSSMPut,
			"smput":       cmdSMPut,
			"sigpid":      cmdSigPid,
		},
	})
}

// setupEndpoint gives every script its own SQS+S3 endpoint and sets the
// variables the commands read. By default it starts an embedded endpoint
// in this process (startEndpoint); with TASKIQ_GO_TEST_ENDPOINT set
// (moto_server in CI) it creates fresh queues and a fresh bucket there
// instead.
func setupEndpoint(env *testscript.Env) error {
	env.Setenv("TASKIQ_GO_LOG_FORMAT", "json")
	env.Setenv("AWS_CONFIG_FILE", filepath.Join(env.WorkDir, ".aws-config-none"))
	env.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(env.WorkDir, ".aws-credentials-none"))
	env.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	// TEST_S3_OUTAGE is how long s3fault's outages last (a parameter).
	env.Setenv("TEST_S3_OUTAGE", cmp.Or(os.Getenv("TASKIQ_GO_TEST_S3_OUTAGE"), "30s"))
	// TEST_ENDPOINT_ADDR is the endpoint's HOST:PORT, an address in use.
	defer func() {
		if u, err := url.Parse(env.Getenv("AWS_ENDPOINT_URL")); err == nil {
			env.Setenv("TEST_ENDPOINT_ADDR", u.Host)
		}
	}()
	if ep := os.Getenv("TASKIQ_GO_TEST_ENDPOINT"); ep != "" {
		return setupExternal(env, ep)
	}
	return startEndpoint(env)
}

// startEndpoint starts a fresh embedded endpoint in this test process, on
// a free loopback port, with what `taskiq-go dev --queue gpu --unsigned`
// creates (the bands of the default and gpu queues, a DLQ, a bucket), and
// sets the variables its env file would. Scripts that test `dev` itself
// start the real command.
func startEndpoint(env *testscript.Env) error {
	logPath := filepath.Join(env.WorkDir, ".dev.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	var queues []string
	for _, base := range []string{"taskiq", "taskiq-gpu"} {
		for _, b := range plan.Bands {
			queues = append(queues, base+b.Suffix)
		}
	}
	srv, err := devserver.New(devserver.Options{
		Queues: queues, DeadLetterQueue: "taskiq-dlq", Bucket: "taskiq",
		Log: zerolog.New(logf).With().Timestamp().Logger().Level(zerolog.DebugLevel),
	})
	if err == nil {
		if err = srv.Start(); err != nil {
			srv.Close()
		}
	}
	if err != nil {
		logf.Close()
		return fmt.Errorf("start the script's endpoint: %w", err)
	}
	env.Defer(func() {
		srv.Close()
		logf.Close()
		// TASKIQ_GO_KEEP_DEVLOG=DIR keeps each script's endpoint log, to
		// debug a failure on the endpoint's side.
		if dir := os.Getenv("TASKIQ_GO_KEEP_DEVLOG"); dir != "" {
			data, _ := os.ReadFile(logPath)
			os.WriteFile(filepath.Join(dir, filepath.Base(env.WorkDir)+".log"), data, 0o644)
		}
	})
	// Scripts steer the commands with AWS_REGION and AWS_ENDPOINT_URL
	// alone; the env file's AWS_DEFAULT_REGION and per-service endpoints
	// are for other clients.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":     srv.Credentials().AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": srv.Credentials().SecretAccessKey,
		"AWS_REGION":            srv.Region(),
		"AWS_ENDPOINT_URL":      srv.Endpoint(),
		"TASKIQ_GO_QUEUE_URL":   srv.QueueURL("taskiq"),
		"TASKIQ_GO_BUCKET":      srv.Bucket(),
		"TEST_DLQ_URL":          srv.QueueURL("taskiq-dlq"),
	} {
		env.Setenv(k, v)
	}
	return nil
}

// setupExternal creates a queue (with -dlq and -gpu companions) and a
// bucket with random names on an external endpoint.
func setupExternal(env *testscript.Env, endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := make([]byte, 6)
	crand.Read(b)
	name := "t" + hex.EncodeToString(b)
	sq, s3c, err := clients(ctx, endpoint)
	if err != nil {
		return err
	}
	var queueURL string
	names := []string{name + "-dlq"}
	for _, b := range plan.Bands {
		names = append(names, name+b.Suffix, name+"-gpu"+b.Suffix)
	}
	for _, n := range names {
		out, err := sq.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(n)})
		if err != nil {
			return fmt.Errorf("create queue %s: %w", n, err)
		}
		if n == name {
			queueURL = aws.ToString(out.QueueUrl)
		}
	}
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
		"AWS_ENDPOINT_URL": endpoint, "TASKIQ_GO_QUEUE_URL": queueURL, "TASKIQ_GO_BUCKET": name,
		"TEST_DLQ_URL": queueURL + "-dlq",
	} {
		env.Setenv(k, v)
	}
	return nil
}

// clients signs with keys (access key id, secret), default "test"/"test".
func clients(ctx context.Context, endpoint string, keys ...string) (*awssqs.Client, *s3.Client, error) {
	if len(keys) < 2 || keys[0] == "" {
		keys = []string{"test", "test"}
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keys[0], keys[1], "")))
	if err != nil {
		return nil, nil, err
	}
	sq := awssqs.NewFromConfig(cfg, func(o *awssqs.Options) { o.BaseEndpoint = aws.String(endpoint) })
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return sq, s3c, nil
}

// exitcode N CMD [ARG...]: run CMD like exec and check that it exits with
// status N exactly (128+S when a signal S killed it); stdout and stderr are
// kept for the stdout and stderr commands.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N CMD [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			got = 128 + int(ws.Signal())
		}
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// pidgone [-timeout D] FILE: wait until the process whose pid FILE holds is
// gone (or a zombie): proves a whole process tree was stopped.
func cmdPidGone(ts *testscript.TestScript, neg bool, args []string) {
	timeout, args := timeoutOption(ts, args, 10*time.Second)
	if len(args) != 1 {
		ts.Fatalf("usage: pidgone [-timeout D] FILE")
	}
	pid := readPid(ts, args[0])
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		// The state follows the parenthesised command name.
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return
		}
	}
	ts.Fatalf("process %d still runs after %s", pid, timeout)
}

// killpid [-STOP|-CONT] FILE: SIGKILL (or freeze, or thaw) the process
// whose pid FILE holds (a task orphaned by a killed worker; a worker frozen
// past its lease).
func cmdKillPid(ts *testscript.TestScript, neg bool, args []string) {
	sig := syscall.SIGKILL
	if len(args) == 2 {
		switch args[0] {
		case "-STOP":
			sig, args = syscall.SIGSTOP, args[1:]
		case "-CONT":
			sig, args = syscall.SIGCONT, args[1:]
		}
	}
	if len(args) != 1 {
		ts.Fatalf("usage: killpid [-STOP|-CONT] FILE")
	}
	pid := readPid(ts, args[0])
	ts.Check(syscall.Kill(pid, sig))
	if sig == syscall.SIGSTOP {
		// A script that fails while the process is stopped must not
		// leave it stopped: it would never see the interrupt that ends
		// background commands, and the test would hang.
		ts.Defer(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	}
}

// readPid reads the pid a helper wrote to file, waiting briefly for the
// write that follows the file's creation.
func readPid(ts *testscript.TestScript, file string) int {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pid, err := strconv.Atoi(strings.TrimSpace(ts.ReadFile(file)))
		if err == nil {
			return pid
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s holds no pid: %v", file, err)
		}
	}
}

// loadenv FILE: set the variables of the `export NAME=value` lines in FILE
// (as `taskiq-go dev --env-file` writes them).
func cmdLoadEnv(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: loadenv FILE")
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(ts.ReadFile(args[0])), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			ts.Fatalf("%s: not an export line: %q", args[0], line)
		}
		ts.Setenv(k, strings.Trim(v, "'"))
		n++
	}
	if n == 0 {
		ts.Fatalf("%s holds no export line", args[0])
	}
}

// envsubst IN OUT: copy IN to OUT with $NAME and ${NAME} replaced by the
// script's environment variables (for config files that name the endpoint).
func cmdEnvSubst(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: envsubst IN OUT")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(os.Expand(ts.ReadFile(args[0]), ts.Getenv)), 0o644))
}

// jsonvar NAME KEY [K=V...]: set NAME to the string field KEY of the first
// JSON line of the last command's stdout whose fields K equal V, for ids a
// script cannot know ahead (an SQS message id).
func cmdJSONVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: jsonvar NAME KEY [K=V...]")
	}
	for _, line := range strings.Split(ts.ReadFile("stdout"), "\n") {
		var obj map[string]any
		if json.Unmarshal([]byte(line), &obj) != nil {
			continue
		}
		match := true
		for _, kv := range args[2:] {
			k, v, _ := strings.Cut(kv, "=")
			match = match && fmt.Sprint(obj[k]) == v
		}
		if s, ok := obj[args[1]].(string); ok && match {
			ts.Setenv(args[0], s)
			return
		}
	}
	ts.Fatalf("no JSON line of stdout has a string %q matching %q", args[1], args[2:])
}

// s3put KEY FILE: write FILE to KEY in the script's bucket, as a foreign or
// broken writer might.
func cmdS3Put(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: s3put KEY FILE")
	}
	_, s3c, err := clients(context.Background(), ts.Getenv("AWS_ENDPOINT_URL"), ts.Getenv("AWS_ACCESS_KEY_ID"), ts.Getenv("AWS_SECRET_ACCESS_KEY"))
	ts.Check(err)
	_, err = s3c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(ts.Getenv("TASKIQ_GO_BUCKET")), Key: aws.String(args[0]),
		Body: strings.NewReader(ts.ReadFile(args[1])),
	})
	ts.Check(err)
}

func scriptSQS(ts *testscript.TestScript) *awssqs.Client {
	sq, _, err := clients(context.Background(), ts.Getenv("AWS_ENDPOINT_URL"), ts.Getenv("AWS_ACCESS_KEY_ID"), ts.Getenv("AWS_SECRET_ACCESS_KEY"))
	ts.Check(err)
	return sq
}

// waitstate [-timeout D] ID STATE: poll until the task is in STATE.
func cmdWaitState(ts *testscript.TestScript, neg bool, args []string) {
	timeout, args := timeoutOption(ts, args, 30*time.Second)
	if len(args) != 2 {
		ts.Fatalf("usage: waitstate [-timeout D] ID STATE")
	}
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		_ = ts.Exec("taskiq-go", "poll", "--json", args[0])
		var st struct{ State string }
		if json.Unmarshal([]byte(ts.ReadFile("stdout")), &st) == nil {
			last = st.State
			if last == args[1] {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.Fatalf("task %s is %q after %s, not %q", args[0], last, timeout, args[1])
}

// waitfile [-timeout D] FILE: wait until FILE exists.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	timeout, args := timeoutOption(ts, args, 30*time.Second)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("%s did not appear within %s", args[0], timeout)
}

// sqssend QUEUE_URL BODY: send a raw message body, as a buggy or hostile
// producer might.
func cmdSQSSend(ts *testscript.TestScript, neg bool, args []string) {
	_, err := scriptSQS(ts).SendMessage(context.Background(), &awssqs.SendMessageInput{
		QueueUrl: aws.String(args[0]), MessageBody: aws.String(args[1]),
	})
	ts.Check(err)
}

// sqscount [-timeout D] QUEUE_URL N: wait (20 s by default) until the
// queue holds N messages (visible plus in flight).
func cmdSQSCount(ts *testscript.TestScript, neg bool, args []string) {
	timeout, args := timeoutOption(ts, args, 20*time.Second)
	want, _ := strconv.Atoi(args[1])
	sq := scriptSQS(ts)
	got := -1
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := sq.GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(args[0]),
			AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"},
		})
		ts.Check(err)
		a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
		b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
		got = a + b
		if got == want {
			return
		}
	}
	ts.Fatalf("queue holds %d messages, want %d", got, want)
}

// startorder HIGH_IDS_FILE LOWS_JSONL: every task named in HIGH_IDS_FILE
// started before every task that LOWS_JSONL (poll --json output taken after
// the high tasks were submitted) shows as still queued.
func cmdStartOrder(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: startorder HIGH_IDS_FILE LOWS_JSONL")
	}
	started := func(id string) time.Time {
		ts.Check(ts.Exec("taskiq-go", "result", "--json", id))
		var r struct {
			StartedAt time.Time `json:"started_at"`
		}
		ts.Check(json.Unmarshal([]byte(ts.ReadFile("stdout")), &r))
		return r.StartedAt
	}
	var lastHigh time.Time
	highs := strings.Fields(ts.ReadFile(args[0]))
	for _, id := range highs {
		if t := started(id); t.After(lastHigh) {
			lastHigh = t
		}
	}
	waiting := 0
	for _, line := range strings.Split(strings.TrimSpace(ts.ReadFile(args[1])), "\n") {
		var st struct{ ID, State string }
		ts.Check(json.Unmarshal([]byte(line), &st))
		if st.State != "queued" {
			continue
		}
		waiting++
		if t := started(st.ID); !t.After(lastHigh) {
			ts.Fatalf("low task %s started at %s, before the last high task (%s)", st.ID, t.Format(time.RFC3339Nano), lastHigh.Format(time.RFC3339Nano))
		}
	}
	if waiting == 0 {
		ts.Fatalf("no low task was still queued: the test proves nothing")
	}
	ts.Logf("%d high tasks all started before the %d low tasks still queued", len(highs), waiting)
}

// freeport VAR: set VAR to a free loopback address (127.0.0.1:PORT).
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	addr := ln.Addr().String()
	ln.Close()
	ts.Setenv(args[0], addr)
}

// httpget URL: GET URL (waiting up to 10 s for the server to listen) and
// write the status line and body to stdout.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err = http.Get(args[0]); err == nil {
			break
		}
	}
	ts.Check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%d\n%s", resp.StatusCode, body)
}

// waitlines [-timeout D] FILE N [REGEX]: wait until FILE has at least N
// lines (matching REGEX when given).
func cmdWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	timeout, args := timeoutOption(ts, args, 30*time.Second)
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: waitlines [-timeout D] FILE N [REGEX]")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	re := regexp.MustCompile("")
	if len(args) == 3 {
		re, err = regexp.Compile(args[2])
		ts.Check(err)
	}
	got := 0
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		data, _ := os.ReadFile(ts.MkAbs(args[0]))
		got = 0
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" && re.MatchString(l) {
				got++
			}
		}
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s has %d lines matching %q after %s, want %d", args[0], got, re, timeout, want)
		}
	}
}

// waitgone [-timeout D] FILE: wait until FILE does not exist.
func cmdWaitGone(ts *testscript.TestScript, neg bool, args []string) {
	timeout, args := timeoutOption(ts, args, 30*time.Second)
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitgone [-timeout D] FILE")
	}
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(ts.MkAbs(args[0])); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s still exists after %s", args[0], timeout)
		}
	}
}

// now VAR [OFFSET]: set VAR to the time now plus OFFSET, in Unix
// milliseconds (for runsummary -since).
func cmdNow(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: now VAR [OFFSET]")
	}
	t := time.Now()
	if len(args) == 2 {
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		t = t.Add(d)
	}
	ts.Setenv(args[0], strconv.FormatInt(t.UnixMilli(), 10))
}

// runsummary [-since UNIXMS] FILE: print, from runlog's FILE, how many tags
// ran, how many copies started and ended, how many tags ran exactly once,
// ran more than once, ended more than once, never ended, and overlapped
// (two copies at once), then each tag that ran more than once ("reran TAG
// N"); with -since, also how many copies started at or after that time.
func cmdRunSummary(ts *testscript.TestScript, neg bool, args []string) {
	since := int64(-1)
	if len(args) == 3 && args[0] == "-since" {
		n, err := strconv.ParseInt(args[1], 10, 64)
		ts.Check(err)
		since, args = n, args[2:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: runsummary [-since UNIXMS] FILE")
	}
	startedSince := 0
	starts, ends, overlaps := map[string]int{}, map[string]int{}, 0
	var nstart, nend int
	for _, l := range strings.Split(ts.ReadFile(args[0]), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		switch f[0] {
		case "start":
			starts[f[1]]++
			nstart++
			if len(f) > 3 {
				if t, _ := strconv.ParseInt(f[3], 10, 64); since >= 0 && t >= since {
					startedSince++
				}
			}
		case "end":
			ends[f[1]]++
			nend++
		case "overlap":
			overlaps++
		}
	}
	var once, reran, endedTwice, neverEnded int
	var tags []string
	for tag, n := range starts {
		tags = append(tags, tag)
		if n == 1 {
			once++
		} else {
			reran++
		}
		if ends[tag] > 1 {
			endedTwice++
		}
		if ends[tag] == 0 {
			neverEnded++
		}
	}
	sort.Strings(tags)
	out := fmt.Sprintf("tags %d\nstarts %d\nends %d\nran once %d\nran again %d\nended twice %d\nnever ended %d\noverlaps %d\n",
		len(starts), nstart, nend, once, reran, endedTwice, neverEnded, overlaps)
	if since >= 0 {
		out += fmt.Sprintf("started since %d\n", startedSince)
	}
	for _, tag := range tags {
		if starts[tag] > 1 {
			out += fmt.Sprintf("reran %s %d\n", tag, starts[tag])
		}
	}
	fmt.Fprint(ts.Stdout(), out)
}

// timeoutOption reads a leading "-timeout D" of a script command's
// arguments, returning def when there is none.
func timeoutOption(ts *testscript.TestScript, args []string, def time.Duration) (time.Duration, []string) {
	if len(args) > 2 && args[0] == "-timeout" {
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		return d, args[2:]
	}
	return def, args
}

func mainTree() {
	write := func(name string, pid int) { os.WriteFile(name, []byte(strconv.Itoa(pid)), 0o644) }
	switch {
	case len(os.Args) == 2 && (os.Args[1] == "exit" || os.Args[1] == "sleep"):
	case len(os.Args) == 3 && os.Args[1] == "child":
		// Written whole, then renamed: the parent waits for the name and
		// must not find it empty.
		write(os.Args[2]+".w", os.Getpid())
		os.Rename(os.Args[2]+".w", os.Args[2])
		time.Sleep(5 * time.Minute)
		return
	default:
		fmt.Fprintln(os.Stderr, "usage: tree exit|sleep")
		os.Exit(2)
	}
	for _, c := range []struct {
		file   string
		setsid bool
	}{{"bg.pid", false}, {"setsid.pid", true}} {
		child := exec.Command("tree", "child", c.file+".tmp")
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: c.setsid}
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for _, err := os.Stat(c.file + ".tmp"); err != nil; _, err = os.Stat(c.file + ".tmp") {
			time.Sleep(5 * time.Millisecond)
		}
		os.Rename(c.file+".tmp", c.file)
	}
	write("leader.pid", os.Getpid())
	if os.Args[1] == "sleep" {
		time.Sleep(5 * time.Minute)
	}
}

func mainWithPid() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: withpid FILE CMD ARGS...")
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[2])
	if err == nil {
		err = os.WriteFile(os.Args[1], []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	if err == nil {
		err = syscall.Exec(path, os.Args[2:], os.Environ())
	}
	fmt.Fprintln(os.Stderr, "withpid:", err)
	os.Exit(2)
}

// sigpid STOP|CONT|KILL FILE: send the signal to the process whose pid
// FILE holds (a worker started with withpid). A process stopped here and
// still stopped when the script ends, passed or failed, is killed: it
// would never see the interrupt that ends background commands, and the
// test binary would hang on it until its timeout.
func cmdSigPid(ts *testscript.TestScript, neg bool, args []string) {
	sigs := map[string]syscall.Signal{"STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "KILL": syscall.SIGKILL}
	if neg || len(args) != 2 || sigs[args[0]] == 0 {
		ts.Fatalf("usage: sigpid STOP|CONT|KILL FILE")
	}
	pid := readPid(ts, args[1])
	ts.Check(syscall.Kill(pid, sigs[args[0]]))
	if sigs[args[0]] == syscall.SIGSTOP {
		ts.Defer(func() {
			if processStopped(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
}

// processStopped reports whether pid is a live process stopped by a
// signal (state T in /proc/PID/stat), so that a cleanup kills only the
// process it stopped, not one that has since taken its pid.
func processStopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and
	// may hold spaces.
	st := string(b)
	f := strings.Fields(st[strings.LastIndexByte(st, ')')+1:])
	return len(f) > 0 && (f[0] == "T" || f[0] == "t")
}
