// Package devserver owns the embedded SQS- and S3-compatible endpoint that
// `taskiq-go dev` serves on localhost and that tests start in-process.
//
// One loopback port carries both services: requests for the SQS JSON
// protocol (recognised by their X-Amz-Target header) go to the SQS side,
// everything else to the S3 side with path-style addressing. Both are small
// implementations of their own (sqs.go, s3.go) over one bolt file and a
// folder of object bodies, kept in Options.DataDir so that queues, messages
// and objects survive a restart, or in a private temporary directory removed
// by Close.
//
// Every request must be signed (SigV4) with the endpoint's credentials,
// generated per data dir; requests a browser could send across sites are
// refused (any Origin header, form posts), and the listener is loopback-only
// unless Options.AllowRemote says otherwise. A Server holds no package-level
// state: a process can run as many as it likes.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Defaults applied by New to zero-valued Options fields.
const (
	DefaultAddr = "127.0.0.1:0"
	// DefaultRegion is one where AWS CLI v1 honours AWS_ENDPOINT_URL_SQS:
	// in us-east-1 and 25 other regions it puts a legacy SQS hostname in
	// its place unless --endpoint-url is on the command line, so that the
	// env file alone would send `aws sqs` to AWS.
	DefaultRegion          = "eu-central-2"
	DefaultAccountID       = "000000000000"
	DefaultBucket          = "taskiq"
	DefaultQueue           = "taskiq"
	DefaultDeadLetterQueue = "taskiq-dlq"
	DefaultMaxReceiveCount = 10
)

// ErrNotLoopback is returned by New for a listen address that is not a
// loopback one while Options.AllowRemote is false.
var ErrNotLoopback = errors.New("devserver: listen address is not a loopback address")

// Options configures the endpoint.
type Options struct {
	// Addr is the listen address; port 0 picks a free one. It must be a
	// loopback address unless AllowRemote is set. Default "127.0.0.1:0".
	Addr string
	// AllowRemote allows a non-loopback Addr; the endpoint then logs one
	// warning, since anyone who can reach the port and has the credentials
	// can run commands on the workers.
	AllowRemote bool
	// DataDir keeps queues, messages, objects and the credentials in this
	// directory across restarts; "" keeps them in a temporary directory
	// removed by Close (or, after a kill, by the next New without DataDir).
	DataDir string
	// Region is reported in ARNs and by Region(). Default DefaultRegion.
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
	// Log receives the endpoint's logs (refused requests at debug level).
	// The zero Logger discards everything.
	Log zerolog.Logger
}

// Server is one endpoint. Its methods are safe for concurrent use.
type Server struct {
	opts  Options
	state *stateDir
	creds Credentials
	// signers check request signatures (see signers).
	signers signers
	sqs     *sqsService
	s3      *s3Service

	mu       sync.Mutex
	ln       net.Listener
	endpoint string
	httpSrv  *http.Server
	served   chan struct{} // closed when Serve returns
	closed   bool
	inflight sync.WaitGroup
	mounts   map[string]http.Handler // see Mount

	closeOnce sync.Once
	closeErr  error
}

// New checks opts, opens the state (DataDir or a temporary directory) and
// creates the bucket and the queues, DLQ first. It does not listen yet:
// Start does.
func New(opts Options) (*Server, error) {
	opts = withDefaults(opts)
	if err := checkAddr(opts.Addr, opts.AllowRemote); err != nil {
		return nil, err
	}
	sd, err := openState(opts.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, state: sd, served: make(chan struct{}), signers: newSigners()}
	if err := s.init(); err != nil {
		_ = sd.close()
		return nil, err
	}
	return s, nil
}

func (s *Server) init() error {
	var err error
	if s.creds, err = s.state.credentials(); err != nil {
		return err
	}
	if s.sqs, err = newSQSService(s.state.db, s.opts.Region, s.opts.AccountID, time.Now); err != nil {
		return err
	}
	s.s3 = newS3Service(s.state, s.opts.Region, time.Now)
	if _, err := s.s3.createBucket(s.opts.Bucket); err != nil {
		return fmt.Errorf("devserver: create bucket %q: %w", s.opts.Bucket, err)
	}
	return s.createQueues()
}

