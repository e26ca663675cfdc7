package ops

import (
	"strings"
	"testing"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// layOut gives generated ids that name each task's chunk and position,
// a hundred tasks a chunk, closes a chunk early when its records would
// pass the byte bound, and records in the index only the generated ids
// that fit a message; explicit ids keep theirs and a place in the chunk.
func TestLayOut(t *testing.T) {
	now := time.UnixMilli(1_780_000_000_000)
	var tasks []*plan.Task
	for range 230 {
		tasks = append(tasks, &plan.Task{Argv: []string{"true"}})
	}
	tasks[5].ID = "explicit"
	big := strings.Repeat("x", sqs.MaxBodyBytes)
	tasks[7].Argv = []string{"echo", big}
	// Three records of 200 KiB do not share a chunk.
	mid := strings.Repeat("y", 200<<10)
	for i := 120; i < 123; i++ {
		tasks[i].Argv = []string{"echo", mid}
	}
	for _, tk := range tasks {
		tk.Normalize()
	}
	ci, err := layOut(tasks, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, tk := range tasks {
		if seen[tk.ID] {
			t.Fatalf("id %s twice", tk.ID)
		}
		seen[tk.ID] = true
		if i == 5 {
			if tk.ID != "explicit" || ci.indexed[i] {
				t.Fatalf("explicit task: id %s indexed %v", tk.ID, ci.indexed[i])
			}
			continue
		}
		g, ok := plan.ParseGeneratedID(tk.ID)
		if !ok || g.Millis != now.UnixMilli() || g.Nonce != ci.nonce || g.Chunk != ci.chunk[i] {
			t.Fatalf("task %d: id %s decodes to %+v %v, chunk %d", i, tk.ID, g, ok, ci.chunk[i])
		}
		if want := i != 7; ci.indexed[i] != want {
			t.Fatalf("task %d indexed %v, want %v", i, ci.indexed[i], want)
		}
	}
	if ci.chunk[99] != 0 || ci.chunk[100] != 1 || ci.chunk[121] != 1 || ci.chunk[122] != 2 {
		t.Fatalf("chunks %d %d %d %d", ci.chunk[99], ci.chunk[100], ci.chunk[121], ci.chunk[122])
	}
	if g, _ := plan.ParseGeneratedID(tasks[100].ID); g.Pos != 0 {
		t.Fatalf("first task of chunk 1 at position %d", g.Pos)
	}
	if ci.chunks != ci.chunk[229]+1 {
		t.Fatalf("%d chunks, last task in %d", ci.chunks, ci.chunk[229])
	}
}
