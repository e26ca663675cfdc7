package worker

import (
	"bytes"
	"io"
	"os"
	"sort"
)

// maskText is what a secret's value is replaced with in stored output.
const maskText = "***"

// maskFile returns a copy of f's contents with every occurrence of a
// secret value replaced by maskText, as a new unlinked temporary file, so
// that a task printing a secret does not put it in the store. It streams:
// memory stays bounded by the chunk size and the longest secret.
func maskFile(f *os.File, dir string, secrets []string) (*os.File, error) {
	out, err := os.CreateTemp(dir, "taskiq-masked-*")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(out.Name())
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		out.Close()
		return nil, err
	}
	if err := maskCopy(out, f, secrets); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// maskCopy copies r to w, replacing every occurrence of a secret with
// maskText. An occurrence split across two reads is found because the last
// len(longest)-1 bytes of each read wait for the next one.
func maskCopy(w io.Writer, r io.Reader, secrets []string) error {
	var pats [][]byte
	longest := 0
	for _, s := range secrets {
		if s != "" {
			pats = append(pats, []byte(s))
			longest = max(longest, len(s))
		}
	}
	// Longer first, so that a secret containing another is masked whole.
	sort.Slice(pats, func(i, j int) bool { return len(pats[i]) > len(pats[j]) })
	if len(pats) == 0 {
		_, err := io.Copy(w, r)
		return err
	}
	chunk := make([]byte, max(64<<10, 4*longest))
	var buf []byte
	for {
		n, rerr := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		eof := rerr == io.EOF
		if rerr != nil && !eof {
			return rerr
		}
		for {
			p, l := firstMatch(buf, pats)
			if p < 0 {
				break
			}
			if _, err := w.Write(buf[:p]); err != nil {
				return err
			}
			if _, err := io.WriteString(w, maskText); err != nil {
				return err
			}
			buf = buf[p+l:]
		}
		keep := longest - 1
		if eof {
			keep = 0
		}
		if cut := len(buf) - keep; cut > 0 {
			if _, err := w.Write(buf[:cut]); err != nil {
				return err
			}
			buf = append(buf[:0:0], buf[cut:]...)
		}
		if eof {
			return nil
		}
	}
}

// firstMatch finds the earliest occurrence of any pattern (the longest at
// that position) and returns its offset and length, or -1.
func firstMatch(b []byte, pats [][]byte) (int, int) {
	best, bestLen := -1, 0
	for _, p := range pats {
		if i := bytes.Index(b, p); i >= 0 && (best < 0 || i < best) {
			best, bestLen = i, len(p)
		}
	}
	return best, bestLen
}
