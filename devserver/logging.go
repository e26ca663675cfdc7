package devserver

import (
	"crypto/sha256"
	"hash"
	"strings"

	"github.com/rs/zerolog"
)

// warnWriter carries net/http's own error log (TLS junk, handler panics) to
// the zerolog logger instead of the standard logger's stderr.
type warnWriter struct{ log zerolog.Logger }

func (w warnWriter) Write(p []byte) (int, error) {
	w.log.Warn().Str("component", "http").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newSHA256() hash.Hash { return sha256.New() }
