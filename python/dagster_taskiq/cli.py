"""The one place that runs the ``taskiq-go`` binary.

Every other module talks to taskiq-go through :class:`TaskiqCli`: it finds the
binary, passes settings through the subprocess environment, feeds JSON in,
parses JSON out, bounds each call with a timeout and turns a non-zero exit into
a :class:`TaskiqCliError` that carries the tool's stderr and exit code. A later
long-lived co-process mode can replace how calls are made without touching the
callers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import warnings
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


#: Task states that no longer change.
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


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


class TaskiqVersionWarning(UserWarning):
    """The taskiq-go binary found speaks another wire version than this package."""


@dataclass(frozen=True)
class BinaryVersion:
    """What ``taskiq-go version --json`` prints."""

    version: str
    wire_version: int | None


class TaskiqCli:
    """Runs taskiq-go commands: JSON in and out, one timeout per call.

    ``connection`` is passed to the binary as environment variables, on top of
    the calling process's environment, so that the binary's own precedence
    (flags, environment, config file, defaults) still applies to the rest.
    """

    def __init__(
        self,
        binary: str | None = None,
        connection: ConnectionSettings | None = None,
        timeout: float = 60.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.binary = find_binary(binary)
        self.connection = connection or ConnectionSettings()
        self.timeout = timeout
        self._extra_env = dict(extra_env or {})

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
        env = {**os.environ, **self._extra_env, **self.connection.to_env()}
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

    # -- commands ------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any], retries: int = 2) -> Submitted:
        """Queues one task (``submit --json --spec -``).

        A spec with an ``id`` is idempotent, so an unreachable endpoint or a
        timeout is retried with the same spec.
        """
        body = json.dumps(spec, separators=(",", ":"))
        attempt = 0
        while True:
            try:
                out = self.run(["submit", "--json", "--spec", "-"], stdin=body).stdout
                break
            except (TaskiqCliError, TaskiqCliTimeout) as exc:
                transient = isinstance(exc, TaskiqCliTimeout) or exc.exit_code == EXIT_UNREACHABLE
                if not (spec.get("id") and transient and attempt < retries):
                    raise
                attempt += 1
                time.sleep(0.5 * attempt)
        data = _one_object(out, "submit")
        return Submitted(id=str(data["id"]), queue=str(data.get("queue") or ""), group=str(data.get("group") or ""))

    def poll(self, ids: Sequence[str]) -> list[TaskStatus]:
        """States of the given tasks, in the order the binary prints them."""
        if not ids:
            return []
        return _statuses(self.run(["poll", "--json", *ids]).stdout)

    def poll_group(self, group: str) -> list[TaskStatus]:
        """States of every task of a group (a Dagster run); empty for a group with no tasks."""
        proc = self.run(["poll", "--json", "--group", group], ok_codes=(0, EXIT_UNKNOWN_TASK))
        return [] if proc.returncode == EXIT_UNKNOWN_TASK else _statuses(proc.stdout)

    def version(self) -> BinaryVersion:
        """The binary's version and wire version (None from a binary too old to say)."""
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
        out = self.run(
            ["poll", "--json", "--wait", "--interval", "200ms", "--timeout", f"{max(timeout, 0.001):.3f}s", *ids],
            timeout=timeout + self.timeout,
            # 1: all ended, not all succeeded; 75: some still running at the timeout.
            ok_codes=(0, 1, EXIT_NOT_FINISHED),
        ).stdout
        return _statuses(out)

    def result(self, task_id: str) -> dict[str, Any]:
        """The result record of a finished task (``result --json``)."""
        return _one_object(self.run(["result", "--json", task_id]).stdout, "result")

    def cancel(self, ids: Sequence[str]) -> None:
        """Asks for tasks to be stopped: queued ones never start, running ones are signalled."""
        if ids:
            self.run(["cancel", "--json", *ids])

    def cancel_group(self, group: str) -> None:
        """Asks for every task of a group to be stopped."""
        self.run(["cancel", "--json", "--group", group])


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


def _one_object(out: str, command: str) -> dict[str, Any]:
    try:
        value = json.loads(out)
    except ValueError as exc:
        raise TaskiqError(f"unexpected output from `taskiq-go {command} --json`: {out[:500]!r}") from exc
    if not isinstance(value, dict):
        raise TaskiqError(f"unexpected output from `taskiq-go {command} --json`: {out[:500]!r}")
    return value
