package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// indexChunk is how many tasks one index object names at most: a listing
// reads a few small objects, and a batch of a thousand tasks costs ten
// PUTs, not a thousand. It must not exceed plan.MaxIDPos.
const indexChunk = 100

// indexChunkBytes bounds the records one index object carries, so that
// the GET a poll of a queued task makes stays small: a chunk is closed
// early when the next record would pass it.
const indexChunkBytes = 512 << 10

// callIndex is how one submit call's tasks are laid out in its history
// index: which chunk names each, and which are recorded there in full
// (generated ids that fit a message: they get no task.json).
type callIndex struct {
	at    time.Time
	nonce uint64
	// chunk is the chunk of each task; chunks the number of chunks.
	chunk  []int
	chunks int
	// indexed is set for the tasks whose record the chunk carries.
	indexed []bool
}

// layOut gives every task without an id a generated one that names its
// chunk and position (plan.CallID), and decides the chunks: up to
// indexChunk tasks each, and up to indexChunkBytes of records. A task too
// large for a message, or beyond the chunks an id can name, keeps a
// task.json of its own (the claim-check payload); its id is still
// generated. The size of a record does not depend on which generated id
// it carries, so it is measured with a stand-in id (and signature)
// before the real one is known.
func layOut(tasks []*plan.Task, now time.Time, signer *plan.SigningKey) (*callIndex, error) {
	nonce, err := plan.NewNonce()
	if err != nil {
		return nil, err
	}
	ci := &callIndex{at: now.UTC(), nonce: nonce, chunk: make([]int, len(tasks)), indexed: make([]bool, len(tasks))}
	stand, _ := plan.CallID(now, nonce, 0, 0)
	cur, count, bytes := 0, 0, 0
	for i, t := range tasks {
		generated := t.ID == ""
		size := 256 // an entry without a record, roughly
		inline := false
		if generated {
			t.ID, t.SubmittedAt = stand, now.UTC()
			if signer != nil {
				if err := signer.Sign(t); err != nil {
					return nil, fmt.Errorf("sign task: %w", err)
				}
			}
			body, err := json.Marshal(t)
			if err != nil {
				return nil, fmt.Errorf("encode task: %w", err)
			}
			inline = len(body) <= sqs.MaxBodyBytes
			if inline {
				size += len(body)
			}
		}
		if count == indexChunk || (count > 0 && bytes+size > indexChunkBytes) {
			cur, count, bytes = cur+1, 0, 0
		}
		ci.chunk[i] = cur
		if generated {
			id, ok := plan.CallID(now, nonce, cur, count)
			if !ok {
				u, err := uuid.NewV7()
				if err != nil {
					return nil, fmt.Errorf("generate task id: %w", err)
				}
				id = u.String()
			}
			t.ID, t.Sig = id, nil
			ci.indexed[i] = ok && inline
		}
		count++
		bytes += size
	}
	ci.chunks = cur + 1
	if len(tasks) == 0 {
		ci.chunks = 0
	}
	return ci, nil
}

// writeIndex records the tasks of a submit call in the history index:
// one object per chunk, carrying the full record of each task indexed
// (finished: id, time and signature set). It runs beside the records'
// writes, before anything is sent, so it names every task of the call,
// those submitted before included (a listing shows each id once, at its
// latest submit). It returns the chunks it wrote, for withdrawIndex.
func writeIndex(ctx context.Context, be *backend.Backend, tasks []*plan.Task, ci *callIndex) ([]int, error) {
	return putChunks(ctx, be, tasks, ci, nil)
}

// putChunks writes the chunks that hold a task not withdrawn (all chunks,
// when withdrawn is nil) with the tasks not withdrawn; a chunk left with
// none is deleted.
func putChunks(ctx context.Context, be *backend.Backend, tasks []*plan.Task, ci *callIndex, withdrawn []bool) ([]int, error) {
	byChunk := make([][]s3results.IndexEntry, ci.chunks)
	touched := make([]bool, ci.chunks)
	for i := range tasks {
		if withdrawn != nil && withdrawn[i] {
			touched[ci.chunk[i]] = true
		}
	}
	for i, t := range tasks {
		if withdrawn != nil && (withdrawn[i] || !touched[ci.chunk[i]]) {
			continue
		}
		e := s3results.IndexEntry{ID: t.ID, Queue: t.Queue, Group: t.Group, Labels: t.Labels, SubmittedAt: t.SubmittedAt}
		if ci.indexed[i] {
			rec, err := json.Marshal(t)
			if err != nil {
				return nil, fmt.Errorf("encode task %s: %w", t.ID, err)
			}
			e.Record = rec
		}
		byChunk[ci.chunk[i]] = append(byChunk[ci.chunk[i]], e)
	}
	var written []int
	for c, entries := range byChunk {
		switch {
		case withdrawn != nil && !touched[c]:
		case len(entries) == 0 && withdrawn != nil:
			_ = be.Store.DeleteIndex(ctx, ci.at, ci.nonce, c)
		case len(entries) > 0:
			b := &s3results.IndexBatch{At: ci.at, Tasks: entries}
			if err := be.Store.PutIndex(ctx, b, ci.nonce, c); err != nil {
				what := "the task history"
				if entries[0].Record != nil {
					what = "the tasks" // the chunk is their record
				}
				return written, fmt.Errorf("record %s: %w", what, err)
			}
			written = append(written, c)
		}
	}
	return written, nil
}

// withdrawIndex removes the index chunks of a submit call that sent
// nothing: none of its generated ids is then found.
func withdrawIndex(ctx context.Context, be *backend.Backend, ci *callIndex, chunks []int) {
	for _, c := range chunks {
		_ = be.Store.DeleteIndex(ctx, ci.at, ci.nonce, c)
	}
}

// unindex rewrites the index chunks of a submit call that sent only part
// of its tasks without those it withdrew (withdrawn[i]), so that poll finds
// none of them and the history does not list them. Only the chunks that
// held one are written again.
func unindex(ctx context.Context, be *backend.Backend, tasks []*plan.Task, ci *callIndex, withdrawn []bool) {
	_, _ = putChunks(ctx, be, tasks, ci, withdrawn)
}
