package ops

import (
	"context"
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
	ids, err := TaskIDs(ctx, be, o.IDs, o.Group)
	if err != nil {
		return nil, err
	}
	return NewPoller(be, ids).Poll(ctx)
}

// Poller polls a fixed set of tasks again and again, as a wait does. A task
// seen in a final state is never read again: its result is written once.
type Poller struct {
	// Peek reads unfinished tasks with one LIST each (lifecycle.Peek):
	// enough to wait on, though running tasks show without their worker.
	Peek bool
	be   *backend.Backend
	ids  []string
	// final holds the statuses of the tasks seen ended, by index.
	final map[int]plan.Status
}

// NewPoller polls ids.
func NewPoller(be *backend.Backend, ids []string) *Poller {
	return &Poller{be: be, ids: ids, final: map[int]plan.Status{}}
}

// Poll reports every task's state, reading only those not known to have
// ended.
func (p *Poller) Poll(ctx context.Context) ([]plan.Status, error) {
	var idx []int
	var ids []string
	for i, id := range p.ids {
		if _, ok := p.final[i]; !ok {
			idx = append(idx, i)
			ids = append(ids, id)
		}
	}
	read := lifecycle.Statuses
	if p.Peek {
		read = lifecycle.PeekStatuses
	}
	sts, errs := read(ctx, p.be.Store, ids, time.Now())
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	out := make([]plan.Status, len(p.ids))
	for i, st := range p.final {
		out[i] = st
	}
	for k, i := range idx {
		out[i] = sts[k]
		if sts[k].State.Final() {
			p.final[i] = sts[k]
		}
	}
	return out, nil
}

// AllFinal reports whether every status is a final state.
func AllFinal(sts []plan.Status) bool {
	for _, st := range sts {
		if !st.State.Final() {
			return false
		}
	}
	return true
}
