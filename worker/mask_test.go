package worker

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

func TestMaskCopy(t *testing.T) {
	cases := []struct{ in, want string }{
		{"pw=hunter2\n", "pw=***\n"},
		{"hunter2hunter2", "******"},
		{"no secret here", "no secret here"},
		{"token-abc and hunter2", "*** and ***"},
		{"hunter", "hunter"},
		{"", ""},
	}
	for _, c := range cases {
		for _, r := range []func(string) *strings.Reader{strings.NewReader} {
			var out bytes.Buffer
			// One byte per read: every occurrence is split across reads.
			if err := maskCopy(&out, iotest.OneByteReader(r(c.in)), []string{"hunter2", "token-abc", ""}); err != nil {
				t.Fatal(err)
			}
			if out.String() != c.want {
				t.Errorf("maskCopy(%q) = %q, want %q", c.in, out.String(), c.want)
			}
		}
	}
	// A secret that contains another is masked whole.
	var out bytes.Buffer
	if err := maskCopy(&out, strings.NewReader("abcdef"), []string{"cd", "abcdef"}); err != nil || out.String() != "***" {
		t.Errorf("nested: %q %v", out.String(), err)
	}
	// Large input across many chunks.
	big := strings.Repeat("x", 200<<10) + "hunter2" + strings.Repeat("y", 100<<10)
	out.Reset()
	if err := maskCopy(&out, strings.NewReader(big), []string{"hunter2"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "hunter2") || out.Len() != len(big)-len("hunter2")+3 {
		t.Errorf("big: length %d", out.Len())
	}
}
