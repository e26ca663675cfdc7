package testbroker

import (
	"context"
	"maps"
	"slices"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
)

// groupKeys is the key layout the fake names end keys with, so that their
// encoding is the real one.
var groupKeys = s3results.Keys{}

// GroupIndex implements s3results.Store.GroupIndex ("group_index", one
// call for the whole listing).
func (s *Store) GroupIndex(ctx context.Context, group string) (*s3results.GroupIndex, error) {
	if err := s.check("group_index"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	members := slices.Clone(s.groups[group])
	slices.Sort(members)
	gi := &s3results.GroupIndex{Members: members, Ends: map[string][]s3results.GroupEnd{}}
	for _, k := range slices.Sorted(maps.Keys(s.groupEnds[group])) {
		if e, ok := groupKeys.ParseGroupEnd(group, k); ok {
			gi.Ends[e.Status.ID] = append(gi.Ends[e.Status.ID], e)
		}
	}
	return gi, nil
}

// PutGroupEnd implements s3results.Store.PutGroupEnd ("put_group_end").
func (s *Store) PutGroupEnd(ctx context.Context, r *plan.Result) error {
	if err := s.check("put_group_end"); err != nil {
		return err
	}
	key, ok := groupKeys.GroupEnd(r)
	if !ok {
		return nil
	}
	s.PutGroupEndKey(r.Group, key)
	return nil
}

// PutGroupEndKey stores an end key as given, for tests of keys that
// disagree with the result.
func (s *Store) PutGroupEndKey(group, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groupEnds == nil {
		s.groupEnds = map[string]map[string]bool{}
	}
	if s.groupEnds[group] == nil {
		s.groupEnds[group] = map[string]bool{}
	}
	s.groupEnds[group][key] = true
}

// GroupEnds lists the end keys stored for group.
func (s *Store) GroupEnds(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.groupEnds[group]))
}
