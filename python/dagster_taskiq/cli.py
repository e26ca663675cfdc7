"""The one place that runs the ``taskiq-go`` binary.

Every other module talks to taskiq-go through :class:`TaskiqCli`: it finds the
binary, passes settings through the subprocess environment, feeds JSON in,
parses JSON out, bounds each call with a timeout and turns a non-zero exit into
a :class:`TaskiqCliError` that carries the tool's stderr and exit code.

Calls go to one long-lived ``taskiq-go serve --stdio`` co-process per Python
process and connection (started on first use, started again when it dies):
a call costs a line written and a line read instead of a process start. The
subprocess path, one ``taskiq-go`` process per call, stays as the fallback:
``DAGSTER_TASKIQ_CLI=subprocess`` (or ``mode="subprocess"``) selects it. Both
raise the same exceptions with the tool's own message and exit code.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import DagsterError

#: Environment variable that names the binary when the config does not.
BINARY_ENV_VAR = "TASKIQ_GO_BIN"
BINARY_NAME = "taskiq-go"

INSTALL_HINT = (
    "`pip install dagster-taskiq` brings it on Linux and macOS (x86_64, arm64) in the "
    "environment's bin/; elsewhere build it with `go build -o bin/taskiq-go .` in the "
    f"taskiq-go source, then put it on PATH, set ${BINARY_ENV_VAR} to its path, or set "
    "`binary` in the dagster-taskiq config"
)

#: Environment variable choosing how calls are made: ``coprocess`` (the default) or ``subprocess``.
MODE_ENV_VAR = "DAGSTER_TASKIQ_CLI"
MODES = ("coprocess", "subprocess")

#: The wire-format version (Go's plan.Version) of the Task and Result records this
#: package writes and reads; a binary that speaks another one is warned about.
WIRE_VERSION = 1

#: What taskiq-go's own exit codes mean (sysexits style).
EXIT_CODES: Mapping[int, str] = {
    64: "usage error",
    65: "bad task or input data",
    66: "input file unreadable",
    67: "unknown task id",
    68: "queue or bucket does not exist",
    69: "cannot reach the endpoint",
    75: "not finished or wait timed out",
    77: "credentials missing or access denied",
    78: "configuration missing",
}
EXIT_UNKNOWN_TASK = 67
EXIT_UNREACHABLE = 69
EXIT_NOT_FINISHED = 75


class TaskiqError(DagsterError):
    """Base class of every error dagster-taskiq raises."""


class TaskiqBinaryNotFound(TaskiqError):
    """The taskiq-go binary could not be found or is not executable."""


class TaskiqCliError(TaskiqError):
    """taskiq-go exited non-zero; carries its exit code and stderr."""

    def __init__(self, command: Sequence[str], exit_code: int, stderr: str) -> None:
        self.command = list(command)
        self.exit_code = exit_code
        self.stderr = stderr.strip()
        meaning = EXIT_CODES.get(exit_code, "failed")
        detail = self.stderr or "(no output on stderr)"
        super().__init__(f"`taskiq-go {' '.join(command)}` exited {exit_code} ({meaning}): {detail}")


class TaskiqCliTimeout(TaskiqError):
    """A taskiq-go call did not finish within its timeout."""

    def __init__(self, command: Sequence[str], timeout: float) -> None:
        self.command = list(command)
        self.timeout = timeout
        super().__init__(f"`taskiq-go {' '.join(command)}` did not finish within {timeout:g}s")


@dataclass(frozen=True)
class WorkerInfo:
    """Which worker process ran (or runs) a task."""

    host: str = ""
    pid: int = 0
    id: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> WorkerInfo:
        data = data or {}
        return cls(host=str(data.get("host") or ""), pid=int(data.get("pid") or 0), id=str(data.get("id") or ""))

    def __str__(self) -> str:
        return f"{self.host}/{self.id}" if self.id else ""


#: Task states that no longer change (``dead_letter``: not until an operator
#: redrives the message with ``taskiq-go dlq redrive``).
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "timed_out", "dead_letter"})


@dataclass(frozen=True)
class TaskStatus:
    """One line of ``taskiq-go poll --json``."""

    id: str
    state: str
    exit_code: int | None = None
    worker: WorkerInfo = field(default_factory=WorkerInfo)
    attempt: int = 0
    group: str = ""
    error: str = ""
    heartbeat_at: str = ""
    finished_at: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskStatus:
        exit_code = data.get("exit_code")
        return cls(
            id=str(data["id"]),
            state=str(data["state"]),
            exit_code=int(exit_code) if exit_code is not None else None,
            worker=WorkerInfo.from_json(data.get("worker")),
            attempt=int(data.get("attempt") or 0),
            group=str(data.get("group") or ""),
            error=str(data.get("error") or ""),
            heartbeat_at=str(data.get("heartbeat_at") or ""),
            finished_at=str(data.get("finished_at") or ""),
        )

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class Submitted:
    """What ``taskiq-go submit --json`` prints."""

    id: str
    queue: str
    group: str


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the binary finds its queue and store; empty fields are left to its own defaults."""

    queue_url: str | None = None
    region_name: str | None = None
    endpoint_url: str | None = None
    bucket: str | None = None
    prefix: str | None = None
    config_file: str | None = None

    def to_env(self) -> dict[str, str]:
        # The binary's own variables win over the AWS SDK's; both are set so that
        # neither a stale TASKIQ_GO_* nor a stale AWS_* in the caller's env leaks in.
        pairs = {
            "TASKIQ_GO_QUEUE_URL": self.queue_url,
            "TASKIQ_GO_BUCKET": self.bucket,
            "TASKIQ_GO_PREFIX": self.prefix,
            "TASKIQ_GO_REGION": self.region_name,
            "AWS_REGION": self.region_name,
            "TASKIQ_GO_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "TASKIQ_GO_CONFIG": self.config_file,
        }
        return {k: v for k, v in pairs.items() if v}


