package plan

import (
	"encoding/json"
	"errors"
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
