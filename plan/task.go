package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// Version is the wire-format version written into every Task and Result. A
// decoder refuses documents of another version rather than guess at them.
const Version = 1

// Limits on what a task may carry. Linux refuses to exec a single argument or
// environment string over MaxArgBytes, and all of them together over roughly
// MaxArgvBytes; a task over these is accepted (it may still be carried through
// the queue) but ends failed with an error naming the limit.
const (
	MaxArgBytes  = 128 * 1024
	MaxArgvBytes = 2*1024*1024 - 64*1024
	// MaxIDLength bounds task ids and group names: they become parts of S3 keys.
	MaxIDLength = 200
	// MaxPriority and MinPriority bound Task.Priority.
	MaxPriority = 1000
	MinPriority = -1000
)

// Task is one unit of work: a command line executed directly (never through a
// shell) by a worker, plus the metadata that routes and bounds it.
type Task struct {
	// V is the wire-format version; zero on input means the current Version.
	V int `json:"v"`
	// ID names the task. It is generated (time-ordered) by submit unless given,
	// and a resubmit with the same ID does not create a second task.
	ID string `json:"id"`
	// Argv is the command and its arguments; Argv[0] is looked up in PATH.
	Argv []string `json:"argv"`
	// Env is added to the worker's environment for this task.
	Env map[string]string `json:"env,omitempty"`
	// Dir is the working directory; empty means the worker's own.
	Dir string `json:"dir,omitempty"`
	// Timeout bounds one attempt's run time; zero means no limit.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxAttempts is how many times the command may run before the task ends
	// failed; zero means 1.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Queue is the logical queue name; empty means "default".
	Queue string `json:"queue,omitempty"`
	// Priority orders tasks: higher runs first.
	Priority int `json:"priority,omitempty"`
	// Group ties tasks together (a Dagster run id) so they can be polled or
	// cancelled as one.
	Group string `json:"group,omitempty"`
	// Secrets are environment variables whose values the worker resolves
	// when the task starts, from references (env:VAR, ssm:/path,
	// secretsmanager:ID): only the references travel and are stored.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Labels are free-form metadata carried into the result.
	Labels map[string]string `json:"labels,omitempty"`
	// SubmittedAt is set by submit.
	SubmittedAt time.Time `json:"submitted_at,omitzero"`
	// Sig is the submitter's signature over everything above (see
	// SigningPayload); workers with verify keys run only tasks it matches.
	Sig *Signature `json:"sig,omitempty"`
}

// DefaultQueue is the logical queue a task goes to when it names none.
const DefaultQueue = "default"

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// ValidName reports whether s may be used as a task id, group or queue name:
// these become parts of S3 keys and SQS queue names, so they are kept to a
// safe alphabet.
func ValidName(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > MaxIDLength {
		return fmt.Errorf("is longer than %d characters", MaxIDLength)
	}
	if !namePattern.MatchString(s) {
		return fmt.Errorf("%q may hold only letters, digits and . _ : - (and must start with a letter or digit)", s)
	}
	return nil
}

// ValidationError is returned for a task that decodes but breaks a rule.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("task field %q %s", e.Field, e.Reason)
}

// Normalize fills defaults (version, queue, attempts) in place.
func (t *Task) Normalize() {
	if t.V == 0 {
		t.V = Version
	}
	if t.Queue == "" {
		t.Queue = DefaultQueue
	}
	if t.MaxAttempts == 0 {
		t.MaxAttempts = 1
	}
}

// Validate checks the rules a task must keep before it is queued. The ID may
// still be empty here: submit generates it after validation.
func (t *Task) Validate() error {
	if t.V != Version {
		return &ValidationError{"v", fmt.Sprintf("is %d; this taskiq-go speaks version %d", t.V, Version)}
	}
	if t.ID != "" {
		if err := ValidName(t.ID); err != nil {
			return &ValidationError{"id", err.Error()}
		}
	}
	if len(t.Argv) == 0 || t.Argv[0] == "" {
		return &ValidationError{"argv", "must name a command"}
	}
	for _, a := range t.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return &ValidationError{"argv", "holds a NUL byte"}
		}
	}
	for k, v := range t.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return &ValidationError{"env", fmt.Sprintf("has an invalid entry %q", k)}
		}
	}
	for k, ref := range t.Secrets {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return &ValidationError{"secrets", fmt.Sprintf("has an invalid name %q", k)}
		}
		if _, ok := t.Env[k]; ok {
			return &ValidationError{"secrets", fmt.Sprintf("name %s is also in env", k)}
		}
		if _, _, err := ParseSecretRef(ref); err != nil {
			return &ValidationError{"secrets", fmt.Sprintf("%s: reference %s", k, err)}
		}
	}
	if t.Timeout < 0 {
		return &ValidationError{"timeout", "is negative"}
	}
	if t.MaxAttempts < 1 || t.MaxAttempts > 100 {
		return &ValidationError{"max_attempts", "must be between 1 and 100"}
	}
	if err := ValidName(t.Queue); err != nil {
		return &ValidationError{"queue", err.Error()}
	}
	if t.Priority < MinPriority || t.Priority > MaxPriority {
		return &ValidationError{"priority", fmt.Sprintf("must be between %d and %d", MinPriority, MaxPriority)}
	}
	if t.Group != "" {
		if err := ValidName(t.Group); err != nil {
			return &ValidationError{"group", err.Error()}
		}
	}
	return nil
}

