package devserver

import (
	"fmt"
	"io"
	"strings"

	"github.com/johannesboyne/gofakes3"
	"github.com/rs/zerolog"
	"github.com/sirupsen/logrus"
)

// routeLogrus sends goaws's logrus output to log at debug level. goaws logs
// through the global logrus logger, by default to stderr and in its own
// format; its messages include message bodies and a warning on every empty
// receive, so they are kept for debugging only. Nothing goes to stdout, which
// `dev` keeps for its export lines.
func routeLogrus(log zerolog.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	hooks := make(logrus.LevelHooks)
	if e := log.Debug(); e.Enabled() {
		e.Discard()
		hooks.Add(logrusHook{log})
		std.SetLevel(logrus.DebugLevel)
	} else {
		// Formatting is skipped below the level; goaws never logs at Panic.
		std.SetLevel(logrus.PanicLevel)
	}
	std.ReplaceHooks(hooks)
}

type logrusHook struct{ log zerolog.Logger }

func (h logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	h.log.Debug().Str("component", "goaws").Str("level_goaws", e.Level.String()).
		Msg(strings.TrimSpace(e.Message))
	return nil
}

// fakes3Log adapts gofakes3's logger: its per-request lines are debug chatter,
// its errors are internal failures worth seeing.
type fakes3Log struct{ log zerolog.Logger }

func (l fakes3Log) Print(level gofakes3.LogLevel, v ...interface{}) {
	msg := strings.TrimSpace(fmt.Sprintln(v...))
	switch level {
	case gofakes3.LogErr:
		l.log.Error().Str("component", "gofakes3").Msg(msg)
	case gofakes3.LogWarn:
		l.log.Warn().Str("component", "gofakes3").Msg(msg)
	default:
		l.log.Debug().Str("component", "gofakes3").Msg(msg)
	}
}

// warnWriter carries net/http's own error log (TLS junk, handler panics) to
// the zerolog logger instead of the standard logger's stderr.
type warnWriter struct{ log zerolog.Logger }

func (w warnWriter) Write(p []byte) (int, error) {
	w.log.Warn().Str("component", "http").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
