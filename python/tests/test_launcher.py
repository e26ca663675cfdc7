"""The run launcher on real workers: a launched run succeeds and reports health; terminate cancels."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.launcher.base import ResumeRunContext, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun

from conftest import Stack, events_text, wait_for_run
from dagster_taskiq import QUEUE_TAG, TASK_ID_TAG, TaskiqRunLauncher
from harness import children, pid_alive, read_if_exists, wait_for
from jobs import recon


def launch(
    instance: DagsterInstance, name: str, run_config: dict[str, Any], tags: dict[str, str] | None = None
) -> DagsterRun:
    job = recon(name)
    run = instance.create_run_for_job(
        job_def=job.get_definition(), run_config=run_config, job_code_origin=job.get_python_origin(), tags=tags
    )
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    launched = instance.get_run_by_id(run.run_id)
    assert launched is not None
    return launched


def executor_only_interval(stack: Stack) -> dict[str, Any]:
    # Connection settings come from the TaskiqRunLauncher in dagster.yaml.
    return {"execution": {"config": {"health_check_interval": 2}}}


def test_launched_run_succeeds_and_reports_health(two_workers: Stack, tmp_path: Path) -> None:
    instance = two_workers.instance
    launcher = instance.run_launcher
    assert isinstance(launcher, TaskiqRunLauncher)
    gate = tmp_path / "gate"
    run_config = executor_only_interval(two_workers)
    run_config["ops"] = {"wait_for_gate": {"config": {"gate_file": str(gate)}}}
    run = launch(instance, "gated", run_config)
    task_id = run.tags[TASK_ID_TAG]
    assert task_id.startswith(run.run_id)

    wait_for_run(instance, run.run_id, {DagsterRunStatus.STARTED}, timeout=60)
    health = launcher.check_run_worker_health(instance.get_run_by_id(run.run_id))
    assert health.status == WorkerStatus.RUNNING, health

    gate.write_text("open sesame")
    wait_for_run(instance, run.run_id, {DagsterRunStatus.SUCCESS}, timeout=90)

    def health_after() -> Any:
        h = launcher.check_run_worker_health(instance.get_run_by_id(run.run_id))
        return h if h.status != WorkerStatus.RUNNING else None

    final = wait_for("the run's task to end", health_after, timeout=30, interval=0.2)
    assert final.status == WorkerStatus.SUCCESS, final
    info = launcher.get_run_worker_debug_info(instance.get_run_by_id(run.run_id))
    assert info is not None and task_id in info and "succeeded" in info


def test_terminate_stops_the_step_and_cancels_the_run(two_workers: Stack, tmp_path: Path) -> None:
    instance = two_workers.instance
    launcher = instance.run_launcher
    assert isinstance(launcher, TaskiqRunLauncher)
    pid_file = tmp_path / "step.pid"
    run_config = executor_only_interval(two_workers)
    run_config["ops"] = {"sleep_long": {"config": {"pid_file": str(pid_file), "seconds": 600}}}
    run = launch(instance, "sleepy", run_config)
    pid = int(wait_for("the step to start", lambda: read_if_exists(pid_file), timeout=90))
    assert pid_alive(pid)
    try:
        started = time.monotonic()
        assert launcher.terminate(run.run_id) is True
        wait_for(
            "the step's process to stop",
            lambda: not pid_alive(pid),
            timeout=max(0.1, 10 - (time.monotonic() - started)),
        )
        stopped_after = time.monotonic() - started
        assert stopped_after <= 10, stopped_after

        final = wait_for_run(
            instance,
            run.run_id,
            {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS},
            timeout=30,
        )
        text = events_text(instance, run.run_id)
        assert final.status == DagsterRunStatus.CANCELED, text[-4000:]
        # the run process stopped its step through the executor, and said so itself
        assert "Cancelling taskiq-go task" in text and "Step execution terminated by interrupt" in text
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_resume_run_picks_up_the_running_step(two_workers: Stack, tmp_path: Path) -> None:
    """The run's process dies mid-step; a resumed run finds the step's task by its group and waits for it."""
    instance = two_workers.instance
    launcher = instance.run_launcher
    assert isinstance(launcher, TaskiqRunLauncher)
    # A short lease, so that taskiq-go delivers the lost run task again during the test.
    run_worker = two_workers.start_worker("w-runs", ["runs"], extra_args=["--visibility-timeout", "5s"])
    gate = tmp_path / "gate"
    run_config = executor_only_interval(two_workers)
    run_config["ops"] = {"wait_for_gate": {"config": {"gate_file": str(gate)}}}
    run = launch(instance, "gated", run_config, tags={QUEUE_TAG: "runs"})

    def step_running() -> bool:
        stats = instance.get_run_step_stats(run.run_id, step_keys=["wait_for_gate"])
        return bool(stats) and stats[0].start_time is not None

    wait_for("the step to start", step_running, timeout=90)
    run_processes = children(run_worker.pid)  # the run's supervisor (and through it the run)
    assert run_processes, "the run worker runs no process"
    # The machine running the run dies: the worker first, so that it records
    # nothing, then whatever of its tree is left (its supervisors stop the run).
    run_worker.kill()
    for pid in run_processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # type: ignore[union-attr]

    two_workers.start_worker("w-runs-2", ["runs"])
    resumed = instance.get_run_by_id(run.run_id)
    assert resumed is not None
    launcher.resume_run(ResumeRunContext(dagster_run=resumed, workspace=None, resume_attempt_number=1))
    resume_task = instance.get_run_by_id(run.run_id).tags[TASK_ID_TAG]  # type: ignore[union-attr]
    assert resume_task != run.tags[TASK_ID_TAG] and "resume1" in resume_task

    wait_for(
        "the resumed run to check on the step",
        lambda: "Checking on status of in-progress step" in events_text(instance, run.run_id),
        timeout=60,
    )
    # The original run task runs again once its lease runs out; Dagster must ignore it.
    wait_for(
        "the duplicate run worker to be ignored",
        lambda: "Ignoring a duplicate run" in events_text(instance, run.run_id),
        timeout=60,
    )
    gate.write_text("open")
    final = wait_for_run(instance, run.run_id, {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}, timeout=90)
    text = events_text(instance, run.run_id)
    assert final.status == DagsterRunStatus.SUCCESS, text[-4000:]
    assert "Including step wait_for_gate in the new run" not in text  # it was found running, not relaunched