def bundled_binary() -> str | None:
    """The binary a dagster-taskiq platform wheel installed beside this Python (its scripts dir)."""
    dirs = [sysconfig.get_path("scripts"), os.path.dirname(os.path.abspath(sys.executable))]
    for directory in dict.fromkeys(d for d in dirs if d):
        path = os.path.join(directory, BINARY_NAME)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find_binary(configured: str | None = None) -> str:
    """Resolves the binary: config ``binary``, then ``$TASKIQ_GO_BIN``, then the bundled one, then PATH."""
    candidates: list[tuple[str, str]] = []
    if configured:
        candidates.append(("config `binary`", configured))
    env_value = os.environ.get(BINARY_ENV_VAR)
    if env_value:
        candidates.append((f"${BINARY_ENV_VAR}", env_value))
    for source, value in candidates:
        path = shutil.which(value) if os.sep not in value else value
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
        raise TaskiqBinaryNotFound(
            f"taskiq-go binary not found: {source} is {value!r}, which is not an executable file; {INSTALL_HINT}"
        )
    found = bundled_binary() or shutil.which(BINARY_NAME)
    if found:
        return found
    raise TaskiqBinaryNotFound(
        f"taskiq-go binary not found: no `binary` in the config, ${BINARY_ENV_VAR} is unset "
        f"and `{BINARY_NAME}` is neither beside this Python nor on PATH; {INSTALL_HINT}"
    )


class _CoProcessDied(Exception):
    """The co-process ended before answering; the call may be made again on a new one."""


class CoProcess:
    """One ``taskiq-go serve --stdio``: requests written as lines, answers matched by id.

    Thread-safe: any thread may call; a reader thread hands each answer to
    the caller waiting on its id. Its stderr goes to a temporary file, so that
    a co-process that cannot start (a missing setting) is reported with the
    tool's own message.
    """

    def __init__(self, binary: str, env: Mapping[str, str]) -> None:
        self.binary = binary
        self._env = dict(env)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # request id -> (the process it was written to, its answer to be).
        self._pending: dict[int, tuple[subprocess.Popen[bytes], Future[dict[str, Any]]]] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self.starts = 0

    def _ensure(self) -> subprocess.Popen[bytes]:
        """The running process, started (again) if there is none; call with the lock held."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        stderr = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                [self.binary, "serve", "--stdio"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=self._env,
                start_new_session=True,  # a Ctrl-C of the orchestrator must not kill its calls mid-way
            )
        except OSError as exc:
            stderr.close()
            raise TaskiqBinaryNotFound(f"cannot run {self.binary}: {exc}; {INSTALL_HINT}") from exc
        self._proc, self._stderr = proc, stderr
        self.starts += 1
        threading.Thread(target=self._read, args=(proc, stderr), name="taskiq-go-serve", daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen[bytes], stderr: Any) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                answer = json.loads(raw)
                request_id = int(answer["id"])
            except (ValueError, KeyError, TypeError):
                continue  # an answer to no request of ours (a malformed line has id null)
            with self._lock:
                entry = self._pending.pop(request_id, None)
            if entry is not None:
                entry[1].set_result(answer)
        code = proc.wait()
        stderr.seek(0)
        tail = stderr.read()[-4000:].decode(errors="replace")
        stderr.close()
        with self._lock:
            if self._proc is proc:
                self._proc = None
            orphans = [f for rid, (p, f) in list(self._pending.items()) if p is proc]
            self._pending = {rid: e for rid, e in self._pending.items() if e[0] is not proc}
        for future in orphans:
            future.set_exception(_CoProcessDied(code, tail))

    def call(self, op: str, args: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """Sends one request and waits for its answer (the whole response object)."""
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            request_id = next(self._ids)
            line = json.dumps({"id": request_id, "op": op, "args": args}, separators=(",", ":")).encode() + b"\n"
            proc = self._ensure()
            self._pending[request_id] = (proc, future)
            try:
                assert proc.stdin is not None
                proc.stdin.write(line)
                proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                # It died; the reader fails every pending call (this one too) once it sees the end.
                pass
        try:
            return future.result(timeout)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(request_id, None)
            raise

    def close(self) -> None:
        """Closes the input: the co-process answers what it has read and exits."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None


