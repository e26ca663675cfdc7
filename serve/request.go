package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// The operations a request may name.
const (
	OpSubmit = "submit"
	OpPoll   = "poll"
	OpWait   = "wait"
	OpCancel = "cancel"
	OpResult = "result"
	// OpVersion answers what `taskiq-go version --json` prints, with no I/O.
	OpVersion = "version"
)

// Request is one line of input: an id chosen by the caller and echoed in
// the response, an operation and its arguments.
type Request struct {
	// ID is any JSON value (a number or a string); null when absent.
	ID   json.RawMessage `json:"id"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args"`
}

// SubmitArgs are the arguments of submit: one task (the document of
// `submit --spec`) or a batch (the lines of `submit --batch`), not both.
type SubmitArgs struct {
	Spec  json.RawMessage   `json:"spec"`
	Batch []json.RawMessage `json:"batch"`
}

// SelectArgs pick tasks by id or by group, as poll, wait and cancel take
// them on the command line.
type SelectArgs struct {
	IDs   []string `json:"ids"`
	Group string   `json:"group"`
	// Reason is kept with a cancel request (cancel --reason).
	Reason string `json:"reason"`
	// Timeout bounds a wait (poll --wait --timeout); zero waits until the
	// server stops.
	Timeout plan.Duration `json:"timeout"`
	// Interval is the first pause between checks of a wait.
	Interval plan.Duration `json:"interval"`
}

// ResultArgs name the task whose result record is asked for.
type ResultArgs struct {
	ID string `json:"id"`
}

// UsageError is a request that names no known operation or gives
// arguments that do not fit it; it maps to the usage exit code.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// MalformedError is a line that is not a request object; it maps to the
// exit code of malformed input.
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string {
	return "malformed request: " + jsonMessage(e.Err, reflect.TypeFor[Request](), "a request")
}

func (e *MalformedError) Unwrap() error { return e.Err }

// DecodeRequest reads one request line. A line that is not a JSON object
// with a known op is an error; the request's id is returned whenever it
// could be read, so that the error response can carry it.
func DecodeRequest(line []byte) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		// Salvage the id of an object whose other fields are wrong.
		var probe struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(line, &probe) == nil {
			req = Request{ID: probe.ID}
		} else {
			req = Request{}
		}
		return req, &MalformedError{Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{ID: req.ID}, &MalformedError{Err: errors.New("trailing data after the request object")}
	}
	if len(req.ID) > 0 && req.ID[0] != '"' && !isNumber(req.ID) && string(req.ID) != "null" {
		return Request{}, &MalformedError{Err: errors.New("id must be a number or a string")}
	}
	switch req.Op {
	case OpSubmit, OpPoll, OpWait, OpCancel, OpResult, OpVersion:
	case "":
		return req, usagef("request has no op (one of submit, poll, wait, cancel, result, version)")
	default:
		return req, usagef("unknown op %q (one of submit, poll, wait, cancel, result, version)", req.Op)
	}
	return req, nil
}

func isNumber(b json.RawMessage) bool {
	var n json.Number
	return json.Unmarshal(b, &n) == nil && len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9'))
}

// decodeArgs reads a request's args into v, refusing unknown fields; absent
// args are an empty object.
func decodeArgs(op string, raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return usagef("%s args: %s", op, jsonMessage(err, reflect.TypeOf(v), "args"))
	}
	return nil
}

// jsonMessage is a decoding error in JSON's words: a value of the wrong
// type names what its field holds, not Go's types.
func jsonMessage(err error, root reflect.Type, noun string) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return plan.DescribeJSONTypeError(te, root, noun)
	}
	return trimJSON(err)
}

func trimJSON(err error) string {
	msg := err.Error()
	if len(msg) > 6 && msg[:6] == "json: " {
		return msg[6:]
	}
	return msg
}

// tasks decodes the task documents of a submit; each is checked as
// `submit --spec` checks its file.
func (a *SubmitArgs) tasks() ([]*plan.Task, error) {
	hasSpec := len(a.Spec) > 0 && string(a.Spec) != "null"
	switch {
	case hasSpec && a.Batch != nil:
		return nil, usagef("submit takes spec or batch, not both")
	case hasSpec:
		t, err := plan.DecodeTask(a.Spec)
		if err != nil {
			return nil, fmt.Errorf("spec: %w", err)
		}
		return []*plan.Task{t}, nil
	case len(a.Batch) > 0:
		out := make([]*plan.Task, 0, len(a.Batch))
		for i, raw := range a.Batch {
			t, err := plan.DecodeTask(raw)
			if err != nil {
				return nil, fmt.Errorf("batch item %d: %w", i+1, err)
			}
			out = append(out, t)
		}
		return out, nil
	}
	return nil, usagef("submit needs spec (one task) or batch (a list of tasks)")
}

// check refuses selections that cannot name any task, before any call.
func (a *SelectArgs) check(op string) error {
	if (len(a.IDs) == 0) == (a.Group == "") {
		return usagef("%s needs ids or group, not both", op)
	}
	for _, id := range a.IDs {
		if err := plan.ValidName(id); err != nil {
			return usagef("task id %v", err)
		}
	}
	if a.Group != "" {
		if err := plan.ValidName(a.Group); err != nil {
			return usagef("group %v", err)
		}
	}
	if a.Timeout < 0 || a.Interval < 0 {
		return usagef("%s: timeout and interval must not be negative", op)
	}
	return nil
}

func (a *SelectArgs) interval() time.Duration {
	if a.Interval <= 0 {
		return 200 * time.Millisecond
	}
	return a.Interval.Std()
}
