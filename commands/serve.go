package commands

import (
	"context"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/ops"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/serve"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "answer submit, poll, wait, cancel and result requests as JSON lines on stdin/stdout",
		Description: "A co-process for programs that call taskiq-go often (the Dagster integration): one\n" +
			"process start, one set of AWS clients, many calls. Each input line is a request\n\n" +
			"   {\"id\":1,\"op\":\"submit\",\"args\":{\"spec\":{\"argv\":[\"echo\",\"hi\"]}}}\n\n" +
			"with op one of submit (args spec or batch, the documents of --spec and --batch), poll,\n" +
			"wait and cancel (args ids or group; wait also timeout and interval, cancel reason),\n" +
			"result (args id) and version (no args: what version --json prints). Each answer is\n" +
			"one line, {\"id\":1,\"ok\":...} with what the command prints with --json, or\n" +
			"{\"id\":1,\"error\":{\"code\":N,\"message\":\"...\"}} with N its exit code.\n" +
			"Requests run concurrently and are answered as they finish. It exits 0 once stdin is\n" +
			"closed and every request read has been answered.",
		Flags: append(withConn(
			&cli.BoolFlag{Name: "stdio", Usage: "serve on stdin and stdout (the only transport)"},
			&cli.IntFlag{Name: "concurrency", Value: serve.DefaultLimit, Usage: "answer at most `N` requests at once"},
		), signingFlags()...),
		Action: func(cliContext *cli.Context) error {
			if !cliContext.Bool("stdio") {
				return usagef("serve needs --stdio")
			}
			if cliContext.Args().Present() {
				return usagef("serve takes no arguments")
			}
			longRunning()
			s, err := resolveSettings(cliContext)
			if err != nil {
				return err
			}
			if err := s.needBucket(); err != nil {
				return err
			}
			ctx, _, stop := commandContext(cliContext)
			defer stop()
			be, err := s.open(ctx, 0)
			if err != nil {
				return err
			}
			signer, err := resolveSigningKey(cliContext)
			if err != nil {
				return err
			}
			srv := &serve.Server{Ops: &serveOps{s: s, be: be, signer: signer}, Code: codeFor, Message: message, Limit: cliContext.Int("concurrency"), Version: versionInfo()}
			in := cliContext.App.Reader
			if in == nil {
				in = os.Stdin
			}
			return srv.Serve(ctx, in, cliContext.App.Writer)
		},
	}
}

// serveOps are the commands' operations behind serve's requests.
type serveOps struct {
	s      *Settings
	be     *backend.Backend
	signer *plan.SigningKey
}

var _ serve.Ops = (*serveOps)(nil)

func (o *serveOps) Submit(ctx context.Context, tasks []*plan.Task) (any, error) {
	out, err := ops.Submit(ctx, o.be, ops.SubmitOptions{Tasks: tasks, InboxURL: o.s.InboxURL, Now: time.Now(), Signer: o.signer})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (o *serveOps) Poll(ctx context.Context, ids []string, group string) ([]plan.Status, error) {
	return ops.Poll(ctx, o.be, ops.PollOptions{IDs: ids, Group: group})
}

func (o *serveOps) Watch(ctx context.Context, ids []string, group string) (serve.Watcher, error) {
	ids, err := ops.TaskIDs(ctx, o.be, ids, group)
	if err != nil {
		return nil, err
	}
	return ops.NewPoller(o.be, ids), nil
}

func (o *serveOps) Cancel(ctx context.Context, ids []string, group, reason string) (any, error) {
	out, _, err := ops.Cancel(ctx, o.be, ops.CancelOptions{IDs: ids, Group: group, Reason: reason}, time.Now())
	return out, err
}

func (o *serveOps) Result(ctx context.Context, id string) (*plan.Result, error) {
	return ops.Result(ctx, o.be, ops.ResultOptions{ID: id})
}
