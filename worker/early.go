package worker

import (
	"github.com/rs/zerolog"

	"github.com/taskiq-go/taskiq-go/supervisor"
)

// early is a task's supervisor started while its claim is out, with the
// files that will capture its command's output: the supervisor's start (a
// process exec) overlaps the claim's round trip instead of following it.
// It is handed the command only once the claim is won (execute); on every
// other path it is discarded, having run nothing.
type early struct {
	stdout, stderr *capture
	pend           *supervisor.Pending
}

// startEarly starts a supervisor for a task about to be claimed, or returns
// nil when it cannot: the attempt then starts one once it is claimed.
func (w *Worker) startEarly(log zerolog.Logger) *early {
	stdout, err := newCapture(w.cfg.TempDir)
	if err != nil {
		return nil
	}
	stderr, err := newCapture(w.cfg.TempDir)
	if err != nil {
		stdout.close()
		return nil
	}
	pend, err := supervisor.Prepare(stdout.f, stderr.f)
	if err != nil {
		log.Debug().Err(err).Msg("cannot start the supervisor ahead of the claim")
		stdout.close()
		stderr.close()
		return nil
	}
	return &early{stdout: stdout, stderr: stderr, pend: pend}
}

// take hands the supervisor and its capture files over to the attempt,
// which then owns them; nil when there are none (nothing was started, or it
// was discarded).
func (e *early) take() (*supervisor.Pending, *capture, *capture) {
	if e == nil || e.pend == nil {
		return nil, nil, nil
	}
	pend, stdout, stderr := e.pend, e.stdout, e.stderr
	e.pend, e.stdout, e.stderr = nil, nil, nil
	return pend, stdout, stderr
}

// discard ends the supervisor, which was handed nothing, and closes its
// capture files, unless the attempt took them.
func (e *early) discard() {
	pend, stdout, stderr := e.take()
	if pend == nil {
		return
	}
	pend.Discard()
	stdout.close()
	stderr.close()
}