// ExecLimitError says why a task's command line cannot be executed on Linux at
// all, or returns nil. Workers check it before starting so that the task ends
// failed with a message that names the limit instead of a bare E2BIG.
func (t *Task) ExecLimitError() error {
	total := 0
	for i, a := range t.Argv {
		if len(a)+1 > MaxArgBytes {
			return fmt.Errorf("argument %d is %d bytes; Linux allows at most %d bytes in one argument", i, len(a), MaxArgBytes-1)
		}
		total += len(a) + 1
	}
	for k, v := range t.Env {
		if len(k)+len(v)+2 > MaxArgBytes {
			return fmt.Errorf("environment variable %s is %d bytes; Linux allows at most %d bytes in one", k, len(k)+len(v)+1, MaxArgBytes-1)
		}
		total += len(k) + len(v) + 2
	}
	if total > MaxArgvBytes {
		return fmt.Errorf("arguments and environment total %d bytes; Linux allows about %d", total, MaxArgvBytes)
	}
	return nil
}

// DecodeTask reads one task from JSON, refusing unknown fields, trailing data
// and other versions, then normalizes and validates it. It is the one decoder
// for task documents from users (submit --spec) and from the queue.
func DecodeTask(data []byte) (*Task, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var t Task
	if err := dec.Decode(&t); err != nil {
		return nil, &DecodeError{Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &DecodeError{Err: errors.New("trailing data after the task object")}
	}
	t.Normalize()
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// DecodeError is returned for input that is not a well-formed task object.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string {
	var te *json.UnmarshalTypeError
	if errors.As(e.Err, &te) {
		return "malformed task JSON: " + DescribeJSONTypeError(te, reflect.TypeFor[Task](), "a task")
	}
	var pe *time.ParseError
	if errors.As(e.Err, &pe) || strings.HasPrefix(e.Err.Error(), "Time.UnmarshalJSON: ") {
		// Only submitted_at is a time; Go's own text shows its layout.
		return `malformed task JSON: a time must be a string such as "2026-01-02T15:04:05Z" (RFC 3339)`
	}
	msg := e.Err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return "malformed task JSON: " + msg
}

// DescribeJSONTypeError says in JSON's words what a field of root (a
// struct type) should hold: encoding/json's own text names Go types ("Go
// struct field Task.argv of type []string"), which mean nothing to someone
// writing JSON. noun names the whole document ("a task").
func DescribeJSONTypeError(te *json.UnmarshalTypeError, root reflect.Type, noun string) string {
	got := jsonValueWords(te.Value)
	if te.Field == "" {
		return noun + " must be a JSON object, not " + got
	}
	if ft, ok := fieldType(root, te.Field); ok && ft != te.Type && (ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map) {
		// The field is right, one of its items is not.
		what := "item"
		if ft.Kind() == reflect.Map {
			what = "value"
		}
		return fmt.Sprintf("every %s of field %q must be %s, not %s", what, te.Field, goTypeWords(te.Type), got)
	}
	return fmt.Sprintf("field %q must be %s, not %s", te.Field, goTypeWords(te.Type), got)
}

// fieldType is the type of the field of struct type t whose JSON name is
// name.
func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name {
			return f.Type, true
		}
	}
	return nil, false
}

// jsonValueWords names a JSON value as encoding/json reports it ("string",
// "array", "number 1.5").
func jsonValueWords(v string) string {
	switch {
	case v == "array":
		return "a list"
	case v == "object":
		return "an object"
	case v == "bool":
		return "true or false"
	case v == "string":
		return "a string"
	case v == "number":
		return "a number"
	case strings.HasPrefix(v, "number "):
		return "the number " + strings.TrimPrefix(v, "number ")
	}
	return v
}

// goTypeWords names what a task field of type t holds, in JSON's words.
func goTypeWords(t reflect.Type) string {
	if t == nil {
		return "something else"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return "an object of strings"
		}
		return "an object"
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return "a time such as \"2026-01-02T15:04:05Z\""
		}
		return "an object"
	}
	return "something else"
}

func (e *DecodeError) Unwrap() error { return e.Err }