// Start binds the listener and serves in the background; it returns once
// requests can be made.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("devserver: listen on %s: %w", s.opts.Addr, err)
	}
	host, port, err := urlHostPort(ln.Addr())
	if err != nil {
		_ = ln.Close()
		return err
	}
	tcp, _ := ln.Addr().(*net.TCPAddr)
	if tcp != nil && !tcp.IP.IsLoopback() {
		s.opts.Log.Warn().Str("addr", ln.Addr().String()).
			Msg("devserver: listening beyond loopback: anyone who reaches this port with the credentials can queue commands")
	}
	s.mu.Lock()
	s.ln = ln
	s.endpoint = "http://" + net.JoinHostPort(host, port)
	s.sqs.baseURL = s.endpoint
	s.httpSrv = &http.Server{
		Handler:           http.HandlerFunc(s.route),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(warnWriter{s.opts.Log}, "", 0),
	}
	srv := s.httpSrv
	s.mu.Unlock()
	go func() {
		defer close(s.served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opts.Log.Error().Err(err).Msg("devserver: serve stopped")
		}
	}()
	s.opts.Log.Debug().Str("endpoint", s.endpoint).Msg("devserver: started")
	return nil
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

// checkAddr refuses a malformed address, and a non-loopback one unless
// allowRemote: "localhost" and loopback IPs pass; an empty host (every
// interface) and any other name do not.
func checkAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("devserver: listen address %q: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("devserver: listen address %q: bad port", addr)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
}

// urlHostPort turns the bound address into the host and port used in URLs:
// a wildcard bind is reached through the IPv4 loopback.
func urlHostPort(a net.Addr) (host, port string, err error) {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "", "", fmt.Errorf("devserver: unexpected listener address %v", a)
	}
	port = strconv.Itoa(tcp.Port)
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		return "127.0.0.1", port, nil
	}
	return tcp.IP.String(), port, nil
}

