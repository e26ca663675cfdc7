package s3results

import (
	"context"
	"fmt"
	"time"

	"github.com/taskiq-go/taskiq-go/plan"
)

// LiveOutput is the tail of a running attempt's output, rewritten by its
// worker at a heartbeat when there is new output. It sits beside the
// attempt's full logs (PREFIX/tasks/ID/logs/N/live), so the worker's
// credential already may write it; one object per attempt, of bounded
// size, keeps a task's LIST short however long it runs.
type LiveOutput struct {
	V         int        `json:"v"`
	ID        string     `json:"id"`
	Attempt   int        `json:"attempt"`
	UpdatedAt time.Time  `json:"updated_at"`
	Stdout    LiveStream `json:"stdout"`
	Stderr    LiveStream `json:"stderr"`
}

// LiveStream is the last bytes of one stream (secrets masked): Data starts
// at byte Offset of the stream as it is stored at the end, so that a
// reader knows what it has printed already and what it missed.
type LiveStream struct {
	Offset int64  `json:"offset"`
	Data   []byte `json:"data"`
}

// End is the offset just past Data: how much of the stream exists.
func (l LiveStream) End() int64 { return l.Offset + int64(len(l.Data)) }

// Live is the key of an attempt's live output.
func (k Keys) Live(id string, attempt int) string {
	return k.join("tasks", id, "logs", fmt.Sprintf("%04d", attempt), "live")
}

// PutLive rewrites an attempt's live output.
func (s *Store) PutLive(ctx context.Context, l *LiveOutput) error {
	l.V = plan.Version
	return s.putJSON(ctx, s.keys.Live(l.ID, l.Attempt), l, false)
}

// GetLive reads an attempt's live output; ErrNoObject when the worker has
// stored none (yet).
func (s *Store) GetLive(ctx context.Context, id string, attempt int) (*LiveOutput, error) {
	var l LiveOutput
	if err := s.getJSON(ctx, s.keys.Live(id, attempt), &l); err != nil {
		return nil, err
	}
	return &l, nil
}
