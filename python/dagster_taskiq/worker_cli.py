"""``dagster-taskiq worker start|list|terminate``: taskiq-go workers for Dagster steps.

``worker start`` runs ``taskiq-go work`` with the connection settings of the
same YAML the executor takes (``-y``), this virtualenv first on its PATH and a
warm fork server (:mod:`dagster_taskiq.forkserver`) named by
``$DAGSTER_TASKIQ_FORKSERVER``, so that each step starts as a fork of a
process that has Dagster and the ``--preload`` code imported. The fork server
is restarted if it dies; SIGTERM or SIGINT is passed to ``taskiq-go work``
(graceful: running steps finish), and the fork server is stopped once the
worker has exited. ``-d`` detaches and logs to a file.

``worker list`` shows the live workers and their queues; ``worker terminate
WORKER...|--all`` asks workers to shut down gracefully through a stop request
they read at their next heartbeat.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dagster_taskiq.cli import TaskiqCli, TaskiqError
from dagster_taskiq.config import TaskiqSettings
from dagster_taskiq_step import FORKSERVER_ENV_VAR, PYTHON_ENV_VAR

#: How long `worker start` waits for a new fork server's socket.
#: What a Dagster step or run worker needs from the worker's environment,
#: passed on to tasks (taskiq-go gives tasks a clean environment otherwise):
#: the instance (DAGSTER_HOME), the code (PYTHONPATH, the virtualenv), the
#: fork server's socket, and for run workers, which submit their steps, the
#: connection and signing settings and the AWS credentials (IO managers and
#: compute log managers on S3 need those too).
STEP_PASS_ENV = (
    "DAGSTER_*",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "PYTHONUNBUFFERED",
    "VIRTUAL_ENV",
    "TASKIQ_GO_*",
    "AWS_*",
)
FORKSERVER_START_TIMEOUT = 60.0


def _say(message: str) -> None:
    print(f"dagster-taskiq: {message}", file=sys.stderr, flush=True)


def _resolve(value: Any) -> Any:
    if isinstance(value, Mapping) and set(value) == {"env"}:
        return os.environ.get(str(value["env"]))
    return value


def load_config(path: str | None) -> dict[str, Any]:
    """The executor's config from a YAML file: the config itself, a run config
    (``execution: config:``), or a dagster.yaml (``run_launcher: config:``)."""
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, Mapping):
        raise TaskiqError(f"dagster-taskiq: {path} is not a YAML mapping")
    for outer in ("execution", "run_launcher"):
        if isinstance(data.get(outer), Mapping):
            data = data[outer]
            break
    if isinstance(data.get("config"), Mapping):
        data = data["config"]
    return {str(k): _resolve(v) for k, v in data.items()}


def make_cli(args: argparse.Namespace) -> TaskiqCli:
    """The TaskiqCli for the settings of ``-y`` and ``--binary``."""
    config = load_config(args.config)
    if args.binary:
        config["binary"] = args.binary
    return TaskiqSettings.from_config(config).make_cli()


# -- worker start -------------------------------------------------------------------------


def _reachable(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


class WorkerProcesses:
    """The fork server and ``taskiq-go work`` of one ``worker start``."""

    def __init__(self, args: argparse.Namespace, cli: TaskiqCli) -> None:
        self.args = args
        self.cli = cli
        self._dir = tempfile.mkdtemp(prefix="dagster-taskiq-")
        self.socket_path = os.path.join(self._dir, "forkserver.sock")
        self.server: subprocess.Popen[bytes] | None = None
        self.work: subprocess.Popen[bytes] | None = None
        self._signals = 0

    def forkserver_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "dagster_taskiq.forkserver", "--socket", self.socket_path]
        for name in self.args.preload:
            argv += ["--preload", name]
        for path in self.args.watch:
            argv += ["--watch", path]
        if self.args.max_tasks_per_child:
            argv += ["--max-tasks-per-child", str(self.args.max_tasks_per_child)]
        return argv

    def start_forkserver(self, wait: bool) -> None:
        self.server = subprocess.Popen(self.forkserver_argv(), stdin=subprocess.DEVNULL)
        if not wait:
            return
        deadline = time.monotonic() + FORKSERVER_START_TIMEOUT
        while not _reachable(self.socket_path):
            if self.server.poll() is not None:
                raise TaskiqError(f"dagster-taskiq: the fork server exited {self.server.returncode} on start")
            if time.monotonic() > deadline:
                raise TaskiqError(f"dagster-taskiq: the fork server did not listen within {FORKSERVER_START_TIMEOUT}s")
            time.sleep(0.05)

    def work_argv(self) -> list[str]:
        argv = ["work"]
        for name in (*STEP_PASS_ENV, *self.args.pass_env):
            argv += ["--pass-env", name]
        if self.args.worker_id:
            argv += ["--worker-id", self.args.worker_id]
        if self.args.concurrency:
            argv += ["--concurrency", str(self.args.concurrency)]
        for q in self.args.queue:
            argv += ["--queue", q]
        return argv + list(self.args.work_args)

    def work_env(self) -> dict[str, str]:
        path = [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        env = {PYTHON_ENV_VAR: sys.executable}
        if not self.args.cold:
            env[FORKSERVER_ENV_VAR] = self.socket_path
            # Steps find the binary's native client first: the same protocol,
            # without a Python interpreter's start (measured, 70 ms of CPU a step).
            # A worker's allowlist that names the Python client's exact path
            # allows the link too: taskiq-go matches it as the command it
            # shadows, the Python client next on this PATH (worker/trust.go).
            link = None if self.args.python_client else self.cli.link_step_client(os.path.join(self._dir, "bin"))
            if link:
                path.insert(0, os.path.dirname(link))
                _say(f"steps start through taskiq-go's native client {os.path.realpath(link)}")
            else:
                _say("steps start through the Python client dagster-taskiq-step")
        env["PATH"] = os.pathsep.join(path)
        return env

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1
        if self.work is not None and self.work.poll() is None:
            self.work.send_signal(signum)

    def run(self) -> int:
        if not os.environ.get("DAGSTER_HOME"):
            _say("warning: DAGSTER_HOME is not set; steps need the instance's dagster.yaml")
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._on_signal)
        try:
            if not self.args.cold:
                self.start_forkserver(wait=True)
            self.work = self.cli.spawn(self.work_argv(), env=self.work_env())
            _say(
                f"worker started: taskiq-go work pid {self.work.pid}"
                + ("" if self.args.cold else f", fork server pid {self.server.pid if self.server else 0}")
            )
            while self.work.poll() is None:
                if self.server is not None and self.server.poll() is not None and not self._signals:
                    _say(f"the fork server exited {self.server.returncode}: starting another")
                    self.start_forkserver(wait=False)
                time.sleep(0.2)
            return self.work.returncode
        finally:
            self.stop()

    def stop(self) -> None:
        if self.work is not None and self.work.poll() is None:
            self.work.terminate()
            self.work.wait()
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def _detach(argv: Sequence[str], log_file: str) -> int:
    """Starts this command again without -d, in its own session, logging to log_file."""
    child = [a for a in argv if a not in ("-d", "--detach")]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster_taskiq.worker_cli", *child],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    print(json.dumps({"pid": proc.pid, "log": os.path.abspath(log_file)}))
    return 0


def cmd_start(args: argparse.Namespace, argv: Sequence[str]) -> int:
    cli = make_cli(args)  # fails here, before detaching, on a bad config
    if args.detach:
        log = args.log_file or f"dagster-taskiq-worker-{args.worker_id or os.getpid()}.log"
        return _detach(argv, log)
    return WorkerProcesses(args, cli).run()


# -- worker list / terminate --------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    workers = make_cli(args).workers()
    if args.json:
        for w in workers:
            print(json.dumps(w, separators=(",", ":")))
        return 0
    rows = [("WORKER", "HOST", "STATE", "QUEUES", "SLOTS", "RUNNING")]
    for w in workers:
        running = w.get("running") or []
        rows.append(
            (
                str(w.get("worker", "")),
                str(w.get("host", "")),
                "stale" if w.get("stale") else "live",
                ",".join(w.get("queues") or []),
                f"{len(running)}/{w.get('concurrency', 0)}",
                ",".join(running) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    return 0


def cmd_terminate(args: argparse.Namespace) -> int:
    if bool(args.workers) == bool(args.all):
        raise SystemExit("dagster-taskiq worker terminate: name WORKER ids or --all, not both")
    for req in make_cli(args).stop_workers(args.workers, all_workers=args.all):
        print(f"{req.get('worker')}: asked to stop; it finishes its running steps first")
    return 0


# -- the command line ------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """``dagster-taskiq``'s command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-y", "--config", help="YAML with the executor's config (or a run config / dagster.yaml)")
    common.add_argument("--binary", help="taskiq-go binary (default: the config's, $TASKIQ_GO_BIN, PATH)")

    p = argparse.ArgumentParser(prog="dagster-taskiq", description="taskiq-go workers for Dagster steps")
    top = p.add_subparsers(dest="group", required=True)
    worker = top.add_parser("worker", help="start, list or stop workers")
    sub = worker.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", parents=[common], help="start a worker with a warm fork server")
    start.add_argument("-q", "--queue", action="append", default=[], help="queue to serve (repeatable)")
    start.add_argument("-d", "--detach", action="store_true", help="run in the background, logging to --log-file")
    start.add_argument("--log-file", help="log of a detached worker")
    start.add_argument("-n", "--worker-id", help="worker id (default: taskiq-go's)")
    start.add_argument("-c", "--concurrency", type=int, help="slots (default: taskiq-go's)")
    start.add_argument(
        "--preload", action="append", default=[], metavar="MODULE|FILE", help="code to import warm (repeatable)"
    )
    start.add_argument("--watch", action="append", default=[], metavar="PATH", help="restart warm code on change")
    start.add_argument("--max-tasks-per-child", type=int, default=0, metavar="N", help="recycle warm code after N")
    start.add_argument("--cold", action="store_true", help="no fork server: every step starts a fresh interpreter")
    start.add_argument(
        "--python-client",
        action="store_true",
        help="hand steps to the fork server with the Python client, not taskiq-go's native one",
    )
    start.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="also pass the worker's variable NAME (or glob) to steps, beyond " + ", ".join(STEP_PASS_ENV),
    )
    start.add_argument("work_args", nargs=argparse.REMAINDER, help="after --: more `taskiq-go work` flags")

    lst = sub.add_parser("list", parents=[common], help="show live workers and their queues")
    lst.add_argument("--json", action="store_true", help="one JSON object per worker")

    term = sub.add_parser("terminate", parents=[common], help="ask workers to shut down gracefully")
    term.add_argument("workers", nargs="*", metavar="WORKER")
    term.add_argument("--all", action="store_true", help="every live worker")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dagster-taskiq`` console script."""
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(raw)
    if getattr(args, "work_args", None) and args.work_args[0] == "--":
        args.work_args = args.work_args[1:]
    try:
        if args.command == "start":
            return cmd_start(args, raw)
        if args.command == "list":
            return cmd_list(args)
        return cmd_terminate(args)
    except TaskiqError as exc:
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
