package devserver

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// chunkedReader removes the aws-chunked framing an SDK uses for a streaming
// upload (x-amz-content-sha256: STREAMING-...): hex-size[;chunk-signature=...]
// CRLF data CRLF, ending with a zero-size chunk and optional trailers. The
// seed signature of the request is verified; the chunk signatures and the
// trailing checksums are not.
type chunkedReader struct {
	br   *bufio.Reader
	left int64 // bytes left in the current chunk
	done bool
	err  error
}

func newChunkedReader(r io.Reader) *chunkedReader {
	return &chunkedReader{br: bufio.NewReaderSize(r, 16<<10)}
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
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if c.left == 0 && err == nil {
		if crlf, e := c.line(); e != nil || crlf != "" {
			err = errChunk
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
	size, _, _ := strings.Cut(head, ";")
	n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
	if err != nil || n < 0 {
		return errChunk
	}
	if n > 0 {
		c.left = n
		return nil
	}
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
	}
	c.done = true
	return nil
}
