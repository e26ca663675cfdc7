// Package devserver owns the embedded SQS- and S3-compatible endpoint that
// `taskiq-go dev` serves on localhost and that tests start in-process.
//
// One loopback port carries both services: requests for the SQS API (JSON
// protocol, recognised by their X-Amz-Target header, or the old form-encoded
// query protocol) go to the goaws emulator, everything else goes to the
// gofakes3 emulator with path-style addressing. The SQS side keeps its queues
// in memory only; the S3 side keeps objects in memory, or in a bolt file under
// Options.DataDir so that results survive a restart.
//
// goaws keeps its state in package globals, so only one Server can run in a
// process at a time: Start returns ErrAlreadyRunning while another Server is
// open. A Server that has been closed can be followed by a new one; its queues
// start empty. Tests that need several independent endpoints at once run
// `taskiq-go dev` as separate processes.
//
// The package also papers over the goaws gaps that the worker would trip on
// (see sqs.go): batch sends, batch visibility changes, receive counts, queue
// depth attributes and the SDK's typed errors.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/models"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// Defaults applied by Start to zero-valued Options fields.
const (
	DefaultAddr            = "127.0.0.1:0"
	DefaultRegion          = "us-east-1"
	DefaultAccountID       = "000000000000"
	DefaultBucket          = "taskiq"
	DefaultQueue           = "taskiq"
	DefaultDeadLetterQueue = "taskiq-dlq"
	DefaultMaxReceiveCount = 10
)

// Queue attribute defaults for queues created here or through the API. They
// follow AWS's own defaults (1 MiB is the message size limit since 2025).
const (
	defaultVisibilityTimeout  = 30
	defaultMaximumMessageSize = 1 << 20
	defaultRetentionPeriod    = 345600
)

// tickInterval is how often goaws's periodic task returns expired in-flight
// messages to their queue. goaws itself uses one second; a shorter tick makes
// a lease that expires, or a test that waits for one, see it within ~100 ms.
const tickInterval = 100 * time.Millisecond

// boltFile is the name of the S3 store inside Options.DataDir.
const boltFile = "s3.bolt"

// boltOpenTimeout bounds the wait for the bolt file lock, so that a second
// process pointed at the same DataDir fails fast instead of hanging.
const boltOpenTimeout = 2 * time.Second

// ErrAlreadyRunning is returned by Start while another Server of this process
// is open: goaws keeps its queues in package globals, so two endpoints would
// share (and fight over) one set of queues.
var ErrAlreadyRunning = errors.New("devserver: another endpoint is already running in this process (goaws keeps SQS state in package globals)")

// Options configures the endpoint.
type Options struct {
	// Addr is the listen address; port 0 picks a free one.
	// Default "127.0.0.1:0".
	Addr string
	// DataDir, when set, keeps S3 objects in a bolt file in this directory so
	// that they survive restarts; "" keeps them in memory. Queues are always
	// in memory.
	DataDir string
	// Region is reported in ARNs and by Region(). Default "us-east-1".
	Region string
	// AccountID is the account part of queue URLs and ARNs.
	// Default "000000000000".
	AccountID string
	// Bucket is created at start (kept if it already exists in DataDir).
	// Default "taskiq".
	Bucket string
	// Queues are the SQS queue names to create. Default {"taskiq"}.
	Queues []string
	// DeadLetterQueue is the DLQ name; every queue in Queues gets a
	// RedrivePolicy to it. Default "taskiq-dlq".
	DeadLetterQueue string
	// MaxReceiveCount is the redrive policy's maxReceiveCount. Default 10.
	MaxReceiveCount int
	// Log receives the emulators' logs. goaws logs through logrus and
	// gofakes3 through its own interface; both are routed here (their chatter
	// at debug level), never to stdout. The zero Logger discards everything.
	Log zerolog.Logger
}

