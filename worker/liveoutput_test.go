package worker

import (
	"bytes"
	"strings"
	"testing"
)

// A secret split between two pieces is masked, and the masked stream is
// the same as maskCopy makes of the whole.
func TestStreamMaskerSplitSecret(t *testing.T) {
	secrets := []string{"hunter2", "token-abc"}
	in := "pw=hunter2 and token-abc, hunter2hunter2 end"
	var whole bytes.Buffer
	if err := maskCopy(&whole, strings.NewReader(in), secrets); err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut <= len(in); cut++ {
		m := newStreamMasker(secrets)
		got := string(m.write([]byte(in[:cut]))) + string(m.write([]byte(in[cut:]))) + string(m.buf)
		if got != whole.String() {
			t.Errorf("cut at %d: got %q, want %q", cut, got, whole.String())
		}
		if strings.Contains(got, "hunter2") {
			t.Errorf("cut at %d: secret shown: %q", cut, got)
		}
	}
	// Only what may start a secret waits: a line's end is shown at once.
	m := newStreamMasker(secrets)
	if got := string(m.write([]byte("pw=hunter2\nnext hun"))); got != "pw=***\nnext " {
		t.Errorf("ready = %q, want the text up to the possible start of a secret", got)
	}
}

// The live tail keeps the last liveTailBytes, reports its offset in the
// stream, and reports no change when nothing new was written.
func TestLiveStreamTail(t *testing.T) {
	c, err := newCapture(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	s := newLiveStream(c, nil)
	if s.poll() {
		t.Fatal("poll of an empty stream reported a change")
	}
	c.f.WriteString("hello\n")
	if !s.poll() {
		t.Fatal("poll missed new output")
	}
	if got := s.snapshot(); got.Offset != 0 || string(got.Data) != "hello\n" {
		t.Fatalf("snapshot = %d %q", got.Offset, got.Data)
	}
	if s.poll() {
		t.Fatal("poll reported a change without new output")
	}
	big := bytes.Repeat([]byte("x"), liveTailBytes)
	c.f.Write(big)
	s.poll()
	got := s.snapshot()
	if len(got.Data) != liveTailBytes || got.End() != int64(6+liveTailBytes) || got.Offset != 6 {
		t.Fatalf("after a large write: offset %d, %d bytes, end %d", got.Offset, len(got.Data), got.End())
	}
	// Faster than liveReadBytes a heartbeat: the middle is skipped, the
	// offsets still count it.
	c.f.Write(bytes.Repeat([]byte("y"), 2*liveReadBytes))
	s.poll()
	got = s.snapshot()
	fi, _ := c.f.Stat()
	if got.End() != fi.Size() || len(got.Data) != liveTailBytes || got.Data[0] != 'y' {
		t.Fatalf("after a skip: end %d of %d, %d bytes", got.End(), fi.Size(), len(got.Data))
	}
}
