package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// A pack is one queue message that carries several tasks of one priority
// level, each exactly as a message of its own would carry it (signature
// included): a batch submit sends its levels in packs, so that a queue
// holds and walks a tenth of the messages. A worker takes a pack apart
// and runs each task on its own; see worker/pack.go.
//
// The body is {"v":1,"pack":[TASK,...]}: a worker that does not know
// packs refuses it as a task with an unknown field and dead-letters it
// whole, never running part of it. Workers are therefore upgraded before
// submitters.
const (
	// AttrPack marks a pack; its value is the ids of the tasks it holds,
	// comma-separated, in order, for `dlq list` and for what reads no
	// body.
	AttrPack = "taskiq_pack"
	// PackMax is the most tasks one pack holds.
	PackMax = 10
)

// packOverhead is what a pack's body adds around its tasks, at most:
// the envelope and a comma per task.
const packOverhead = len(`{"v":1,"pack":[]}`) + PackMax

// PackFits reports whether tasks whose bodies sum to size bytes, n of
// them, fit in one pack under limit bytes of body.
func PackFits(n, size, limit int) bool {
	return n <= PackMax && size+packOverhead <= limit
}

// EncodePack builds the body of a pack from task bodies, kept byte for
// byte.
func EncodePack(bodies [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"v":1,"pack":[`)
	for i, t := range bodies {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(t)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// PackAttr is the AttrPack value for a pack of the tasks ids.
func PackAttr(ids []string) string { return strings.Join(ids, ",") }

// PackIDs reads an AttrPack value back into task ids.
func PackIDs(attr string) []string {
	if attr == "" {
		return nil
	}
	return strings.Split(attr, ",")
}

// PackedTask is one task of a decoded pack: its body as a message of its
// own would carry it, and what the body says of its id and priority. The
// body is not validated as a task here: a worker does that for each task
// on its own, so that one bad task is dead-lettered alone.
type PackedTask struct {
	Body     []byte
	ID       string
	Priority int
}

// DecodePack reads a pack's body. It reads untrusted input: anything but
// a version-1 envelope holding 1 to PackMax JSON objects, each with a
// valid id and none twice, is an error, and the whole pack is then
// dead-lettered.
func DecodePack(body []byte) ([]PackedTask, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var env struct {
		V    *int              `json:"v"`
		Pack []json.RawMessage `json:"pack"`
	}
	if err := dec.Decode(&env); err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("pack: %w", err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &DecodeError{Err: errors.New("pack: trailing data after the pack object")}
	}
	if env.V == nil || *env.V != Version {
		return nil, &ValidationError{"v", "is not the supported version"}
	}
	if len(env.Pack) == 0 || len(env.Pack) > PackMax {
		return nil, &ValidationError{"pack", fmt.Sprintf("must hold 1 to %d tasks", PackMax)}
	}
	out := make([]PackedTask, len(env.Pack))
	seen := map[string]bool{}
	for i, raw := range env.Pack {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] != '{' {
			return nil, &ValidationError{"pack", fmt.Sprintf("entry %d is not a task object", i)}
		}
		var probe struct {
			ID       string          `json:"id"`
			Priority json.RawMessage `json:"priority"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, &DecodeError{Err: fmt.Errorf("pack entry %d: %w", i, err)}
		}
		if err := ValidName(probe.ID); err != nil {
			return nil, &ValidationError{"pack", fmt.Sprintf("entry %d: id %v", i, err)}
		}
		if seen[probe.ID] {
			return nil, &ValidationError{"pack", fmt.Sprintf("entry %d: task %s is in the pack twice", i, probe.ID)}
		}
		seen[probe.ID] = true
		var prio int
		if len(probe.Priority) > 0 {
			_ = json.Unmarshal(probe.Priority, &prio) // a bad one fails the task's own decode
		}
		out[i] = PackedTask{Body: bytes.Clone(raw), ID: probe.ID, Priority: prio}
	}
	return out, nil
}