// Server is a running endpoint. Its methods are safe for concurrent use.
type Server struct {
	opts     Options
	host     string // host part of URLs, e.g. "127.0.0.1" or "[::1]"
	port     string
	endpoint string

	httpSrv *http.Server
	served  chan struct{} // closed when Serve returns
	sqs     *sqsHandler
	s3      http.Handler
	db      *bolt.DB // nil when S3 is in memory

	quit     chan bool     // stops goaws's periodic task
	tickDone chan struct{} // closed when the periodic task has returned

	// inflight tracks handlers still running so that Close can wait for them
	// before it closes the bolt file and lets a new Server reset goaws state.
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	mounts   map[string]http.Handler // see Mount

	closeOnce sync.Once
	closeErr  error
}

// running guards goaws's package globals: at most one open Server.
var running struct {
	sync.Mutex
	on bool
}

// Start binds the listener, creates the bucket and the queues (DLQ first), and
// serves in the background. It returns once requests can be made.
func Start(opts Options) (*Server, error) {
	opts = withDefaults(opts)

	running.Lock()
	if running.on {
		running.Unlock()
		return nil, ErrAlreadyRunning
	}
	running.on = true
	running.Unlock()

	s, err := start(opts)
	if err != nil {
		running.Lock()
		running.on = false
		running.Unlock()
		return nil, err
	}
	return s, nil
}

func withDefaults(opts Options) Options {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.AccountID == "" {
		opts.AccountID = DefaultAccountID
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if len(opts.Queues) == 0 {
		opts.Queues = []string{DefaultQueue}
	} else {
		opts.Queues = append([]string(nil), opts.Queues...)
	}
	if opts.DeadLetterQueue == "" {
		opts.DeadLetterQueue = DefaultDeadLetterQueue
	}
	if opts.MaxReceiveCount <= 0 {
		opts.MaxReceiveCount = DefaultMaxReceiveCount
	}
	return opts
}

func start(opts Options) (s *Server, err error) {
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("devserver: listen on %s: %w", opts.Addr, err)
	}
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()
	host, port, err := urlHostPort(ln.Addr())
	if err != nil {
		return nil, err
	}

	s = &Server{
		opts:     opts,
		host:     host,
		port:     port,
		endpoint: "http://" + net.JoinHostPort(trimBrackets(host), port),
		served:   make(chan struct{}),
		quit:     make(chan bool),
		tickDone: make(chan struct{}),
	}

	s.s3, s.db, err = newS3(opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && s.db != nil {
			_ = s.db.Close()
		}
	}()

	// goaws builds queue URLs as http://Host:Port/AccountID/Name, or with a
	// "Region." prefix on the host when Region is set, which would give a
	// host name that does not resolve. So Region stays empty here and the
	// SQS wrapper puts the region into the ARNs itself.
	configureGoaws(host, port, opts)
	s.sqs = newSQSHandler(goawsHandler(), opts.Region, opts.AccountID)
	if err := s.sqs.createQueues(opts); err != nil {
		return nil, err
	}

	go func() {
		defer close(s.tickDone)
		gosqs.PeriodicTasks(tickInterval, s.quit)
	}()

	s.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(s.route),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(warnWriter{opts.Log}, "", 0),
	}
	go func() {
		defer close(s.served)
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error().Err(err).Msg("devserver: serve stopped")
		}
	}()
	opts.Log.Debug().Str("endpoint", s.endpoint).Msg("devserver: started")
	return s, nil
}

// urlHostPort turns the bound address into the host and port used in URLs:
// a wildcard bind is reached through the IPv4 loopback.
func urlHostPort(a net.Addr) (host, port string, err error) {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "", "", fmt.Errorf("devserver: unexpected listener address %v", a)
	}
	port = strconv.Itoa(tcp.Port)
	switch {
	case tcp.IP == nil || tcp.IP.IsUnspecified():
		host = "127.0.0.1"
	case tcp.IP.To4() != nil:
		host = tcp.IP.String()
	default:
		host = "[" + tcp.IP.String() + "]"
	}
	return host, port, nil
}

func trimBrackets(host string) string {
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	return host
}

// configureGoaws resets goaws's globals for this Server: queues left by a
// previous (closed) Server are dropped, and URLs point at our listener.
func configureGoaws(host, port string, opts Options) {
	routeLogrus(opts.Log)
	models.ResetResources()
	models.LogMessages = false
	models.CurrentEnvironment = models.Environment{
		Host:      host,
		Port:      port,
		AccountID: opts.AccountID,
		QueueAttributeDefaults: models.EnvQueueAttributes{
			VisibilityTimeout:      defaultVisibilityTimeout,
			MaximumMessageSize:     defaultMaximumMessageSize,
			MessageRetentionPeriod: defaultRetentionPeriod,
		},
	}
}

