package ops

import (
	"context"
	"slices"
	"strconv"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// A level that gets ten or more tasks from one submit gets them in packs
// (plan.AttrPack): up to plan.PackMax tasks to a message, each exactly as
// its own message would carry it. On moto, whose every send and receive
// walks the whole queue, a tenth of the messages in a level cut its CPU
// per task; on SQS a SendMessageBatch of ten packs sends a hundred tasks,
// and a receive takes ten. A pointer (a task too large for a message)
// and a task that would take its pack past packBodyLimit go alone; the
// inbox gets single messages only, so a Dagster step, a small submit and
// everything a worker parks stay as they were.

// packBodyLimit bounds a pack's body, below SQS's limit on a message with
// room for its attributes (the ids of its tasks).
const packBodyLimit = sqs.MaxBodyBytes - 4096

// unit is one message of a send: a task's own, or a pack of several.
type unit struct {
	entry sqs.Entry
	items []pending
}

// units are the messages route r sends: packs for a level when packs is
// set, else one message a task.
func (r sendRoute) units(packs bool) []unit {
	if r.level == "" || !packs {
		out := make([]unit, len(r.items))
		for i, p := range r.items {
			out[i] = unit{entry: p.entry, items: []pending{p}}
		}
		return out
	}
	var out []unit
	var cur []pending
	size := 0
	flush := func() {
		switch len(cur) {
		case 0:
			return
		case 1:
			out = append(out, unit{entry: cur[0].entry, items: cur})
		default:
			out = append(out, packUnit(cur))
		}
		cur, size = nil, 0
	}
	for _, p := range r.items {
		n := len(p.entry.Body)
		if p.pointer || !plan.PackFits(1, n, packBodyLimit) {
			flush() // the submit's order is kept
			out = append(out, unit{entry: p.entry, items: []pending{p}})
			continue
		}
		if !plan.PackFits(len(cur)+1, size+n, packBodyLimit) {
			flush()
		}
		cur = append(cur, p)
		size += n
	}
	flush()
	return out
}

// packUnit is the pack of tasks ps.
func packUnit(ps []pending) unit {
	bodies := make([][]byte, len(ps))
	ids := make([]string, len(ps))
	prio := ps[0].prio
	for i, p := range ps {
		bodies[i] = []byte(p.entry.Body)
		ids[i] = p.entry.Attributes["taskiq_id"]
		prio = max(prio, p.prio)
	}
	attrs := map[string]string{plan.AttrPack: plan.PackAttr(ids), plan.AttrPriority: strconv.Itoa(prio)}
	return unit{entry: sqs.Entry{Body: string(plan.EncodePack(bodies)), Attributes: attrs}, items: slices.Clone(ps)}
}

// sendUnits sends up to ten messages to url in one call and says, per
// task they carry, whether it was sent (ok) or its message's own error
// (failed); err is the call's error.
func sendUnits(ctx context.Context, q *sqs.Client, url string, us []unit) (items []pending, ok []bool, failed []error, err error) {
	entries := make([]sqs.Entry, len(us))
	for k, u := range us {
		entries[k] = u.entry
	}
	efailed, err := sendChunk(ctx, q, url, entries)
	for k, u := range us {
		for _, p := range u.items {
			items = append(items, p)
			ok = append(ok, efailed[k] == nil && (err == nil || len(entries) > 1))
			failed = append(failed, efailed[k])
		}
	}
	return items, ok, failed, err
}

// sendSingles sends tasks to url one message each, ten to a call, until a
// call fails; the tasks after it are not sent and carry its error.
func sendSingles(ctx context.Context, q *sqs.Client, url string, ps []pending) (items []pending, ok []bool, failed []error, err error) {
	for len(ps) > 0 {
		n := min(len(ps), sqs.MaxBatch)
		chunk := ps[:n]
		ps = ps[n:]
		if err != nil {
			for _, p := range chunk {
				items, ok, failed = append(items, p), append(ok, false), append(failed, err)
			}
			continue
		}
		us := make([]unit, len(chunk))
		for k, p := range chunk {
			us[k] = unit{entry: p.entry, items: []pending{p}}
		}
		it, o, f, e := sendUnits(ctx, q, url, us)
		items, ok, failed, err = append(items, it...), append(ok, o...), append(failed, f...), e
	}
	return items, ok, failed, err
}
