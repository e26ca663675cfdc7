"""Starts and stops real `taskiq-go dev` and `taskiq-go work` processes for the tests.

This is test scaffolding: the package itself calls the binary only through
``dagster_taskiq.cli.TaskiqCli``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from dagster_taskiq.worker_cli import STEP_PASS_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = Path(__file__).resolve().parent

T = TypeVar("T")


def find_test_binary() -> str:
    """The taskiq-go the tests run: $TASKIQ_GO_BIN, else bin/taskiq-go of this repo, else PATH."""
    candidates = [os.environ.get("TASKIQ_GO_BIN"), str(REPO_ROOT / "bin" / "taskiq-go"), shutil.which("taskiq-go")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise RuntimeError(
        "taskiq-go binary not found: the integration tests need it. Build it with "
        "`go build -o bin/taskiq-go .` at the repository root (or `make build`), or set TASKIQ_GO_BIN."
    )


def wait_for(what: str, fn: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """Calls fn until it returns something truthy; fails naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def read_if_exists(path: Path) -> str | None:
    """The file's text once it exists and is not empty, for wait_for."""
    try:
        return path.read_text() or None
    except FileNotFoundError:
        return None


def parse_env_file(text: str) -> dict[str, str]:
    """Reads `export NAME=value` lines (values optionally quoted) as `taskiq-go dev` writes them."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        if "=" not in line or line.startswith("#"):
            continue
        name, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name.strip()] = value
    return env


class Proc:
    """A background process with its output in a log file and a bounded stop."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process alone (not its children): a crashed machine, as far as it can be faked."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, wait up to grace, then SIGKILL the whole process group."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._log.close()


class DevServer:
    """`taskiq-go dev` on a free loopback port, with the environment it prints."""

    def __init__(self, binary: str, workdir: Path, queues: Sequence[str] = ()) -> None:
        self.binary = binary
        self.workdir = workdir
        env_file = workdir / "dev.env"
        argv = [binary, "dev", "--addr", "127.0.0.1:0", "--env-file", str(env_file)]
        for q in queues:
            argv += ["--queue", q]
        self.proc = Proc("dev", argv, os.environ, workdir)
        try:
            text = wait_for(
                "taskiq-go dev to write its env file",
                lambda: self._ready(env_file),
                timeout=30,
            )
        except AssertionError:
            self.proc.stop()
            raise AssertionError(f"taskiq-go dev did not start; its log:\n{self.proc.log()}") from None
        self.env = parse_env_file(text)
        for name in ("AWS_ENDPOINT_URL", "TASKIQ_GO_QUEUE_URL"):
            assert name in self.env, f"taskiq-go dev env file lacks {name}: {text!r}"

    def _ready(self, env_file: Path) -> str | None:
        if not self.proc.alive():
            raise AssertionError(f"taskiq-go dev exited early; its log:\n{self.proc.log()}")
        if not env_file.exists():
            return None
        text = env_file.read_text()
        return text if "TASKIQ_GO_QUEUE_URL" in text else None

    def stop(self) -> None:
        self.proc.stop()


def worker_env(base: Mapping[str, str], dagster_home: Path) -> dict[str, str]:
    """What a worker needs to run Dagster steps: the dev env, DAGSTER_HOME, this venv on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, **base, "DAGSTER_HOME": str(dagster_home)}
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def start_worker(
    binary: str,
    env: Mapping[str, str],
    log_dir: Path,
    worker_id: str,
    queues: Sequence[str] = (),
    concurrency: int = 4,
    extra_args: Sequence[str] = (),
) -> Proc:
    argv = [binary, "work", "--worker-id", worker_id, "--concurrency", str(concurrency), "--heartbeat", "1s"]
    for name in STEP_PASS_ENV:
        argv += ["--pass-env", name]
    for q in queues:
        argv += ["--queue", q]
    argv += list(extra_args)
    return Proc(f"worker-{worker_id}", argv, env, log_dir)


def children(pid: int) -> list[int]:
    """The pids of a process's live children, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); read its state to tell.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_warm_worker(
    binary: str,
    env: Mapping[str, str],
    log_dir: Path,
    worker_id: str,
    queues: Sequence[str] = (),
    concurrency: int = 4,
    extra_args: Sequence[str] = (),
    start_args: Sequence[str] = (),
) -> Proc:
    """`dagster-taskiq worker start`: taskiq-go work with a warm fork server; its
    own process group holds the fork server and the worker, not the steps."""
    argv = [sys.executable, "-m", "dagster_taskiq.worker_cli", "worker", "start", "--binary", binary]
    argv += ["--worker-id", worker_id, "--concurrency", str(concurrency), *start_args]
    for q in queues:
        argv += ["--queue", q]
    argv += ["--", "--heartbeat", "1s", *extra_args]
    return Proc(f"worker-{worker_id}", argv, env, log_dir)
