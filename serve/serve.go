// Package serve is the co-process protocol of `taskiq-go serve --stdio`: one
// JSON request a line in, one JSON response a line out, requests handled
// concurrently (up to a limit) until the input ends. A long-lived caller
// (the Dagster integration) pays one process start instead of one per call.
//
// A request is {"id":ID,"op":OP,"args":{...}} with OP one of submit, poll,
// wait, cancel, result, version and args the fields of the command's flags; the
// response is {"id":ID,"ok":VALUE} with VALUE what the command prints with
// --json, or {"id":ID,"error":{"code":N,"message":"..."}} with N the exit
// code the command would have ended with. Responses come in the order
// requests finish, not the order they came in: callers match them by id.
//
// The package knows nothing of flags, settings or AWS: it calls an Ops.
package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// Ops are the operations behind the requests: what the submit, poll,
// cancel and result commands do, with options in and values out. Each value
// returned is encoded as the response's "ok".
type Ops interface {
	// Submit records and queues tasks; it returns one value per task.
	Submit(ctx context.Context, tasks []*plan.Task) (any, error)
	// Poll reports the states of the given tasks, or of every task of group.
	Poll(ctx context.Context, ids []string, group string) ([]plan.Status, error)
	// Watch starts a wait on the given tasks, or on every task of group
	// as it is now.
	Watch(ctx context.Context, ids []string, group string) (Watcher, error)
	// Cancel asks for the given tasks, or every task of group, to stop.
	Cancel(ctx context.Context, ids []string, group, reason string) (any, error)
	// Result returns a finished task's result record.
	Result(ctx context.Context, id string) (*plan.Result, error)
}

// Watcher follows a fixed set of tasks through a wait, as `poll --wait`
// does: a round reads only what a wait must (never a task seen ended
// again), and the full read is for the answer of a wait that ends first.
type Watcher interface {
	// Round is one round of the wait; a running task may show without its
	// worker.
	Round(ctx context.Context) ([]plan.Status, error)
	// Full reads the tasks not seen ended in full.
	Full(ctx context.Context) ([]plan.Status, error)
}

// DefaultLimit is how many requests are handled at once when Server.Limit
// is not set.
const DefaultLimit = 32

// MaxLineBytes bounds one request line; a submit batch of large tasks fits.
const MaxLineBytes = 64 << 20

// Server answers requests with its Ops.
type Server struct {
	Ops Ops
	// Code maps an error to the exit code the command would end with.
	Code func(error) int
	// Message is the one-line text of an error, as the command prints it.
	Message func(error) string
	// Version is the answer to the version op: what `version --json`
	// prints, so that a caller checks the binary it talks to without
	// starting another process.
	Version any
	// Limit bounds the requests in flight; 0 means DefaultLimit. Reading
	// stops while the limit is reached, so a caller that floods the input
	// is slowed, not buffered without bound.
	Limit int
}

// Response is one line of output.
type Response struct {
	ID    json.RawMessage `json:"id"`
	OK    any             `json:"ok,omitempty"`
	Error *Error          `json:"error,omitempty"`
}

// Error is the error of a failed request.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Serve reads requests from r until it ends and writes responses to w. It
// returns once every request read has been answered; the error is that of
// reading r or writing w. Cancelling ctx interrupts requests in flight (a
// wait, a slow call), which then answer with an error.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	limit := s.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	out := &writer{w: bufio.NewWriter(w)}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	defer wg.Wait()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, tooLong, rerr := readLine(br)
		if tooLong {
			out.send(Response{ID: json.RawMessage("null"), Error: &Error{Code: s.code(&MalformedError{}), Message: fmt.Sprintf("request line longer than %d bytes", MaxLineBytes)}})
		} else if len(bytes.TrimSpace(line)) > 0 {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				out.send(s.handle(ctx, line))
			}()
		}
		if rerr != nil {
			wg.Wait()
			if err := out.error(); err != nil {
				return err
			}
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return fmt.Errorf("read requests: %w", rerr)
		}
	}
}

// readLine reads up to a newline; a line over MaxLineBytes is skipped to
// its end and reported too long.
func readLine(br *bufio.Reader) ([]byte, bool, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineBytes {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			return nil, true, err
		}
		buf = append(buf, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, false, err
		}
	}
}

func (s *Server) code(err error) int {
	var ue *UsageError
	var me *MalformedError
	switch {
	case errors.As(err, &ue):
		return 64
	case errors.As(err, &me):
		return 65
	}
	if s.Code != nil {
		return s.Code(err)
	}
	return 70
}

