package plan

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// A generated task id is an RFC 9562 UUIDv7 whose bits also say where the
// task's record is: its timestamp is the submit call's time in
// milliseconds, and its 74 "random" bits hold the call's nonce (58 bits,
// random), the index chunk of the call that carries the task's record
// (9 bits) and the task's position in that chunk (7 bits). A reader so
// finds a queued task's record with one GET of a key computed from the id
// (s3results.Keys.IndexChunk), without a LIST. Ids of one call share the
// timestamp and nonce and differ in chunk or position, so they are unique
// within the call and sort in submit order; ids of two calls differ in
// time or nonce. An id that does not decode (any explicit id, most
// strings) simply has no index chunk to look in; one that decodes but was
// not generated this way (a UUIDv7 made elsewhere) names a chunk that
// does not hold it.
type GeneratedID struct {
	// Millis is the submit call's time, in Unix milliseconds (48 bits).
	Millis int64
	// Nonce keeps apart calls made in the same millisecond (NonceBits bits).
	Nonce uint64
	// Chunk is the index chunk of the call (below MaxIDChunks); Pos the
	// task's position in it (below MaxIDPos).
	Chunk, Pos int
}

const (
	// NonceBits is how many random bits a call's nonce has.
	NonceBits = 58
	// MaxIDChunks bounds the index chunks of one call that ids can name;
	// the tasks of a larger call get plain ids (and their own records).
	MaxIDChunks = 1 << 9
	// MaxIDPos bounds the tasks of one index chunk that ids can name.
	MaxIDPos = 1 << 7

	nonceMask = 1<<NonceBits - 1
	maxMillis = 1<<48 - 1
)

// NewNonce returns a random call nonce.
func NewNonce() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("generate a nonce: %w", err)
	}
	return binary.BigEndian.Uint64(b[:]) & nonceMask, nil
}

// CallID is the id of position pos in chunk of the call made at now with
// nonce; ok is false when these cannot be encoded (a chunk or position out
// of range, a time outside the 48-bit millisecond range).
func CallID(now time.Time, nonce uint64, chunk, pos int) (string, bool) {
	g := GeneratedID{Millis: now.UnixMilli(), Nonce: nonce, Chunk: chunk, Pos: pos}
	if g.Millis < 0 || g.Millis > maxMillis || nonce > nonceMask ||
		chunk < 0 || chunk >= MaxIDChunks || pos < 0 || pos >= MaxIDPos {
		return "", false
	}
	return g.String(), true
}

// String is the id in the canonical lowercase 8-4-4-4-12 form. g's fields
// must be in range (CallID checks them).
func (g GeneratedID) String() string {
	var u [16]byte
	ms := uint64(g.Millis)
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	// rand_a: the nonce's top 12 bits; rand_b: its other 46, the chunk and
	// the position.
	randA := g.Nonce >> 46
	randB := (g.Nonce&(1<<46-1))<<16 | uint64(g.Chunk)<<7 | uint64(g.Pos)
	u[6] = 0x70 | byte(randA>>8)
	u[7] = byte(randA)
	u[8] = 0x80 | byte(randB>>56)&0x3f
	for i := 9; i < 16; i++ {
		u[i] = byte(randB >> (8 * (15 - i)))
	}
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

// ParseGeneratedID reads where a generated id's record is. It accepts only
// a UUIDv7 in canonical lowercase form, so that the id it was given is the
// one String returns and the one an index chunk names.
func ParseGeneratedID(id string) (GeneratedID, bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return GeneratedID{}, false
	}
	var u [16]byte
	for i, r := range [][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}} {
		part := id[r[0]:r[1]]
		for _, c := range []byte(part) {
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return GeneratedID{}, false
			}
		}
		off := [...]int{0, 4, 6, 8, 10}[i]
		if _, err := hex.Decode(u[off:], []byte(part)); err != nil {
			return GeneratedID{}, false
		}
	}
	if u[6]>>4 != 7 || u[8]>>6 != 2 {
		return GeneratedID{}, false
	}
	var ms uint64
	for i := range 6 {
		ms = ms<<8 | uint64(u[i])
	}
	randA := uint64(u[6]&0x0f)<<8 | uint64(u[7])
	randB := uint64(u[8] & 0x3f)
	for i := 9; i < 16; i++ {
		randB = randB<<8 | uint64(u[i])
	}
	return GeneratedID{
		Millis: int64(ms),
		Nonce:  randA<<46 | randB>>16,
		Chunk:  int(randB>>7) & (MaxIDChunks - 1),
		Pos:    int(randB) & (MaxIDPos - 1),
	}, true
}
