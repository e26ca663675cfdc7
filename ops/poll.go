package ops

import (
	"context"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/lifecycle"
	"github.com/taskiq-go/taskiq-go/plan"
)

// PollOptions say which tasks to poll: IDs, or every task of Group.
type PollOptions struct {
	IDs   []string
	Group string
}

// Poll reports the states of the given tasks, or of every task of a group.
func Poll(ctx context.Context, be *backend.Backend, o PollOptions) ([]plan.Status, error) {
	if o.Group != "" {
		return NewGroupPoller(be, o.Group).Poll(ctx)
	}
	return NewPoller(be, o.IDs).Poll(ctx)
}

// Poller polls a fixed set of tasks (or the tasks of a group, which may
// grow: NewGroupPoller) again and again, as a wait does. A task seen in a
// final state is never read again: its result is written once.
type Poller struct {
	// Peek makes each Poll a round of a wait: only the oldest task not
	// known to have ended is looked at (one LIST, lifecycle.Peek), and once
	// it has ended the tasks after it are swept in order with one GET of
	// their result each, up to the first that has none, which is the one
	// looked at next. A round so costs a request per task that ended since
	// the last, plus two; the statuses of the tasks not read are the last
	// ones seen (queued at first), and running tasks show without their
	// worker.
	Peek bool
	// Group, when set, is the group of the tasks polled: each Poll first
	// lists its index (lifecycle.ReadGroup), which tells the tasks that
	// ended without reading them, and reads only the others.
	Group string
	// members makes the ids the group's members, as each listing finds
	// them (NewGroupPoller).
	members bool
	st      lifecycle.Store
	ids     []string
	// final holds the statuses of the tasks seen ended, by index; last the
	// latest status read of the others.
	final map[int]plan.Status
	last  map[int]plan.Status
}

// NewPoller polls ids.
func NewPoller(be *backend.Backend, ids []string) *Poller {
	return &Poller{st: be.Store, ids: ids, final: map[int]plan.Status{}, last: map[int]plan.Status{}}
}

// Poll reports every task's state, reading only those not known to have
// ended (with Peek, only as many of those as a round of a wait needs).
func (p *Poller) Poll(ctx context.Context) ([]plan.Status, error) {
	if p.Group != "" {
		if err := p.readGroup(ctx); err != nil {
			return nil, err
		}
	}
	var idx []int
	var ids []string
	for i, id := range p.ids {
		if _, ok := p.final[i]; !ok {
			idx = append(idx, i)
			ids = append(ids, id)
		}
	}
	if p.Peek {
		if err := p.round(ctx, idx); err != nil {
			return nil, err
		}
	} else {
		sts, errs := lifecycle.Statuses(ctx, p.st, ids, time.Now())
		if err := firstErr(errs); err != nil {
			return nil, err
		}
		for k, i := range idx {
			p.seen(i, sts[k])
		}
	}
	out := make([]plan.Status, len(p.ids))
	for i, id := range p.ids {
		if st, ok := p.final[i]; ok {
			out[i] = st
		} else if st, ok := p.last[i]; ok {
			out[i] = st
		} else {
			out[i] = plan.Status{ID: id, State: plan.StateQueued}
		}
	}
	return out, nil
}

// Round is one round of a wait: Poll with Peek.
func (p *Poller) Round(ctx context.Context) ([]plan.Status, error) {
	p.Peek = true
	return p.Poll(ctx)
}

// Full is Poll without Peek: the tasks not seen ended read in full, for
// the statuses a wait cut short reports.
func (p *Poller) Full(ctx context.Context) ([]plan.Status, error) {
	p.Peek = false
	return p.Poll(ctx)
}

func (p *Poller) seen(i int, st plan.Status) {
	if st.State.Final() {
		p.final[i] = st
		delete(p.last, i)
		return
	}
	p.last[i] = st
}

// round is one round of a wait over the unfinished tasks idx, in the order
// given (the oldest first, for time-ordered ids): the first is peeked, and
// while it has ended the next ones are read by their result alone, until
// one has none; that one is peeked in turn, since a task may also end
// refused (dead_letter) or not exist at all, which only a LIST tells.
// The results are read a few at once, twice as many each time all of
// them were there (up to sweepMost): a wait that fell behind a backlog of
// ended tasks catches up in a few round trips, not one per task (on moto,
// 200 results read one after another took 2.5 s at the end of a run),
// while a round at the edge of what has ended reads at most about as many
// results that are not there yet as it found.
func (p *Poller) round(ctx context.Context, idx []int) error {
	st := p.st
	k := 0
	for k < len(idx) {
		i := idx[k]
		if _, ok := p.final[i]; ok {
			k++ // read ended by the sweep below, past a task that had not
			continue
		}
		snap, err := lifecycle.Peek(ctx, st, p.ids[i])
		if err != nil {
			return err
		}
		s := snap.Status(p.ids[i], time.Now())
		p.seen(i, s)
		if !s.State.Final() {
			return nil
		}
		k++
		for n := 1; k < len(idx); n = min(2*n, sweepMost) {
			chunk := idx[k:min(k+n, len(idx))]
			res := make([]*plan.Result, len(chunk))
			errs := make([]error, len(chunk))
			var wg sync.WaitGroup
			for c, i := range chunk {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[c], errs[c] = lifecycle.Ended(ctx, st, p.ids[i])
				}()
			}
			wg.Wait()
			if err := firstErr(errs); err != nil {
				return err
			}
			miss := -1
			for c, i := range chunk {
				if res[c] != nil {
					p.seen(i, (&lifecycle.Snapshot{Result: res[c]}).Status(p.ids[i], time.Now()))
				} else if miss < 0 {
					miss = c
				}
			}
			if miss >= 0 {
				k += miss // peeked next
				break
			}
			k += len(chunk)
		}
	}
	return nil
}

// sweepMost bounds the results a round of a wait reads at once.
const sweepMost = 16

// Ended is how many of the tasks polled have been seen in a final state,
// for a wait (WaitOptions.Ended).
func (p *Poller) Ended() int { return len(p.final) }

// AllFinal reports whether every status is a final state.
func AllFinal(sts []plan.Status) bool {
	for _, st := range sts {
		if !st.State.Final() {
			return false
		}
	}
	return true
}
