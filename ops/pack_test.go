package ops

import (
	"strconv"
	"strings"
	"testing"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

func taskPending(i int, body string, pointer bool) pending {
	id := "t" + strconv.Itoa(i)
	return pending{i: i, entry: sqs.Entry{Body: body, Attributes: map[string]string{"taskiq_id": id, plan.AttrPriority: "3"}}, pointer: pointer, prio: 3}
}

// A level's tasks go ten to a pack, each body byte for byte; a pointer,
// and a task whose body would take its pack past the limit, start a
// message of their own; the inbox gets one message a task.
func TestUnitsPackALevel(t *testing.T) {
	var items []pending
	for i := range 23 {
		items = append(items, taskPending(i, `{"id":"t`+strconv.Itoa(i)+`"}`, false))
	}
	items[12].pointer = true
	big := `{"id":"t20","pad":"` + strings.Repeat("x", packBodyLimit) + `"}`
	items[20].entry.Body = big
	us := sendRoute{url: "q-p3", level: "p3", items: items}.units(true)
	// 0-9 a pack, 10-11 a pack (the pointer ends it), 12 alone, 13-19 a
	// pack, 20 alone, 21-22 a pack.
	sizes := []int{10, 2, 1, 7, 1, 2}
	if len(us) != len(sizes) {
		t.Fatalf("%d messages, want %d", len(us), len(sizes))
	}
	next := 0
	for k, u := range us {
		if len(u.items) != sizes[k] {
			t.Fatalf("message %d holds %d tasks, want %d", k, len(u.items), sizes[k])
		}
		for _, p := range u.items {
			if p.i != next {
				t.Fatalf("message %d: task %d, want %d (submit order)", k, p.i, next)
			}
			next++
		}
		ids, isPack := u.entry.Attributes[plan.AttrPack]
		if isPack != (sizes[k] > 1) {
			t.Errorf("message %d: pack attribute %q with %d tasks", k, ids, sizes[k])
		}
		if !isPack {
			continue
		}
		if len(u.entry.Body) > packBodyLimit {
			t.Errorf("pack %d is %d bytes", k, len(u.entry.Body))
		}
		got, err := plan.DecodePack([]byte(u.entry.Body))
		if err != nil {
			t.Fatalf("pack %d: %v", k, err)
		}
		for j, pt := range got {
			if string(pt.Body) != u.items[j].entry.Body || plan.PackIDs(ids)[j] != pt.ID {
				t.Errorf("pack %d task %d: %s %q", k, j, pt.ID, pt.Body)
			}
		}
	}
	inbox := sendRoute{url: "q", items: items[:12]}.units(true)
	if len(inbox) != 12 {
		t.Errorf("inbox: %d messages for 12 tasks", len(inbox))
	}
	if off := (sendRoute{url: "q-p3", level: "p3", items: items}).units(false); len(off) != len(items) {
		t.Errorf("packs off: %d messages for %d tasks", len(off), len(items))
	}
}
