package ops

import (
	"context"
	"fmt"
	"slices"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
)

// NewGroupPoller polls every task of group. A round costs a LIST page per
// thousand members and per thousand that ended (the group's index tells
// how each ended), plus the reads of the members not ended; members added
// meanwhile join the poll. A group with no tasks is an unknown one.
func NewGroupPoller(be *backend.Backend, group string) *Poller {
	return newGroupPoller(be.Store, group)
}

func newGroupPoller(st lifecycle.Store, group string) *Poller {
	return &Poller{st: st, Group: group, members: true, final: map[int]plan.Status{}, last: map[int]plan.Status{}}
}

// readGroup is the first step of a Poll of a group: one listing of its
// index, which makes every task it shows ended final here; tasks already
// known final are not read again.
func (p *Poller) readGroup(ctx context.Context) error {
	known := map[string]bool{}
	for i := range p.final {
		known[p.ids[i]] = true
	}
	g, err := readGroup(ctx, p.st, p.Group, func(id string) bool { return known[id] })
	if err != nil {
		return err
	}
	if p.members {
		p.setIDs(g.Members)
	}
	for i, id := range p.ids {
		if s, ok := g.Ended[id]; ok && !known[id] {
			p.seen(i, s)
		}
	}
	return nil
}

// readGroup is lifecycle.ReadGroup, with a group that has no tasks an
// unknown one.
func readGroup(ctx context.Context, st lifecycle.Store, group string, known func(string) bool) (*lifecycle.Group, error) {
	g, err := lifecycle.ReadGroup(ctx, st, group, known)
	if err != nil {
		return nil, err
	}
	if len(g.Members) == 0 {
		return nil, fmt.Errorf("group %s has no tasks: %w", group, plan.ErrTaskNotFound)
	}
	return g, nil
}

// setIDs makes ids the tasks polled, keeping what is known of each.
func (p *Poller) setIDs(ids []string) {
	if slices.Equal(ids, p.ids) {
		return
	}
	final, last := map[string]plan.Status{}, map[string]plan.Status{}
	for i, s := range p.final {
		final[p.ids[i]] = s
	}
	for i, s := range p.last {
		last[p.ids[i]] = s
	}
	p.ids, p.final, p.last = ids, map[int]plan.Status{}, map[int]plan.Status{}
	for i, id := range ids {
		if s, ok := final[id]; ok {
			p.final[i] = s
		} else if s, ok := last[id]; ok {
			p.last[i] = s
		}
	}
}