// createQueues creates the DLQ, then each queue with a redrive policy to it;
// queues kept in DataDir keep their messages and get the policy again.
func (s *Server) createQueues() error {
	create := func(name string, attrs map[string]string) error {
		body := fmt.Sprintf(`{"QueueName":%q}`, name)
		if res := s.sqs.createQueue(context.Background(), []byte(body)); res.err != nil {
			return fmt.Errorf("devserver: create queue %q: %s: %s", name, res.err.Shape, res.err.Message)
		}
		if len(attrs) == 0 {
			return nil
		}
		set := fmt.Sprintf(`{"QueueUrl":%q,"Attributes":{"RedrivePolicy":%q}}`, name, attrs["RedrivePolicy"])
		if res := s.sqs.setQueueAttributes(context.Background(), []byte(set)); res.err != nil {
			return fmt.Errorf("devserver: set redrive policy of %q: %s: %s", name, res.err.Shape, res.err.Message)
		}
		return nil
	}
	if err := create(s.opts.DeadLetterQueue, nil); err != nil {
		return err
	}
	policy := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`,
		s.sqs.queueArn(s.opts.DeadLetterQueue), s.opts.MaxReceiveCount)
	for _, name := range s.opts.Queues {
		if name == s.opts.DeadLetterQueue {
			continue
		}
		if err := create(name, map[string]string{"RedrivePolicy": policy}); err != nil {
			return err
		}
	}
	return nil
}

// refuse answers a request that is not let in.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.opts.Log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Str("code", code).Str("reason", msg).
		Msg("devserver: request refused")
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), sqsTargetPrefix) {
		(&sqsError{code, code, status, msg}).result().write(w)
		return
	}
	writeS3Error(w, r, &s3Error{status, code, msg})
}

// route checks and authenticates one request, then hands it to SQS or S3.
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

	// The dashboard (dev's /ui/) does its own checks: loopback host names
	// only, no actions, CSRF tokens and same-origin for any it had.
	if h := s.mounted(r.URL.Path); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	// A browser adds Origin to every cross-site request it sends, and a
	// form post is the one it sends without asking the server first; no
	// SDK does either.
	if r.Header.Get("Origin") != "" {
		s.refuse(w, r, http.StatusForbidden, "AccessDenied", "requests from browsers (with an Origin header) are refused")
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data" || mt == "text/plain" && r.Method == http.MethodPost {
		s.refuse(w, r, http.StatusForbidden, "AccessDenied", "form posts (the SQS query protocol, S3 POST uploads) are refused; use the JSON protocol")
		return
	}
	if r.Method == http.MethodGet && r.URL.Query().Has("Action") {
		s.refuse(w, r, http.StatusForbidden, "AccessDenied", "the SQS query protocol is refused; use the JSON protocol")
		return
	}

	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), sqsTargetPrefix) {
		s.serveSQS(w, r)
		return
	}
	s.serveS3(w, r)
}

func (s *Server) serveSQS(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != jsonContentType {
		s.refuse(w, r, http.StatusBadRequest, "InvalidParameterValue", "the SQS API is served in the JSON protocol ("+jsonContentType+") only")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSQSBody+1))
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, "InvalidParameterValue", "cannot read the request body")
		return
	}
	if len(body) > maxSQSBody {
		s.refuse(w, r, http.StatusBadRequest, "BatchRequestTooLong", "request body too large")
		return
	}
	if err := s.signers.verify(r, s.creds, "sqs", sha256Hex(body), time.Now()); err != nil {
		ae := err.(*authError)
		s.refuse(w, r, http.StatusForbidden, ae.code, ae.msg)
		return
	}
	s.sqs.ServeHTTP(w, r, body)
}

func (s *Server) serveS3(w http.ResponseWriter, r *http.Request) {
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = "UNSIGNED-PAYLOAD" // only to build the signature; a real one is refused below
		if r.Header.Get("Authorization") != "" {
			s.refuse(w, r, http.StatusBadRequest, "InvalidRequest", "missing x-amz-content-sha256")
			return
		}
	}
	if err := s.signers.verify(r, s.creds, "s3", payload, time.Now()); err != nil {
		ae := err.(*authError)
		s.refuse(w, r, http.StatusForbidden, ae.code, ae.msg)
		return
	}
	var body io.Reader = r.Body
	switch {
	case payload == streamingSigned || payload == streamingSignedTrailer:
		// verify passed, so the header parses and its signature seeds the chain.
		a, _ := parseAuthorization(r.Header.Get("Authorization"))
		body = newChunkedReader(r.Body, newChunkChain(s.creds.SecretAccessKey, a, r.Header.Get("X-Amz-Date")), payload == streamingSignedTrailer)
	case payload == streamingUnsignedTrailer:
		body = newChunkedReader(r.Body, nil, false)
	case payload == "UNSIGNED-PAYLOAD":
	case len(payload) == 64:
		body = &hashingReader{r: r.Body, h: newSHA256(), want: strings.ToLower(payload)}
	default:
		s.refuse(w, r, http.StatusBadRequest, "InvalidArgument", "x-amz-content-sha256 must be a SHA-256, UNSIGNED-PAYLOAD, "+streamingSigned+"[-TRAILER] or "+streamingUnsignedTrailer)
		return
	}
	s.s3.ServeHTTP(w, r, body)
}

// Endpoint is the base URL for both services, e.g. "http://127.0.0.1:4566";
// "" before Start.
func (s *Server) Endpoint() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoint
}

// Addr is the address the endpoint listens on; nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// StateDir is the directory the endpoint keeps its state in: Options.DataDir,
// or the temporary directory Close removes. Files a caller puts there share
// its lifetime.
func (s *Server) StateDir() string { return s.state.path }

// Credentials are the access key pair requests must be signed with.
func (s *Server) Credentials() Credentials { return s.creds }

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

// Region is the region reported in ARNs; clients should sign for it.
func (s *Server) Region() string { return s.opts.Region }

// QueueURL is the URL the SQS API returns for the queue name (whether or not
// the queue exists).
func (s *Server) QueueURL(name string) string {
	return s.Endpoint() + "/" + s.opts.AccountID + "/" + name
}

// Bucket is the bucket created at start.
func (s *Server) Bucket() string { return s.opts.Bucket }

// Close stops serving (open long polls are cut), waits for running handlers
// and closes the state (removing it when it is temporary). Calling Close
// again returns the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		srv := s.httpSrv
		s.mu.Unlock()
		if srv != nil {
			// Close, not Shutdown: a long poll would hold a graceful
			// shutdown for up to 20 s; closing the connection cancels its
			// context.
			if err := srv.Close(); err != nil {
				s.closeErr = fmt.Errorf("devserver: close http server: %w", err)
			}
			<-s.served
		}
		s.waitHandlers()
		if err := s.state.close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// waitHandlers waits for handlers that were running when the server closed;
// the bound only guards against one that ignores its context.
func (s *Server) waitHandlers() {
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.opts.Log.Warn().Msg("devserver: handlers still running after close")
	}
}
