package devserver

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Values of x-amz-content-sha256 for the aws-chunked framing of a streaming
// upload: with every chunk signed (a chain that starts at the request's
// seed signature), optionally with signed trailers, or unsigned with
// trailers (what the SDKs send over TLS with a trailing checksum).
const (
	streamingSigned          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// errChunkSignature is S3's answer to a chunk (or trailer) whose signature
// is missing or does not continue the chain.
var errChunkSignature = &s3Error{403, "SignatureDoesNotMatch",
	"The request signature we calculated does not match the signature you provided. Check your key and signing method."}

// chunkChain computes the signature chain of a signed aws-chunked body:
// each chunk's signature signs its data's hash and the previous signature,
// the first one the seed (the request's own signature), so that no chunk
// can be changed, dropped, reordered or added.
type chunkChain struct {
	key   []byte // the SigV4 signing key of the request's scope
	date  string // the request's X-Amz-Date
	scope string // DATE/REGION/s3/aws4_request
	prev  string // the last signature in the chain, hex
}

// newChunkChain starts the chain of a request signed with secret for a
// (its parsed Authorization header) at time amzDate.
func newChunkChain(secret string, a sigV4, amzDate string) *chunkChain {
	key := []byte("AWS4" + secret)
	for _, part := range []string{a.date, a.region, a.service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	return &chunkChain{key: key, date: amzDate, scope: a.date + "/" + a.region + "/" + a.service + "/aws4_request", prev: a.signature}
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// emptySHA256 is the hash of no bytes: a chunk's (empty) headers.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// next checks sig as the signature of the chunk whose data hashes to
// dataHash, and moves the chain on.
func (c *chunkChain) next(dataHash []byte, sig string) bool {
	want := hex.EncodeToString(hmacSHA256(c.key, strings.Join([]string{
		"AWS4-HMAC-SHA256-PAYLOAD", c.date, c.scope, c.prev, emptySHA256, hex.EncodeToString(dataHash)}, "\n")))
	c.prev = want
	return hmac.Equal([]byte(want), []byte(strings.ToLower(sig)))
}

// trailer checks sig as the signature of the trailing headers.
func (c *chunkChain) trailer(trailers map[string]string, sig string) bool {
	names := make([]string, 0, len(trailers))
	for k := range trailers {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		io.WriteString(h, k+":"+trailers[k]+"\n")
	}
	want := hex.EncodeToString(hmacSHA256(c.key, strings.Join([]string{
		"AWS4-HMAC-SHA256-TRAILER", c.date, c.scope, c.prev, hex.EncodeToString(h.Sum(nil))}, "\n")))
	return hmac.Equal([]byte(want), []byte(strings.ToLower(sig)))
}

// chunkedReader removes the aws-chunked framing an SDK uses for a streaming
// upload: hex-size[;chunk-signature=SIG] CRLF data CRLF, ending with a
// zero-size chunk and optional trailers (the trailing checksum, and with
// signed trailers x-amz-trailer-signature). With a chain, every chunk's
// signature is checked as its last byte is read, so that a PUT fails
// (and stores nothing) on the first chunk that was not signed with the
// endpoint's key; the trailing checksums themselves are not checked.
type chunkedReader struct {
	br    *bufio.Reader
	chain *chunkChain // nil: unsigned chunks
	// signedTrailer: the trailers end with x-amz-trailer-signature.
	signedTrailer bool
	left          int64     // bytes left in the current chunk
	sig           string    // the current chunk's claimed signature
	h             hash.Hash // the current chunk's data so far
	done          bool
	err           error
}

func newChunkedReader(r io.Reader, chain *chunkChain, signedTrailer bool) *chunkedReader {
	return &chunkedReader{br: bufio.NewReaderSize(r, 16<<10), chain: chain, signedTrailer: signedTrailer, h: sha256.New()}
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		if err := c.next(); err != nil {
			c.err = err
			return 0, err
		}
		if c.done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if c.chain != nil {
		c.h.Write(p[:n])
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if c.left == 0 && err == nil {
		if crlf, e := c.line(); e != nil || crlf != "" {
			err = errChunk
		} else if c.chain != nil && !c.chain.next(c.h.Sum(nil), c.sig) {
			err = errChunkSignature
		}
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

func (c *chunkedReader) line() (string, error) {
	s, err := c.br.ReadString('\n')
	if err != nil {
		if err == io.EOF {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// next reads a chunk header; at the last chunk it reads the trailers.
func (c *chunkedReader) next() error {
	head, err := c.line()
	if err != nil {
		return err
	}
	size, ext, _ := strings.Cut(head, ";")
	n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
	if err != nil || n < 0 {
		return errChunk
	}
	if c.chain != nil {
		sig, ok := strings.CutPrefix(strings.TrimSpace(ext), "chunk-signature=")
		if !ok || sig == "" {
			return errChunkSignature
		}
		c.sig = sig
		c.h.Reset()
	}
	if n > 0 {
		c.left = n
		return nil
	}
	if c.chain != nil && !c.chain.next(c.h.Sum(nil), c.sig) {
		return errChunkSignature
	}
	trailers := map[string]string{}
	trailerSig := ""
	for {
		t, err := c.line()
		if err != nil {
			// Some clients end the body right after the last chunk.
			if err == io.ErrUnexpectedEOF {
				break
			}
			return err
		}
		if t == "" {
			break
		}
		k, v, _ := strings.Cut(t, ":")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if k == "x-amz-trailer-signature" {
			trailerSig = v
			continue
		}
		trailers[k] = v
	}
	if c.chain != nil && c.signedTrailer && !c.chain.trailer(trailers, trailerSig) {
		return errChunkSignature
	}
	c.done = true
	return nil
}
