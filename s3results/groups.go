package s3results

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// The group index: a group's members, and how each one that ended ended,
// told by key names alone, so that one LIST page covers a thousand tasks
// and no object is read:
//
//	PREFIX/groups/GROUP/ID                  membership (submit writes it)
//	PREFIX/group-ends/GROUP/ID/1,FIELDS     how member ID ended (whoever stored its result writes it)
//
// FIELDS are the final status of the task, comma-separated and escaped:
// state, exit code, attempt, worker pid, host and id, finish time, error
// (or "*" when the error does not fit in a key, and the result must be
// read for it). An end key is written only after its task's final result
// is stored, and from that result, which is written once: it can lag
// behind the result (its writer stopped in between), never lead it nor
// disagree with it. Readers fall back on the task's own records for a
// member that has no end key, or more than one.
//
// The ends live under a prefix of their own so that a LIST of the
// members, which binaries of every version make, names members only.

// groupEndVersion is the first field of every end key, for the format of
// those after it.
const groupEndVersion = "1"

// maxKeyBytes is S3's limit on the length of a key.
const maxKeyBytes = 1024

// GroupEndDir is the prefix holding the end keys of group's members.
func (k Keys) GroupEndDir(group string) string { return k.join("group-ends", group) + "/" }

// GroupEnd is the key that records how r, a grouped task's final result,
// ended; ok is false when r has no group or its status cannot fit in a
// key even without its error.
func (k Keys) GroupEnd(r *plan.Result) (key string, ok bool) {
	if r.Group == "" || r.ID == "" {
		return "", false
	}
	code := ""
	if r.ExitCode != nil {
		code = strconv.Itoa(*r.ExitCode)
	}
	finished := ""
	if !r.FinishedAt.IsZero() {
		// As the result's JSON has it, so that the status printed from
		// the key is the one printed from the result.
		finished = r.FinishedAt.Format(time.RFC3339Nano)
	}
	fields := []string{groupEndVersion, string(r.State), code, strconv.Itoa(r.Attempt), strconv.Itoa(r.Worker.PID),
		r.Worker.Host, r.Worker.ID, finished}
	for i := range fields {
		fields[i] = escapeField(fields[i])
	}
	dir := k.GroupEndDir(r.Group) + r.ID + "/"
	head := dir + strings.Join(fields, ",")
	if key := head + "," + escapeField(r.Error); len(key) <= maxKeyBytes {
		return key, true
	}
	if key := head + ",*"; len(key) <= maxKeyBytes {
		return key, true
	}
	return "", false
}

// GroupEnd is how one member of a group ended, as its end key tells.
type GroupEnd struct {
	// Status is the member's final status, its error aside when
	// ErrorOmitted.
	Status plan.Status
	// ErrorOmitted says the result has an error too long for the key:
	// read the result for it.
	ErrorOmitted bool
	// Key is the end key itself, to tell two end keys of one task apart.
	Key string
}

// ParseGroupEnd reads an end key of group (one under GroupEndDir(group));
// ok is false for a key in no format this binary knows.
func (k Keys) ParseGroupEnd(group, key string) (GroupEnd, bool) {
	id, rest, ok := strings.Cut(strings.TrimPrefix(key, k.GroupEndDir(group)), "/")
	if !ok || id == "" {
		return GroupEnd{}, false
	}
	raw := strings.Split(rest, ",")
	if len(raw) != 9 || raw[0] != groupEndVersion {
		return GroupEnd{}, false
	}
	f := make([]string, len(raw))
	for i, s := range raw {
		var err error
		if f[i], err = url.PathUnescape(s); err != nil {
			return GroupEnd{}, false
		}
	}
	st := plan.Status{ID: id, State: plan.State(f[1]), Group: group, Worker: plan.WorkerInfo{Host: f[5], ID: f[6]}}
	if !st.State.Final() {
		return GroupEnd{}, false
	}
	var err error
	if f[2] != "" {
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return GroupEnd{}, false
		}
		st.ExitCode = &n
	}
	if st.Attempt, err = strconv.Atoi(f[3]); err != nil {
		return GroupEnd{}, false
	}
	if st.Worker.PID, err = strconv.Atoi(f[4]); err != nil {
		return GroupEnd{}, false
	}
	if f[7] != "" {
		if st.FinishedAt, err = time.Parse(time.RFC3339Nano, f[7]); err != nil {
			return GroupEnd{}, false
		}
	}
	e := GroupEnd{Status: st, Key: key}
	if raw[8] == "*" {
		e.ErrorOmitted = true
	} else {
		e.Status.Error = f[8]
	}
	return e, true
}

// escapeField keeps the characters that names may hold and escapes every
// other byte as %XX, the comma that separates fields and the slash of a
// key's path included.
func escapeField(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// PutGroupEnd records in the group index how r, a final result just
// stored, ended: one empty object whose name says it. Nothing is written
// for a task without a group (or one whose status does not fit in a key:
// readers then read its result).
func (s *Store) PutGroupEnd(ctx context.Context, r *plan.Result) error {
	key, ok := s.keys.GroupEnd(r)
	if !ok {
		return nil
	}
	return s.put(ctx, key, nil, false)
}

// GroupIndex is what one listing of a group's index tells.
type GroupIndex struct {
	// Members are the ids of the group's tasks, in key order (which for
	// generated ids is submission order).
	Members []string
	// Ends are the end keys of the members that have one or more, by id.
	Ends map[string][]GroupEnd
}

// GroupIndex lists a group's members and their end keys: a LIST page per
// thousand of each, the two listings at once.
func (s *Store) GroupIndex(ctx context.Context, group string) (*GroupIndex, error) {
	gi := &GroupIndex{Ends: map[string][]GroupEnd{}}
	var endKeys []string
	var errMembers, errEnds error
	var wg sync.WaitGroup
	wg.Go(func() { endKeys, errEnds = s.list(ctx, s.keys.GroupEndDir(group), "") })
	gi.Members, errMembers = s.GroupIDs(ctx, group)
	wg.Wait()
	if errMembers != nil {
		return nil, errMembers
	}
	if errEnds != nil {
		return nil, errEnds
	}
	for _, k := range endKeys {
		if e, ok := s.keys.ParseGroupEnd(group, k); ok {
			gi.Ends[e.Status.ID] = append(gi.Ends[e.Status.ID], e)
		}
	}
	return gi, nil
}

// GroupIDs lists the ids of a group's tasks, in key order (which for
// generated ids is submission order).
func (s *Store) GroupIDs(ctx context.Context, group string) ([]string, error) {
	dir := s.keys.GroupDir(group)
	keys, err := s.list(ctx, dir, "")
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		if id := strings.TrimPrefix(k, dir); id != "" && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
