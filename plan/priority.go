package plan

import (
	"strconv"
	"strings"
)

// Band is one SQS queue of a logical queue. SQS has no message priority,
// so a logical queue is an inbox and one queue per priority level:
//
//   - a task is sent to the inbox (the logical queue's own URL, no
//     suffix), unless its submit sends a full batch or more to its level:
//     then it goes straight to the level (LevelFor), and a hint naming the
//     level goes to the inbox after it;
//   - a worker with free slots drains the inbox, runs the highest tasks it
//     took, and parks the rest in their level's queue (a copy sent, the
//     original deleted), from which free slots take the highest level
//     first. An idle worker long-polls the inbox alone, so idleness costs
//     one receive per wait, and a task or a hint of any level reaches it
//     at once.
type Band struct {
	// Name is the band's name in logs and in `taskiq-go queues`.
	Name string
	// Suffix is appended to the logical queue's SQS URL.
	Suffix string
	// Min and Max bound the task priorities parked in the band; the inbox
	// takes every priority.
	Min, Max int
	// Inbox marks the inbox.
	Inbox bool
}

// LevelTop and LevelBottom are the ends of the range in which every
// integer priority is its own level; a priority above LevelTop is parked
// with LevelTop's, and every negative priority in the one level below 0.
const (
	LevelTop    = 10
	LevelBottom = 0
)

// Inbox is the band every task is sent to.
var Inbox = Band{Name: "inbox", Suffix: "", Min: MinPriority, Max: MaxPriority, Inbox: true}

// Levels are the queues of the priority levels, highest first:
//
//	priority >= 10   p10 (-p10)
//	9 ... 1          p9 (-p9) ... p1 (-p1), one each
//	0                p0 (-p0)
//	priority < 0     below0 (-n)
var Levels = levels()

// Bands are every SQS queue of a logical queue: the inbox, then the levels
// highest first. The mapping is fixed, so that every producer and worker
// agrees on it without configuration; `init`, `queues`, `iam` and `dev`
// follow it.
var Bands = append([]Band{Inbox}, Levels...)

func levels() []Band {
	var out []Band
	for p := LevelTop; p >= LevelBottom; p-- {
		b := Band{Name: "p" + strconv.Itoa(p), Suffix: "-p" + strconv.Itoa(p), Min: p, Max: p}
		if p == LevelTop {
			b.Max = MaxPriority
		}
		out = append(out, b)
	}
	return append(out, Band{Name: "below0", Suffix: "-n", Min: MinPriority, Max: LevelBottom - 1})
}

// LevelFor returns the level a task of the given priority is sent or
// parked to;
// priorities beyond MinPriority and MaxPriority are clamped to the end
// levels.
func LevelFor(priority int) Band {
	for _, b := range Levels {
		if priority >= b.Min && priority <= b.Max {
			return b
		}
	}
	if priority > 0 {
		return Levels[0]
	}
	return Levels[len(Levels)-1]
}

// InboxOf returns the inbox of the logical queue an SQS queue URL belongs
// to: the URL without its level's suffix (the URL itself for an inbox).
// Whatever is sent back to a logical queue (a retry, a redrive, a renewed
// message) goes to its inbox, where every worker serving it looks.
func InboxOf(url string) string {
	for _, b := range Levels {
		if s, ok := strings.CutSuffix(url, b.Suffix); ok && s != "" {
			return s
		}
	}
	return url
}
