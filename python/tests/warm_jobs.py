"""Dagster jobs for the warm-start tests: ops that report their process, wait
on files, spawn children and crash. Loaded by file path, like jobs.py."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dagster import Config, FilesystemIOManager, OpExecutionContext, job, op
from dagster._core.definitions.reconstruct import ReconstructableJob

from dagster_taskiq import taskiq_executor

RESOURCES = {"io_manager": FilesystemIOManager()}
CRASH_MARKER = "noisy step: about to die without a Dagster event"


def recon(name: str) -> ReconstructableJob:
    return ReconstructableJob.for_file(str(Path(__file__).resolve()), name)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


WHOAMI_SAYS = "whoami: printed by the step"


def _group_members(pgrp: int) -> list[str]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgrp:
                out.append(_cmdline(int(stat.parent.name)))
        except (OSError, ValueError, IndexError):
            continue
    return out


@op
def whoami() -> dict:  # type: ignore[type-arg]
    pid, ppid, pgrp = os.getpid(), os.getppid(), os.getpgrp()
    print(WHOAMI_SAYS, flush=True)
    return {
        "pid": pid,
        "ppid": ppid,
        "pgrp": pgrp,
        "parent": _cmdline(ppid),
        "group_leader": _cmdline(pgrp),
        "group_leader_exe": os.path.realpath(f"/proc/{pgrp}/exe"),
        "argv0": sys.argv[0],
        "group": _group_members(pgrp),
    }


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def identify() -> None:
    whoami()


class HoldConfig(Config):
    info_file: str
    gate_file: str = ""
    timeout: float = 300.0


@op
def hold_with_child(context: OpExecutionContext, config: HoldConfig) -> str:
    """Starts a child process, records both pids, then waits for the gate file."""
    child = subprocess.Popen(["sleep", "600"])
    info = {"pid": os.getpid(), "ppid": os.getppid(), "child": child.pid, "run_id": context.run_id}
    Path(config.info_file + ".tmp").write_text(json.dumps(info))
    os.replace(config.info_file + ".tmp", config.info_file)
    deadline = time.monotonic() + config.timeout
    while not (config.gate_file and Path(config.gate_file).exists()):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.05)
    child.kill()
    child.wait()
    return "released"


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def holding() -> None:
    hold_with_child()


@op
def noisy_crash() -> None:
    print(CRASH_MARKER, file=sys.stderr, flush=True)
    os._exit(3)


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def crashing() -> None:
    noisy_crash()
