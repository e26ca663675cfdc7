package worker

import (
	"bytes"
	"context"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/taskiq-go/taskiq-go/s3results"
)

// Live output: while a command runs, the tail of its stdout and stderr is
// stored at each heartbeat, so that `taskiq-go logs -f` and the dashboard
// show it before the result exists. It is bounded: one PUT per running
// task per heartbeat and only when there is new output, one object per
// attempt (rewritten, so a task's LIST stays short), at most liveTailBytes
// of each stream in it, and at most liveReadBytes read from disk per
// heartbeat. Secrets are masked as in the final output. It runs on its own
// ticker beside the heartbeat loop and never delays it.

// liveTailBytes is how much of each stream the live object holds.
const liveTailBytes = 64 << 10

// liveReadBytes is the most read of one stream per heartbeat: a command
// printing faster than that has the middle of its output skipped (the
// result keeps all of it).
const liveReadBytes = 4 * liveTailBytes

// liveStore is the store call live output needs; a store without it (a
// test fake) gets no live output.
type liveStore interface {
	PutLive(ctx context.Context, l *s3results.LiveOutput) error
}

var _ liveStore = (*s3results.Store)(nil)

// startLive uploads r's live output until the returned stop is called.
func (w *Worker) startLive(r *run, stdout, stderr *capture, masks []string) (stop func()) {
	st, ok := w.store.(liveStore)
	if !ok || w.cfg.Heartbeat <= 0 {
		return func() {}
	}
	out, errs := newLiveStream(stdout, masks), newLiveStream(stderr, masks)
	// Stopping cancels an upload in flight: the attempt's end (and its
	// result) never waits for a tail that is about to be stale.
	bg, cancelAll := context.WithCancel(context.Background())
	done := bg.Done()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(w.cfg.Heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-r.stopC:
				return
			case <-tick.C:
			}
			a, b := out.poll(), errs.poll()
			if !a && !b {
				continue
			}
			l := &s3results.LiveOutput{ID: r.task.ID, Attempt: r.marker.Attempt, UpdatedAt: w.cfg.Now().UTC(),
				Stdout: out.snapshot(), Stderr: errs.snapshot()}
			ctx, cancel := context.WithTimeout(bg, w.cfg.Heartbeat)
			if err := st.PutLive(ctx, l); err != nil {
				r.log.Debug().Err(err).Msg("cannot store the live output")
			}
			cancel()
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancelAll(); wg.Wait() }) }
}

// liveStream follows one captured stream.
type liveStream struct {
	c    *capture
	read int64 // bytes of the file consumed
	m    *streamMasker
	tail []byte // the last liveTailBytes of the masked stream
	end  int64  // bytes of the masked stream so far
}

func newLiveStream(c *capture, masks []string) *liveStream {
	return &liveStream{c: c, m: newStreamMasker(masks)}
}

// poll reads what the command wrote since the last poll and reports
// whether the tail changed.
func (s *liveStream) poll() bool {
	fi, err := s.c.f.Stat()
	if err != nil || fi.Size() <= s.read {
		return false
	}
	size := fi.Size()
	if size-s.read > liveReadBytes {
		// Too much to read each heartbeat: skip to the last part. What
		// is skipped is counted as is (masking may shorten it).
		skip := size - liveTailBytes - s.read
		s.end += skip + int64(len(s.m.buf))
		s.read += skip
		s.tail = s.tail[:0]
		s.m.reset()
	}
	buf := make([]byte, size-s.read)
	n, err := s.c.f.ReadAt(buf, s.read)
	if err != nil && err != io.EOF {
		return false
	}
	s.read += int64(n)
	masked := s.m.write(buf[:n])
	if len(masked) == 0 {
		return false
	}
	s.end += int64(len(masked))
	s.tail = append(s.tail, masked...)
	if over := len(s.tail) - liveTailBytes; over > 0 {
		s.tail = append(s.tail[:0:0], s.tail[over:]...)
	}
	return true
}

func (s *liveStream) snapshot() s3results.LiveStream {
	return s3results.LiveStream{Offset: s.end - int64(len(s.tail)), Data: append([]byte(nil), s.tail...)}
}

// streamMasker replaces secrets in a stream given piece by piece, as
// maskCopy does for a whole file: an end of a piece that may be the start
// of a secret (at most len(longest)-1 bytes) waits for the next piece, so
// that a secret split between two is still found.
type streamMasker struct {
	pats [][]byte
	keep int
	buf  []byte
	// drop is how many bytes to leave out at the start of the next piece
	// after a reset: they may be the end of a secret whose start was
	// skipped.
	drop int
}

func newStreamMasker(secrets []string) *streamMasker {
	m := &streamMasker{}
	for _, s := range secrets {
		if s != "" {
			m.pats = append(m.pats, []byte(s))
			m.keep = max(m.keep, len(s)-1)
		}
	}
	sort.Slice(m.pats, func(i, j int) bool { return len(m.pats[i]) > len(m.pats[j]) })
	return m
}

func (m *streamMasker) reset() { m.buf, m.drop = nil, m.keep }

// write takes the next piece and returns the masked bytes that are ready.
func (m *streamMasker) write(p []byte) []byte {
	if m.drop > 0 {
		n := min(m.drop, len(p))
		p, m.drop = p[n:], m.drop-n
	}
	if len(m.pats) == 0 {
		return p
	}
	m.buf = append(m.buf, p...)
	var out []byte
	for {
		i, l := firstMatch(m.buf, m.pats)
		if i < 0 {
			break
		}
		out = append(out, m.buf[:i]...)
		out = append(out, maskText...)
		m.buf = m.buf[i+l:]
	}
	if cut := len(m.buf) - m.pending(); cut > 0 {
		out = append(out, m.buf[:cut]...)
		m.buf = append(m.buf[:0:0], m.buf[cut:]...)
	}
	return out
}

// pending is how many bytes at the end of buf must wait: the longest end
// that is the start of a secret (a line's newline is shown at once).
func (m *streamMasker) pending() int {
	for p := max(len(m.buf)-m.keep, 0); p < len(m.buf); p++ {
		for _, pat := range m.pats {
			if bytes.HasPrefix(pat, m.buf[p:]) {
				return len(m.buf) - p
			}
		}
	}
	return 0
}

// PutLive counts a live output write like every other store call; a store
// that cannot keep live output (a test fake) drops it.
func (c countedStore) PutLive(ctx context.Context, l *s3results.LiveOutput) error {
	ls, ok := c.s.(liveStore)
	if !ok {
		return nil
	}
	return c.note("put_live", ls.PutLive(ctx, l))
}