func (s *Server) message(err error) string {
	if s.Message != nil {
		return s.Message(err)
	}
	return err.Error()
}

// handle answers one request line.
func (s *Server) handle(ctx context.Context, line []byte) (resp Response) {
	req, err := DecodeRequest(line)
	resp.ID = req.ID
	if len(resp.ID) == 0 {
		resp.ID = json.RawMessage("null")
	}
	defer func() {
		if p := recover(); p != nil {
			resp.OK, resp.Error = nil, &Error{Code: 70, Message: fmt.Sprintf("internal error: %v", p)}
		}
	}()
	var ok any
	if err == nil {
		ok, err = s.do(ctx, req)
	}
	if err != nil {
		resp.Error = &Error{Code: s.code(err), Message: s.message(err)}
		return resp
	}
	resp.OK = ok
	return resp
}

func (s *Server) do(ctx context.Context, req Request) (any, error) {
	switch req.Op {
	case OpSubmit:
		var a SubmitArgs
		if err := decodeArgs(req.Op, req.Args, &a); err != nil {
			return nil, err
		}
		tasks, err := a.tasks()
		if err != nil {
			return nil, err
		}
		return s.Ops.Submit(ctx, tasks)
	case OpPoll, OpWait, OpCancel:
		var a SelectArgs
		if err := decodeArgs(req.Op, req.Args, &a); err != nil {
			return nil, err
		}
		if err := a.check(req.Op); err != nil {
			return nil, err
		}
		switch req.Op {
		case OpPoll:
			return s.Ops.Poll(ctx, a.IDs, a.Group)
		case OpWait:
			return s.wait(ctx, &a)
		}
		return s.Ops.Cancel(ctx, a.IDs, a.Group, a.Reason)
	case OpResult:
		var a ResultArgs
		if err := decodeArgs(req.Op, req.Args, &a); err != nil {
			return nil, err
		}
		if err := plan.ValidName(a.ID); err != nil {
			return nil, usagef("task id %v", err)
		}
		return s.Ops.Result(ctx, a.ID)
	case OpVersion:
		if err := decodeArgs(req.Op, req.Args, &struct{}{}); err != nil {
			return nil, err
		}
		return s.Version, nil
	}
	return nil, usagef("unknown op %q", req.Op)
}

// wait follows the tasks until every one has ended or the timeout passes,
// and returns the last states either way: unlike `poll --wait`, whose exit
// code says how it went, a caller reads the states. Each round reads only
// the tasks not seen ended, and of those only as many as a wait needs
// (Watcher); a wait cut short answers with its unfinished tasks read in
// full.
func (s *Server) wait(ctx context.Context, a *SelectArgs) ([]plan.Status, error) {
	var deadline <-chan time.Time
	if a.Timeout > 0 {
		t := time.NewTimer(a.Timeout.Std())
		defer t.Stop()
		deadline = t.C
	}
	w, err := s.Ops.Watch(ctx, a.IDs, a.Group)
	if err != nil {
		return nil, err
	}
	interval := a.interval()
	for {
		sts, err := w.Round(ctx)
		if err != nil {
			return nil, err
		}
		if allFinal(sts) {
			return sts, nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return full(ctx, w, sts), nil
		case <-deadline:
			t.Stop()
			return full(ctx, w, sts), nil
		case <-t.C:
		}
		interval = min(interval*5/4, 5*time.Second)
	}
}

// full is the answer of a wait that ended before its tasks: their states
// read in full, or the last round's when that read fails.
func full(ctx context.Context, w Watcher, last []plan.Status) []plan.Status {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if sts, err := w.Full(ctx); err == nil {
		return sts
	}
	return last
}

func allFinal(sts []plan.Status) bool {
	for _, st := range sts {
		if !st.State.Final() {
			return false
		}
	}
	return true
}

// writer serialises response lines from concurrent requests and keeps the
// first write error.
type writer struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

func (o *writer) send(r Response) {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(Response{ID: r.ID, Error: &Error{Code: 70, Message: "encode response: " + err.Error()}})
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return
	}
	b = append(b, '\n')
	if _, err := o.w.Write(b); err != nil {
		o.err = err
		return
	}
	o.err = o.w.Flush()
}

func (o *writer) error() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return fmt.Errorf("write responses: %w", o.err)
	}
	return nil
}
