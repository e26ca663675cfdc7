"""The run launcher under Dagster's run monitoring, checked with the daemon's own function
(``monitor_started_run``) on real runs and real workers.

- A run executed in-process has no dagster-taskiq/task_id tag: monitoring leaves it alone.
- A run whose process died: taskiq-go delivers its task again, Dagster's duplicate
  check makes that copy exit 0, and the task reads succeeded while the run is still
  STARTED. The launcher reports that as a failed run worker, so monitoring resumes
  the run (max_resume_run_attempts: 1, this instance) or, with no attempts left,
  fails it, instead of leaving it started for ever.
- terminate of a run that Dagster expects to resume (so it does not forward the
  termination to the steps) still stops the steps: the launcher cancels the run's
  whole group.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, execute_job
from dagster._core.launcher.base import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._daemon.monitoring.run_monitoring import RESUME_RUN_LOG_MESSAGE, monitor_started_run

from conftest import Stack, events_text, make_stack, wait_for_run
from dagster_taskiq import QUEUE_TAG, TASK_ID_TAG, TaskiqRunLauncher
from harness import Proc, children, pid_alive, read_if_exists, wait_for
from jobs import recon

LOGGER = logging.getLogger("test_monitoring")
#: Generous bounds for a busy machine; each wait ends as soon as its state is reached.
SLOW = 180.0


@pytest.fixture(scope="module")
def stack(taskiq_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for s in make_stack(taskiq_bin, tmp_path_factory.mktemp("taskiq"), run_monitoring={"max_resume_run_attempts": 1}):
        s.start_worker("w-steps", ["default"])
        yield s


def launcher_of(instance: DagsterInstance) -> TaskiqRunLauncher:
    launcher = instance.run_launcher
    assert isinstance(launcher, TaskiqRunLauncher)
    return launcher


def monitor(instance: DagsterInstance, run_id: str) -> None:
    record = instance.get_run_record_by_id(run_id)
    assert record is not None
    monitor_started_run(instance, None, record, LOGGER)  # type: ignore[arg-type] # a workspace only serves code locations


def launch(instance: DagsterInstance, name: str, run_config: dict[str, Any], tags: dict[str, str]) -> DagsterRun:
    job = recon(name)
    run = instance.create_run_for_job(
        job_def=job.get_definition(), run_config=run_config, job_code_origin=job.get_python_origin(), tags=tags
    )
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    return run


def test_a_run_executed_in_process_is_left_alone(stack: Stack, tmp_path: Path) -> None:
    instance = stack.instance
    gate = tmp_path / "gate"
    mark = {"dagster-taskiq-test/mark": "in-process"}
    run_config = stack.run_config(ops={"wait_for_gate": {"config": {"gate_file": str(gate)}}})
    outcome: dict[str, Any] = {}

    def run() -> None:
        with execute_job(recon("gated"), instance=instance, run_config=run_config, tags=mark) as result:
            outcome["success"] = result.success

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        run_id = wait_for(
            "the run to start",
            lambda: next(
                (r.run_id for r in instance.get_runs(RunsFilter(tags=mark)) if r.status == DagsterRunStatus.STARTED),
                None,
            ),
            timeout=SLOW,
        )
        dagster_run = instance.get_run_by_id(run_id)
        assert dagster_run is not None and TASK_ID_TAG not in dagster_run.tags
        health = launcher_of(instance).check_run_worker_health(dagster_run)
        assert health.status == WorkerStatus.RUNNING and "not launched by TaskiqRunLauncher" in health.msg, health
        monitor(instance, run_id)
        after = instance.get_run_by_id(run_id)
        assert after is not None and after.status == DagsterRunStatus.STARTED, events_text(instance, run_id)[-3000:]
    finally:
        gate.write_text("open")
        thread.join(SLOW)
    assert outcome.get("success") is True


def start_then_kill_the_run_worker(stack: Stack, tmp_path: Path, worker_id: str) -> tuple[DagsterRun, Path, Proc]:
    """Launches `gated` on a run worker with a short lease, waits for its step, then kills
    the run worker machine (worker and run process); a new run worker, returned to be
    stopped by the test, gets the task again."""
    instance = stack.instance
    queue = "runs"
    run_worker = stack.start_worker(worker_id, [queue], extra_args=["--visibility-timeout", "5s"])
    gate = tmp_path / "gate"
    run_config = {
        "execution": {"config": {"health_check_interval": 2}},
        "ops": {"wait_for_gate": {"config": {"gate_file": str(gate)}}},
    }
    run = launch(instance, "gated", run_config, {QUEUE_TAG: queue})

    def step_running() -> bool:
        stats = instance.get_run_step_stats(run.run_id, step_keys=["wait_for_gate"])
        return bool(stats) and stats[0].start_time is not None

    wait_for("the step to start", step_running, timeout=SLOW)
    processes = children(run_worker.pid)
    assert processes, "the run worker runs no process"
    # The machine dies: nothing of it may act after the first kill. The worker
    # is frozen first, so that it cannot record its supervisors' deaths.
    os.kill(run_worker.pid, signal.SIGSTOP)
    for pid in processes:
        os.kill(pid, signal.SIGKILL)
    run_worker.kill()
    again = stack.start_worker(f"{worker_id}-again", [queue])
    launcher = launcher_of(instance)
    task_id = run.tags.get(TASK_ID_TAG) or instance.get_run_by_id(run.run_id).tags[TASK_ID_TAG]  # type: ignore[union-attr]

    def task_ended() -> Any:
        (status,) = launcher.cli.poll([task_id])
        return status if status.is_final else None

    # The copy delivered again finds the run started by the dead process and exits 0.
    status = wait_for("the run's task to be delivered again and end", task_ended, timeout=SLOW, interval=0.5)
    assert status.state == "succeeded", status
    assert "Ignoring a duplicate run" in events_text(instance, run.run_id)
    current = instance.get_run_by_id(run.run_id)
    assert current is not None and current.status == DagsterRunStatus.STARTED
    return current, gate, again


def test_a_run_whose_worker_died_is_resumed(stack: Stack, tmp_path: Path) -> None:
    instance = stack.instance
    run, gate, again = start_then_kill_the_run_worker(stack, tmp_path, "w-runs-resume")
    try:
        health = launcher_of(instance).check_run_worker_health(run)
        assert health.status == WorkerStatus.FAILED and "still STARTED" in health.msg, health
        monitor(instance, run.run_id)
        text = events_text(instance, run.run_id)
        assert RESUME_RUN_LOG_MESSAGE in text, text[-3000:]
        resumed = instance.get_run_by_id(run.run_id)
        assert resumed is not None and resumed.tags[TASK_ID_TAG].endswith(".resume1")
        wait_for(
            "the resumed run to check on its step",
            lambda: "Checking on status of in-progress step" in events_text(instance, run.run_id),
            timeout=SLOW,
        )
        # Its task runs now: monitoring sees it healthy.
        assert launcher_of(instance).check_run_worker_health(resumed).status == WorkerStatus.RUNNING
    finally:
        gate.write_text("open")
    try:
        final = wait_for_run(instance, run.run_id, {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}, timeout=SLOW)
        assert final.status == DagsterRunStatus.SUCCESS, events_text(instance, run.run_id)[-4000:]
    finally:
        again.stop()


def test_a_run_whose_worker_died_is_failed_without_resume_attempts(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = stack.instance
    run, gate, again = start_then_kill_the_run_worker(stack, tmp_path, "w-runs-fail")
    try:
        # Dagster's default: no resume attempts.
        monkeypatch.setattr(type(instance), "run_monitoring_max_resume_run_attempts", property(lambda self: 0))
        monitor(instance, run.run_id)
        final = instance.get_run_by_id(run.run_id)
        text = events_text(instance, run.run_id)
        assert final is not None and final.status == DagsterRunStatus.FAILURE, text[-3000:]
        assert "still STARTED" in text and RESUME_RUN_LOG_MESSAGE not in text
    finally:
        gate.write_text("open")
        launcher_of(instance).cli.cancel_group(run.run_id)
        again.stop()


def test_terminate_stops_the_steps_when_a_resume_is_expected(stack: Stack, tmp_path: Path) -> None:
    instance = stack.instance
    launcher = launcher_of(instance)
    run_worker = stack.start_worker("w-runs-term", ["runs"])
    pid_file = tmp_path / "step.pid"
    run_config = {
        "execution": {"config": {"health_check_interval": 2}},
        "ops": {"sleep_long": {"config": {"pid_file": str(pid_file), "seconds": 600}}},
    }
    run = launch(instance, "sleepy", run_config, {QUEUE_TAG: "runs"})
    pid = int(wait_for("the step to start", lambda: read_if_exists(pid_file), timeout=SLOW))
    try:
        assert instance.run_will_resume(run.run_id)  # so Dagster will not forward the termination
        assert launcher.terminate(run.run_id) is True
        wait_for("the step's process to stop", lambda: not pid_alive(pid), timeout=60)
        final = wait_for_run(
            instance, run.run_id, {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE}, timeout=SLOW
        )
        assert final.status == DagsterRunStatus.CANCELED, events_text(instance, run.run_id)[-3000:]
        states = wait_for(
            "every task of the run to end",
            lambda: (lambda sts: sts if all(s.is_final for s in sts) else None)(launcher.cli.poll_group(run.run_id)),
            timeout=60,
        )
        assert {s.state for s in states} <= {"cancelled"}, states
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        run_worker.stop()
