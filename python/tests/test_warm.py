"""Warm step starts: `dagster-taskiq worker start` runs each step as a fork of a
warm parent that already imported Dagster (and the preloaded code), in the
task's process group, killed with it; the fork server picks up changed code,
and its death fails the running steps cleanly while the worker carries on."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob

from conftest import Stack, events_text, make_stack
from dagster_taskiq import TaskiqCli
from harness import TESTS_DIR, Proc, pid_alive, read_if_exists, start_warm_worker, wait_for, worker_env
from warm_jobs import CRASH_MARKER, WHOAMI_SAYS, recon

WARM_JOBS = str(TESTS_DIR / "warm_jobs.py")


@pytest.fixture(scope="module")
def warm(taskiq_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose one worker is warm, with warm_jobs.py preloaded."""
    for stack in make_stack(taskiq_bin, tmp_path_factory.mktemp("warm"), launcher=False):
        stack.workers.append(
            start_warm_worker(
                taskiq_bin,
                worker_env(stack.dev.env, stack.dagster_home),
                stack.root,
                "w-warm",
                concurrency=2,
                start_args=["--preload", WARM_JOBS],
            )
        )
        yield stack


def forkserver_pids(worker: Proc) -> list[int]:
    """The fork server master(s) that `worker start` runs, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == worker.pid and b"dagster_taskiq.forkserver" in cmd:
            out.append(int(entry.name))
    return out


def test_step_is_a_fork_of_the_warm_parent_in_the_tasks_group(warm: Stack) -> None:
    with execute_job(recon("identify"), instance=warm.instance, run_config=warm.run_config()) as result:
        assert result.success, events_text(warm.instance, result.run_id)[-4000:]
        me = result.output_for_node("whoami")
    # forked from the warm parent, not started by taskiq-go
    assert "dagster_taskiq.forkserver" in me["parent"], me
    # in the task's process group, whose leader is the thin client taskiq-go started
    assert me["pgrp"] != me["pid"], me
    assert "dagster-taskiq-step" in me["group_leader"], me
    # ... and that client is taskiq-go's native one (the small taskiq-go-step
    # beside the binary when built, as `make build` does), not a Python interpreter
    binary = os.path.realpath(warm.binary)
    assert me["group_leader_exe"] in (binary, os.path.join(os.path.dirname(binary), "taskiq-go-step")), me
    # compute logs mirrored by a tail per stream, in the task's group, without
    # Dagster's orphan watchers (the group is killed with the task)
    assert sum(cmd.startswith("tail -F") for cmd in me["group"]) == 2, me["group"]
    assert not any("watch_orphans" in cmd for cmd in me["group"]), me["group"]
    cli = TaskiqCli(binary=warm.binary)
    (task,) = [s for s in cli.poll_group(result.run_id) if ".whoami." in s.id]
    assert WHOAMI_SAYS in cli.result(task.id)["stdout"]["data"]  # the tail mirrored it


def test_python_client_on_request(warm: Stack) -> None:
    # `worker start --python-client`: the same warm step, handed over by the Python client
    worker = start_warm_worker(
        warm.binary,
        worker_env(warm.dev.env, warm.dagster_home),
        warm.root,
        "w-pyclient",
        queues=["special"],
        concurrency=1,
        start_args=["--preload", WARM_JOBS, "--python-client"],
    )
    warm.workers.append(worker)
    try:
        config = warm.run_config(queue="special")
        with execute_job(recon("identify"), instance=warm.instance, run_config=config) as result:
            assert result.success, events_text(warm.instance, result.run_id)[-4000:]
            me = result.output_for_node("whoami")
    finally:
        worker.stop()
        warm.workers.remove(worker)
    assert "dagster_taskiq.forkserver" in me["parent"], me
    assert "dagster-taskiq-step" in me["group_leader"], me
    assert "python" in os.path.basename(me["group_leader_exe"]), me


def test_cancelled_warm_step_takes_its_children_with_it(warm: Stack, tmp_path: Path) -> None:
    info_file = tmp_path / "info.json"
    outcome: dict[str, Any] = {}

    def run() -> None:
        result = execute_job(
            recon("holding"),
            instance=warm.instance,
            run_config=warm.run_config(ops={"hold_with_child": {"config": {"info_file": str(info_file)}}}),
            raise_on_error=False,
        )
        outcome["result"] = result

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    info = json.loads(wait_for("the step to start", lambda: read_if_exists(info_file), timeout=120))
    assert pid_alive(info["pid"]) and pid_alive(info["child"])
    TaskiqCli(binary=warm.binary).cancel_group(info["run_id"])
    runner.join(timeout=120)
    assert not runner.is_alive(), "the run did not end after its step was cancelled"
    result = outcome["result"]
    assert not result.success
    wait_for("the step process to be gone", lambda: not pid_alive(info["pid"]), timeout=30)
    wait_for("the step's child to be gone", lambda: not pid_alive(info["child"]), timeout=30)
    # the SIGTERM of the cancel reached the forked step: Dagster saw it interrupted
    text = events_text(warm.instance, result.run_id)
    assert "DagsterExecutionInterruptedError" in text, text[-4000:]


def test_step_that_prints_and_dies_shows_its_stderr(warm: Stack) -> None:
    result = execute_job(recon("crashing"), instance=warm.instance, run_config=warm.run_config(), raise_on_error=False)
    assert not result.success
    text = events_text(warm.instance, result.run_id)
    assert CRASH_MARKER in text, text[-4000:]
    assert "exit code 3" in text, text[-4000:]
    # The step left with os._exit, past the code that stops its compute-log
    # tails: they are gone with the task's process group all the same.
    assert not tails_of(result.run_id), tails_of(result.run_id)


def tails_of(run_id: str) -> list[str]:
    """Command lines of live `tail -F` processes mirroring a run's compute logs."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if cmd.startswith("tail -F") and run_id in cmd:
                out.append(cmd)
    return out


