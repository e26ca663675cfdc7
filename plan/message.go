package plan

import (
	"encoding/json"
	"errors"
	"strconv"
)

// Pointer is the queue message sent in place of a task whose JSON is larger
// than the queue allows (the claim-check pattern): the task itself lives in
// the store under Ref.
type Pointer struct {
	V   int    `json:"v"`
	ID  string `json:"id"`
	Ref string `json:"ref"`
}

// DecodeMessage reads a queue message body: either a whole task or a Pointer.
// Exactly one of the returned values is non-nil when err is nil.
func DecodeMessage(body []byte) (*Task, *Pointer, error) {
	var probe struct {
		Ref *string `json:"ref"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, nil, &DecodeError{Err: err}
	}
	if probe.Ref == nil {
		t, err := DecodeTask(body)
		return t, nil, err
	}
	var p Pointer
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, nil, &DecodeError{Err: err}
	}
	if p.V != Version {
		return nil, nil, &ValidationError{"v", "is not the supported version"}
	}
	if err := ValidName(p.ID); err != nil {
		return nil, nil, &ValidationError{"id", err.Error()}
	}
	if p.Ref == "" {
		return nil, nil, &DecodeError{Err: errors.New("pointer has an empty ref")}
	}
	return nil, &p, nil
}

// Message attributes the tool sets beside a body.
const (
	// AttrPriority carries a task's priority, so that a worker can park
	// its message in the right level without reading the body (a Pointer
	// has none).
	AttrPriority = "taskiq_priority"
	// AttrHint marks a hint: a message without a task, which a worker that
	// parked messages, or a submit that sent tasks straight to a level,
	// sends to the inbox, so that an idle worker of the queue wakes and
	// looks at the levels. Its value names the level (a band name of
	// Levels); any other value stands for every level.
	AttrHint = "taskiq_hint"
)

// HintBody is the body of a hint message.
const HintBody = `{"v":1,"hint":"levels"}`

// MessagePriority is the priority of a queued message: its AttrPriority
// when that is an integer, else the body's "priority" field, else 0.
func MessagePriority(attrs map[string]string, body []byte) int {
	if v, ok := attrs[AttrPriority]; ok {
		if p, err := strconv.Atoi(v); err == nil {
			return p
		}
	}
	var probe struct {
		Priority int `json:"priority"`
	}
	if json.Unmarshal(body, &probe) == nil {
		return probe.Priority
	}
	return 0
}
