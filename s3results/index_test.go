package s3results

import (
	"testing"
	"time"
)

// Index keys sort newest first and give back the time they were made at,
// to the millisecond.
func TestIndexKeysNewestFirst(t *testing.T) {
	k := Keys{Prefix: "p"}
	old := time.Date(2026, 12, 1, 10, 0, 0, 123e6, time.UTC)
	young := old.Add(time.Millisecond)
	a, b := k.Index(old, "zz"), k.Index(young, "aa")
	if !(b < a) {
		t.Fatalf("newer key %q does not sort before older %q", b, a)
	}
	if got, ok := k.indexTime(a); !ok || !got.Equal(old) {
		t.Fatalf("indexTime(%q) = %v %v, want %v", a, got, ok, old)
	}
	if _, ok := k.indexTime(k.IndexDir() + "junk"); ok {
		t.Fatal("a key not made by Index was read as one")
	}
}
