package worker

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/taskiq-go/taskiq-go/plan"
)

// TailBytes is how much of a stream is kept inline as its tail when the
// whole stream is stored as a log object.
const TailBytes = 4096

// capture is one output stream of a running command, written straight to a
// temporary file so that a command printing gigabytes costs disk, not memory,
// and so that Wait does not depend on grandchildren closing a pipe.
type capture struct {
	f *os.File
}

func newCapture(dir string) (*capture, error) {
	f, err := os.CreateTemp(dir, "taskiq-out-*")
	if err != nil {
		return nil, err
	}
	// Unlinked at once: the file lives as long as the descriptor.
	_ = os.Remove(f.Name())
	return &capture{f: f}, nil
}

func (c *capture) close() { _ = c.f.Close() }

// store turns the captured bytes into an Output: inline when small and valid
// UTF-8 (JSON strings cannot carry other bytes exactly), else a log object.
// Every occurrence of a masks value (the task's secrets) is replaced first.
func (c *capture) store(ctx context.Context, st Store, id string, attempt int, stream string, inlineLimit int64, masks []string) (plan.Output, error) {
	if len(masks) > 0 {
		masked, err := maskFile(c.f, filepath.Dir(c.f.Name()), masks)
		if err != nil {
			return plan.Output{}, err
		}
		_ = c.f.Close()
		c.f = masked
	}
	size, err := c.f.Seek(0, io.SeekEnd)
	if err != nil {
		return plan.Output{}, err
	}
	out := plan.Output{Size: size}
	if size == 0 {
		return out, nil
	}
	tailStart := max(size-TailBytes, 0)
	tail := make([]byte, size-tailStart)
	if _, err := c.f.ReadAt(tail, tailStart); err != nil && err != io.EOF {
		return out, err
	}
	if size <= inlineLimit {
		if utf8.Valid(tail) && tailStart == 0 {
			out.Data = string(tail)
			return out, nil
		}
	}
	out.Tail = validTail(tail)
	if _, err := c.f.Seek(0, io.SeekStart); err != nil {
		return out, err
	}
	key, err := st.PutLog(ctx, id, attempt, stream, io.NewSectionReader(c.f, 0, size), size)
	if err != nil {
		return out, err
	}
	out.Key = key
	return out, nil
}

// validTail drops a partial rune at the start and replaces invalid bytes, so
// the tail can travel in JSON.
func validTail(b []byte) string {
	for i := 0; i < len(b) && i < utf8.UTFMax; i++ {
		if utf8.RuneStart(b[i]) {
			b = b[i:]
			break
		}
	}
	return string([]rune(string(b)))
}
