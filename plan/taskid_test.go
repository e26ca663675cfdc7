package plan

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// A call's ids are valid UUIDv7s carrying the call's time, and decode to
// the nonce, chunk and position they were made from.
func TestCallIDRoundTrip(t *testing.T) {
	now := time.UnixMilli(1_780_000_000_123)
	nonce := uint64(nonceMask) ^ 0x2aaaaaaaaaaaaa
	for _, c := range [][2]int{{0, 0}, {0, 99}, {1, 0}, {MaxIDChunks - 1, MaxIDPos - 1}, {300, 64}} {
		id, ok := CallID(now, nonce, c[0], c[1])
		if !ok {
			t.Fatalf("CallID(%v) not ok", c)
		}
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != id {
			t.Fatalf("%s: not a canonical UUIDv7 (%v, version %d, variant %v)", id, err, u.Version(), u.Variant())
		}
		if sec, nsec := u.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != now.UnixMilli() {
			t.Fatalf("%s: time %d, want %d", id, time.Unix(sec, nsec).UnixMilli(), now.UnixMilli())
		}
		g, ok := ParseGeneratedID(id)
		if want := (GeneratedID{now.UnixMilli(), nonce, c[0], c[1]}); !ok || g != want {
			t.Fatalf("%s decodes to %+v %v, want %+v", id, g, ok, want)
		}
	}
	for _, c := range [][2]int{{-1, 0}, {MaxIDChunks, 0}, {0, MaxIDPos}, {0, -1}} {
		if _, ok := CallID(now, nonce, c[0], c[1]); ok {
			t.Fatalf("CallID(%v) ok, want out of range", c)
		}
	}
}

// Ids of a call sort in submit order; calls get different nonces.
func TestCallIDsOrderAndNonces(t *testing.T) {
	now := time.Now()
	n1, _ := NewNonce()
	n2, _ := NewNonce()
	if n1 == n2 || n1 > nonceMask {
		t.Fatalf("nonces %x %x", n1, n2)
	}
	prev := ""
	for c := range 3 {
		for p := range MaxIDPos {
			id, _ := CallID(now, n1, c, p)
			if id <= prev {
				t.Fatalf("%s after %s", id, prev)
			}
			prev = id
		}
	}
}

// What is not a canonical UUIDv7 does not decode.
func TestParseGeneratedIDRefuses(t *testing.T) {
	v7 := uuid.Must(uuid.NewV7()).String()
	for _, id := range []string{
		"", "rq-0001", uuid.NewString(), // a v4
		"019ab0c1-2d3e-7f40-8a5b-6c7d8e9fa0b1x",
		"019AB0C1-2D3E-7F40-8A5B-6C7D8E9FA0B1", // upper case
		"019ab0c1-2d3e-7f40-ca5b-6c7d8e9fa0b1", // variant 110
		"019ab0c12d3e-7f40-8a5b-6c7d8e9fa0b1-",
		"019ab0c1-2d3e-7f40-8a5b-6c7d8e9fa0g1",
	} {
		if _, ok := ParseGeneratedID(id); ok {
			t.Errorf("%q decodes", id)
		}
	}
	if _, ok := ParseGeneratedID(v7); !ok {
		t.Errorf("a UUIDv7 made elsewhere (%s) does not decode", v7)
	}
}

// FuzzParseGeneratedID: ids come from users. Whatever decodes is exactly
// the id its fields encode again, so that it names one index chunk.
func FuzzParseGeneratedID(f *testing.F) {
	id, _ := CallID(time.UnixMilli(1_780_000_000_000), 12345, 7, 9)
	for _, s := range []string{id, "", "rq-1", uuid.NewString(), "00000000-0000-7000-8000-000000000000",
		"ffffffff-ffff-7fff-bfff-ffffffffffff", "0123456789abcdef0123456789abcdef0123"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, ok := ParseGeneratedID(s)
		if !ok {
			return
		}
		back, ok := CallID(time.UnixMilli(g.Millis), g.Nonce, g.Chunk, g.Pos)
		if !ok || back != s {
			t.Fatalf("%q decodes to %+v, which encodes to %q (%v)", s, g, back, ok)
		}
	})
}