// newS3 builds the gofakes3 handler over an in-memory or bolt backend and
// makes sure the bucket exists.
func newS3(opts Options) (http.Handler, *bolt.DB, error) {
	var backend gofakes3.Backend
	var db *bolt.DB
	if opts.DataDir == "" {
		backend = s3mem.New()
	} else {
		if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("devserver: create data dir: %w", err)
		}
		path := filepath.Join(opts.DataDir, boltFile)
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: boltOpenTimeout})
		if err != nil {
			if errors.Is(err, bolt.ErrTimeout) {
				return nil, nil, fmt.Errorf("devserver: open %s: in use by another process: %w", path, err)
			}
			return nil, nil, fmt.Errorf("devserver: open %s: %w", path, err)
		}
		backend = s3bolt.New(db)
	}
	if err := backend.CreateBucket(opts.Bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
		if db != nil {
			_ = db.Close()
		}
		return nil, nil, fmt.Errorf("devserver: create bucket %q: %w", opts.Bucket, err)
	}
	faker := gofakes3.New(backend,
		gofakes3.WithLogger(fakes3Log{opts.Log}),
		// Clients address buckets by path; a Host-based bucket guess would
		// misread "127.0.0.1" as a bucket name.
		gofakes3.WithHostBucket(false),
	)
	return withUnsupportedS3(faker.Server()), db, nil
}

// route sends one request to the SQS or the S3 emulator.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "endpoint closing", http.StatusServiceUnavailable)
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	if h := s.mounted(r.URL.Path); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	if isSQS(r) {
		s.sqs.ServeHTTP(w, r)
		return
	}
	s.s3.ServeHTTP(w, r)
}

// Mount serves h for every path under prefix (which ends in "/") instead
// of S3: `dev` serves the dashboard at /ui/ this way. A bucket of that name
// is hidden from path-style requests.
func (s *Server) Mount(prefix string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mounts == nil {
		s.mounts = map[string]http.Handler{}
	}
	s.mounts[prefix] = h
}

func (s *Server) mounted(path string) http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, h := range s.mounts {
		if strings.HasPrefix(path, p) {
			return h
		}
		if path+"/" == p {
			return http.RedirectHandler(p, http.StatusMovedPermanently)
		}
	}
	return nil
}

// Endpoint is the base URL for both services, e.g. "http://127.0.0.1:4566".
func (s *Server) Endpoint() string { return s.endpoint }

// Region is the region reported in ARNs; clients should sign for it.
func (s *Server) Region() string { return s.opts.Region }

// QueueURL is the URL the SQS API returns for the queue name (whether or not
// the queue exists).
func (s *Server) QueueURL(name string) string {
	return "http://" + s.host + ":" + s.port + "/" + s.opts.AccountID + "/" + name
}

// Bucket is the bucket created at start.
func (s *Server) Bucket() string { return s.opts.Bucket }

// Close stops serving (open long polls are cut), stops goaws's periodic task,
// waits for running handlers and closes the bolt file. Afterwards a new
// Server may be started in this process. Calling Close again returns the
// first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()

		// Close, not Shutdown: a long poll would hold a graceful shutdown for
		// up to 20 s, and closing the connection cancels its context.
		if err := s.httpSrv.Close(); err != nil {
			s.closeErr = fmt.Errorf("devserver: close http server: %w", err)
		}
		<-s.served
		s.waitHandlers()

		close(s.quit)
		<-s.tickDone

		if s.db != nil {
			if err := s.db.Close(); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("devserver: close bolt file: %w", err)
			}
		}

		running.Lock()
		running.on = false
		running.Unlock()
	})
	return s.closeErr
}

// waitHandlers waits for handlers that were running when the server closed.
// goaws notices a cancelled long poll within 100 ms; the bound only guards
// against a handler that ignores its context.
func (s *Server) waitHandlers() {
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
		s.opts.Log.Warn().Msg("devserver: handlers still running after close")
	}
}