CHANGING_JOB = '''
from dagster import FilesystemIOManager, job, op
from dagster_taskiq import taskiq_executor

VALUE = {value}

@op
def report() -> int:
    return VALUE

@job(executor_def=taskiq_executor, resource_defs={{"io_manager": FilesystemIOManager()}})
def changing():
    report()
'''


def test_code_change_between_runs_is_picked_up(warm: Stack, tmp_path: Path) -> None:
    code = tmp_path / "changing_code.py"
    code.write_text(CHANGING_JOB.format(value=1))
    worker = start_warm_worker(
        warm.binary,
        worker_env(warm.dev.env, warm.dagster_home),
        warm.root,
        "w-code",
        queues=["special"],
        concurrency=1,
        start_args=["--preload", str(code)],
    )
    warm.workers.append(worker)
    job = ReconstructableJob.for_file(str(code), "changing")
    config = warm.run_config(queue="special")
    try:
        with execute_job(job, instance=warm.instance, run_config=config) as first:
            assert first.success, events_text(warm.instance, first.run_id)[-4000:]
            assert first.output_for_node("report") == 1
        code.write_text(CHANGING_JOB.format(value=2))
        stat = code.stat()
        os.utime(code, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        with execute_job(job, instance=warm.instance, run_config=config) as second:
            assert second.success, events_text(warm.instance, second.run_id)[-4000:]
            assert second.output_for_node("report") == 2
        assert "changing_code.py changed" in worker.log(), worker.log()[-3000:]
    finally:
        worker.stop()
        warm.workers.remove(worker)


def test_fork_server_dying_mid_run_fails_the_step_and_the_worker_carries_on(warm: Stack, tmp_path: Path) -> None:
    info_file = tmp_path / "info.json"
    worker = warm.workers[0]
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["result"] = execute_job(
            recon("holding"),
            instance=warm.instance,
            run_config=warm.run_config(ops={"hold_with_child": {"config": {"info_file": str(info_file)}}}),
            raise_on_error=False,
        )

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    info = json.loads(wait_for("the step to start", lambda: read_if_exists(info_file), timeout=120))
    masters = forkserver_pids(worker)
    assert len(masters) == 1, masters
    # the whole fork server at once: the master and the warm parent the step was forked from
    os.kill(info["ppid"], signal.SIGKILL)
    os.kill(masters[0], signal.SIGKILL)
    runner.join(timeout=120)
    assert not runner.is_alive(), "the run did not end after the fork server died"
    result = outcome["result"]
    assert not result.success
    wait_for("the step process to be gone", lambda: not pid_alive(info["pid"]), timeout=30)
    text = events_text(warm.instance, result.run_id)
    assert "fork server" in text and "went away" in text, text[-4000:]
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == ["hold_with_child"], text[-4000:]

    # the worker restarted its fork server and runs the next step warm
    wait_for("a new fork server", lambda: [p for p in forkserver_pids(worker) if p != masters[0]], timeout=60)
    with execute_job(recon("identify"), instance=warm.instance, run_config=warm.run_config()) as again:
        assert again.success, events_text(warm.instance, again.run_id)[-4000:]
    assert worker.alive()
    assert "the fork server exited" in worker.log(), worker.log()[-3000:]


def test_code_that_cannot_be_imported_warm_starts_cold(warm: Stack, tmp_path: Path) -> None:
    broken = tmp_path / "broken_code.py"
    broken.write_text("raise ImportError('not importable in the warm parent')\n")
    worker = start_warm_worker(
        warm.binary,
        worker_env(warm.dev.env, warm.dagster_home),
        warm.root,
        "w-broken",
        queues=["special"],
        concurrency=1,
        start_args=["--preload", str(broken)],
    )
    warm.workers.append(worker)
    try:
        with execute_job(recon("identify"), instance=warm.instance, run_config=warm.run_config(queue="special")) as result:
            assert result.success, events_text(warm.instance, result.run_id)[-4000:]
            me = result.output_for_node("whoami")
        assert "dagster_taskiq.forkserver" not in me["parent"], me
        assert "not importable in the warm parent" in worker.log() and "steps start cold" in worker.log()
        task = TaskiqCli(binary=warm.binary).poll_group(result.run_id)[0]
        stderr = TaskiqCli(binary=warm.binary).result(task.id).get("stderr") or {}
        assert "starting the step cold" in str(stderr.get("tail") or stderr.get("data") or ""), stderr
    finally:
        worker.stop()
        warm.workers.remove(worker)