_coprocesses: dict[tuple[str, tuple[tuple[str, str], ...]], CoProcess] = {}
_coprocesses_lock = threading.Lock()


#: Prefixes of the environment variables the binary reads its settings from.
SETTINGS_ENV_PREFIXES = ("TASKIQ_GO_", "AWS_")


def coprocess_key(binary: str, env: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What makes two co-processes interchangeable: the binary, the directory it
    reads a config file from, and every setting it takes from the environment."""
    settings = sorted((k, v) for k, v in env.items() if k.startswith(SETTINGS_ENV_PREFIXES))
    return (binary, (("", os.getcwd()), *settings))


def shared_coprocess(binary: str, env_overrides: Mapping[str, str]) -> CoProcess:
    """The co-process of this Python process for a binary and connection: one, shared by every caller.

    The key is the whole effective environment the binary would read, not only
    the overrides: a process that changes ``AWS_ENDPOINT_URL`` or a
    ``TASKIQ_GO_*`` setting gets a co-process that sees the change, instead of
    one started with the old value.
    """
    env = {**os.environ, **env_overrides}
    key = coprocess_key(binary, env)
    with _coprocesses_lock:
        found = _coprocesses.get(key)
        if found is None:
            found = _coprocesses[key] = CoProcess(binary, env)
        return found


def close_coprocesses() -> None:
    """Stops every co-process of this Python process (at exit, and in tests)."""
    with _coprocesses_lock:
        found = list(_coprocesses.values())
        _coprocesses.clear()
    for cp in found:
        cp.close()


def _forget_after_fork() -> None:
    # A forked child shares the parent's pipes; it starts its own co-process.
    global _coprocesses_lock
    _coprocesses.clear()
    _coprocesses_lock = threading.Lock()


atexit.register(close_coprocesses)
os.register_at_fork(after_in_child=_forget_after_fork)

class TaskiqVersionWarning(UserWarning):
    """The taskiq-go binary found speaks another wire version than this package."""


@dataclass(frozen=True)
class BinaryVersion:
    """What ``taskiq-go version --json`` prints."""

    version: str
    wire_version: int | None


class TaskiqCli:
    """Runs taskiq-go operations: JSON in and out, one timeout per call.

    ``connection`` is passed to the binary as environment variables, on top of
    the calling process's environment, so that the binary's own precedence
    (flags, environment, config file, defaults) still applies to the rest.
    ``mode`` is ``coprocess`` (the default, or ``$DAGSTER_TASKIQ_CLI``) or
    ``subprocess``.
    """

    def __init__(
        self,
        binary: str | None = None,
        connection: ConnectionSettings | None = None,
        timeout: float = 60.0,
        extra_env: Mapping[str, str] | None = None,
        mode: str | None = None,
    ) -> None:
        self.binary = find_binary(binary)
        self.connection = connection or ConnectionSettings()
        self.timeout = timeout
        self._extra_env = dict(extra_env or {})
        self.mode = (mode or os.environ.get(MODE_ENV_VAR) or "coprocess").strip().lower()
        if self.mode not in MODES:
            raise TaskiqError(f"dagster-taskiq: ${MODE_ENV_VAR} (or mode) is {self.mode!r}; use one of {', '.join(MODES)}")

    def _env_overrides(self) -> dict[str, str]:
        return {**self._extra_env, **self.connection.to_env()}

    @property
    def coprocess(self) -> CoProcess | None:
        """The shared co-process calls go to, None in subprocess mode."""
        if self.mode != "coprocess":
            return None
        return shared_coprocess(self.binary, self._env_overrides())

    # -- the one subprocess call -------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        stdin: str | None = None,
        timeout: float | None = None,
        ok_codes: Iterable[int] = (0,),
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``taskiq-go ARGS``; raises on a timeout or an exit code not in ok_codes."""
        limit = self.timeout if timeout is None else timeout
        env = {**os.environ, **self._env_overrides()}
        try:
            proc = subprocess.run(
                [self.binary, *args],
                input=stdin if stdin is not None else "",
                capture_output=True,
                text=True,
                env=env,
                timeout=limit,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TaskiqCliTimeout(args, limit) from exc
        except OSError as exc:
            raise TaskiqBinaryNotFound(f"cannot run {self.binary}: {exc}; {INSTALL_HINT}") from exc
        if proc.returncode not in set(ok_codes):
            raise TaskiqCliError(args, proc.returncode, proc.stderr)
        return proc

    # -- the one co-process call -------------------------------------------------

    def request(
        self, op: str, args: Mapping[str, Any], shown: Sequence[str], timeout: float | None = None
    ) -> Any:
        """One request to the co-process; its ``ok`` value, or the error as a TaskiqCliError.

        ``shown`` is the equivalent command line, for messages. Every request
        is safe to repeat (submits carry ids), so one that a dying co-process
        left unanswered is sent once more to a new one.
        """
        cp = self.coprocess
        assert cp is not None
        limit = self.timeout if timeout is None else timeout
        for attempt in (1, 2):
            try:
                answer = cp.call(op, args, limit)
                break
            except FutureTimeout as exc:
                raise TaskiqCliTimeout(shown, limit) from exc
            except _CoProcessDied as exc:
                code, stderr = exc.args
                if attempt == 2 or code in EXIT_CODES:
                    # It refused to start (a setting, the endpoint) or died twice: say why.
                    raise TaskiqCliError(["serve", "--stdio"], int(code), str(stderr) or f"co-process for {' '.join(shown)} ended") from None
        error = answer.get("error")
        if error:
            code = int(error.get("code") or 70)
            raise TaskiqCliError(shown, code, f"taskiq-go: {error.get('message') or ''}")
        return answer.get("ok")

    # -- commands ------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any], retries: int = 2) -> Submitted:
        """Queues one task (``submit --json --spec -``).

        A spec with an ``id`` is idempotent, so an unreachable endpoint or a
        timeout is retried with the same spec.
        """
        return self.submit_many([spec], retries)[0]

    def submit_many(self, specs: Sequence[Mapping[str, Any]], retries: int = 2) -> list[Submitted]:
        """Queues tasks together (``submit --json --batch -``), in batches per queue; one Submitted each."""
        if not specs:
            return []
        attempt = 0
        while True:
            try:
                objects = self._submit_once(specs)
                break
            except (TaskiqCliError, TaskiqCliTimeout) as exc:
                transient = isinstance(exc, TaskiqCliTimeout) or exc.exit_code == EXIT_UNREACHABLE
                if not (all(s.get("id") for s in specs) and transient and attempt < retries):
                    raise
                attempt += 1
                time.sleep(0.5 * attempt)
        try:
            return [
                Submitted(id=str(d["id"]), queue=str(d.get("queue") or ""), group=str(d.get("group") or ""))
                for d in objects
            ]
        except (KeyError, TypeError) as exc:
            raise TaskiqError(f"unexpected output from `taskiq-go submit --json`: {objects!r:.500}") from exc

    def _submit_once(self, specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if self.mode == "coprocess":
            args: dict[str, Any] = {"spec": specs[0]} if len(specs) == 1 else {"batch": list(specs)}
            shown = ["submit", "--json", "--spec" if len(specs) == 1 else "--batch", "-"]
            return list(self.request("submit", args, shown) or [])
        if len(specs) == 1:
            body = json.dumps(specs[0], separators=(",", ":"))
            return [_one_object(self.run(["submit", "--json", "--spec", "-"], stdin=body).stdout, "submit")]
        body = "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in specs)
        return _lines(self.run(["submit", "--json", "--batch", "-"], stdin=body).stdout)

    def poll(self, ids: Sequence[str]) -> list[TaskStatus]:
        """States of the given tasks, in the order the binary prints them."""
        if not ids:
            return []
        if self.mode == "coprocess":
            return _status_objects(self.request("poll", {"ids": list(ids)}, ["poll", "--json", *ids]))
        return _statuses(self.run(["poll", "--json", *ids]).stdout)

    def poll_group(self, group: str) -> list[TaskStatus]:
        """States of every task of a group (a Dagster run); empty for a group with no tasks."""
        if self.mode == "coprocess":
            try:
                return _status_objects(self.request("poll", {"group": group}, ["poll", "--json", "--group", group]))
            except TaskiqCliError as exc:
                if exc.exit_code == EXIT_UNKNOWN_TASK:
                    return []
                raise
        proc = self.run(["poll", "--json", "--group", group], ok_codes=(0, EXIT_UNKNOWN_TASK))
        return [] if proc.returncode == EXIT_UNKNOWN_TASK else _statuses(proc.stdout)

    def version(self) -> BinaryVersion:
        """The binary's version and wire version (None from a binary too old to say).

        Asked of the co-process when there is one (no process started), and
        of ``taskiq-go version --json`` when the co-process cannot answer: a
        binary older than the op, or one that cannot serve (which needs no
        settings to say its version).
        """
        data: Any = None
        if self.mode == "coprocess":
            try:
                data = self.request("version", {}, ["version", "--json"])
            except TaskiqCliError:
                data = None
        if not isinstance(data, dict):
            data = _one_object(self.run(["version", "--json"]).stdout, "version")
        wire = data.get("wire_version")
        return BinaryVersion(version=str(data.get("version") or ""), wire_version=int(wire) if wire is not None else None)

    def check_wire_version(self) -> BinaryVersion:
        """Warns (TaskiqVersionWarning) when the binary speaks another wire version than this package."""
        found = self.version()
        if found.wire_version != WIRE_VERSION:
            warnings.warn(
                TaskiqVersionWarning(
                    f"taskiq-go at {self.binary} (version {found.version or 'unknown'}) speaks wire version "
                    f"{found.wire_version if found.wire_version is not None else 'unknown'}, but this "
                    f"dagster-taskiq speaks {WIRE_VERSION}: tasks and results may be refused; install the "
                    "taskiq-go that comes with this dagster-taskiq"
                ),
                stacklevel=2,
            )
        return found

    def preflight(self) -> None:
        """Proves the settings work (config complete, endpoint reachable, store there) with one cheap poll."""
        try:
            self.poll_group("dagster-taskiq-preflight")
        except TaskiqCliError as exc:
            raise TaskiqCliError(
                exc.command, exc.exit_code, f"taskiq-go cannot reach its queue and store: {exc.stderr}"
            ) from exc

    def wait(self, ids: Sequence[str], timeout: float) -> list[TaskStatus]:
        """Waits up to ``timeout`` seconds for the tasks to end; returns their last states."""
        limit = f"{max(timeout, 0.001):.3f}s"
        if self.mode == "coprocess":
            args = {"ids": list(ids), "timeout": limit, "interval": "200ms"}
            shown = ["poll", "--json", "--wait", "--timeout", limit, *ids]
            return _status_objects(self.request("wait", args, shown, timeout=timeout + self.timeout))
        out = self.run(
            ["poll", "--json", "--wait", "--interval", "200ms", "--timeout", limit, *ids],
            timeout=timeout + self.timeout,
            # 1: all ended, not all succeeded; 75: some still running at the timeout.
            ok_codes=(0, 1, EXIT_NOT_FINISHED),
        ).stdout
        return _statuses(out)

    def result(self, task_id: str) -> dict[str, Any]:
        """The result record of a finished task (``result --json``)."""
        if self.mode == "coprocess":
            value = self.request("result", {"id": task_id}, ["result", "--json", task_id])
            if not isinstance(value, dict):
                raise TaskiqError(f"unexpected output from `taskiq-go result --json`: {value!r:.500}")
            return value
        return _one_object(self.run(["result", "--json", task_id]).stdout, "result")

    def cancel(self, ids: Sequence[str]) -> None:
        """Asks for tasks to be stopped: queued ones never start, running ones are signalled."""
        if not ids:
            return
        if self.mode == "coprocess":
            self.request("cancel", {"ids": list(ids)}, ["cancel", "--json", *ids])
            return
        self.run(["cancel", "--json", *ids])

    def cancel_group(self, group: str) -> None:
        """Asks for every task of a group to be stopped."""
        if self.mode == "coprocess":
            self.request("cancel", {"group": group}, ["cancel", "--json", "--group", group])
            return
        self.run(["cancel", "--json", "--group", group])

    # -- workers -------------------------------------------------------------------

    def workers(self) -> list[dict[str, Any]]:
        """Heartbeat records of the live workers (``workers --json``), newest first."""
        return _lines(self.run(["workers", "--json"]).stdout)

    def stop_workers(self, ids: Sequence[str] = (), all_workers: bool = False) -> list[dict[str, Any]]:
        """Asks workers to shut down gracefully (``workers --stop``); returns the requests stored."""
        args = ["--stop-all"] if all_workers else [a for worker in ids for a in ("--stop", worker)]
        return _lines(self.run(["workers", "--json", *args]).stdout)

    def spawn(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Starts a long-running ``taskiq-go ARGS`` (``work``) in this process's session,
        with the same environment as :meth:`run` plus ``env``; the caller waits for it."""
        full_env = {**os.environ, **self._extra_env, **self.connection.to_env(), **(env or {})}
        try:
            return subprocess.Popen([self.binary, *args], env=full_env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise TaskiqBinaryNotFound(f"cannot run {self.binary}: {exc}; {INSTALL_HINT}") from exc

    def link_step_client(self, directory: str) -> str | None:
        """Links ``directory/dagster-taskiq-step`` to taskiq-go's native Dagster
        step client, which then stands in for the Python one: the small
        ``taskiq-go-step`` beside the binary when there is one (about 2 ms of
        CPU a start), else the binary itself started under that name (about
        20). Returns the link, or None (no link left) when neither answers the
        client's probe (a script wrapper, an older binary)."""
        binary = os.path.realpath(shutil.which(self.binary) or self.binary)
        link = os.path.join(directory, NATIVE_STEP_CLIENT)
        os.makedirs(directory, exist_ok=True)
        for target in (os.path.join(os.path.dirname(binary), NATIVE_STEP_CLIENT_BINARY), binary):
            if not os.access(target, os.X_OK):
                continue
            os.symlink(target, link)
            try:
                out = subprocess.run(
                    [link, NATIVE_STEP_CLIENT_PROBE],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    stdin=subprocess.DEVNULL,
                ).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            if out.strip() == NATIVE_STEP_CLIENT_REPLY:
                return link
            os.unlink(link)
        return None


#: The command name under which the binary runs as its native Dagster step
#: client (Go package forkclient), and the argument and answer of its probe.
NATIVE_STEP_CLIENT = "dagster-taskiq-step"
#: The small binary that is that client alone (cmd/taskiq-go-step), beside taskiq-go.
NATIVE_STEP_CLIENT_BINARY = "taskiq-go-step"
NATIVE_STEP_CLIENT_PROBE = "--taskiq-go-native-step-client"
NATIVE_STEP_CLIENT_REPLY = "taskiq-go native step client"


def _lines(out: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for line in out.splitlines():
        line = line.strip()
        if line:
            value = json.loads(line)
            if isinstance(value, list):
                objects.extend(value)
            else:
                objects.append(value)
    return objects


def _statuses(out: str) -> list[TaskStatus]:
    try:
        return [TaskStatus.from_json(obj) for obj in _lines(out)]
    except (ValueError, KeyError, TypeError) as exc:
        raise TaskiqError(f"unexpected output from `taskiq-go poll --json`: {out[:500]!r}") from exc


def _status_objects(value: Any) -> list[TaskStatus]:
    try:
        return [TaskStatus.from_json(obj) for obj in value or []]
    except (ValueError, KeyError, TypeError) as exc:
        raise TaskiqError(f"unexpected answer to a poll: {value!r:.500}") from exc


def _one_object(out: str, command: str) -> dict[str, Any]:
    try:
        value = json.loads(out)
    except ValueError as exc:
        raise TaskiqError(f"unexpected output from `taskiq-go {command} --json`: {out[:500]!r}") from exc
    if not isinstance(value, dict):
        raise TaskiqError(f"unexpected output from `taskiq-go {command} --json`: {out[:500]!r}")
    return value
