"""Priority with real Dagster: ready steps are submitted highest priority first, and on one
worker slot they start highest level first.

One worker with ``--concurrency 1``. In ``priority_fan`` a first op, kickoff,
fans out to four steps tagged ``dagster-taskiq/priority`` -5, 0, 5 and 20 (the
levels below 0, 0, 5 and 10). Right after kickoff the root step ``hold``
takes the slot and keeps it until the test has seen all four submitted and
opens its gate; from then on the worker picks the order. Dagster is made to
submit the four lowest priority first (its own ``dagster/priority`` tag), so
first come, first served would start them in exactly the wrong order: only the
levels put them right. The executor, like dagster-celery, also submits them
highest first (``dagster-taskiq/priority`` plus ``dagster-taskiq/run_priority``).

Waits are bounded by progress, not by a guess of how long a run takes: a run
may take as long as it needs while its event log grows, and fails the test
when nothing has happened for STALL_TIMEOUT seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, RunsFilter, execute_job

from conftest import Stack, events_text
from dagster_taskiq import RUN_PRIORITY_TAG, TaskiqCli
from harness import wait_for
from jobs import FAN_PRIORITIES, URGENT_PRIORITIES, recon

#: Test-only run tag that lets the test find a run that is still going.
MARK_TAG = "dagster-taskiq-test/mark"
#: Seconds a run may go without a new event before the test gives up on it.
STALL_TIMEOUT = 120.0


def band(priority: int) -> int:
    """taskiq-go's priority level (plan/priority.go) as a rank: 0 to 10 each their own, above 10
    as 10, every negative priority -1."""
    return min(priority, 10) if priority >= 0 else -1


@pytest.fixture(scope="module")
def one_slot(stack: Stack) -> Stack:
    stack.start_worker("w-one-slot", concurrency=1)
    return stack


class BackgroundRun:
    """execute_job in a thread, so the test can act while the run waits on its worker."""

    def __init__(self, stack: Stack, job: str, run_config: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        self.stack = stack
        self.mark = uuid.uuid4().hex
        self.success: bool | None = None
        self.error: BaseException | None = None
        self._args = (job, dict(run_config), {**tags, MARK_TAG: self.mark})
        self._thread = threading.Thread(target=self._run, name=f"run-{job}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        job, run_config, tags = self._args
        try:
            with execute_job(
                recon(job), instance=self.stack.instance, run_config=run_config, tags=tags, raise_on_error=False
            ) as result:
                self.success = result.success
        except BaseException as exc:  # reported by join()
            self.error = exc

    @property
    def run_id(self) -> str:
        def find() -> str | None:
            runs = self.stack.instance.get_runs(RunsFilter(tags={MARK_TAG: self.mark}))
            return runs[0].run_id if runs else None

        return wait_for(f"run {self._args[0]} to be created", find, timeout=STALL_TIMEOUT)

    def join(self) -> None:
        run_id = self.run_id
        seen, changed = -1, time.monotonic()
        while self._thread.is_alive():
            self._thread.join(0.5)
            count = len(self.stack.instance.all_logs(run_id))
            if count != seen:
                seen, changed = count, time.monotonic()
            assert time.monotonic() - changed < STALL_TIMEOUT, (
                f"run {run_id} wrote no event for {STALL_TIMEOUT:g}s:\n{self.stack.logs()}"
            )
        if self.error is not None:
            raise self.error
        assert self.success, events_text(self.stack.instance, self.run_id)[-4000:]


def wait_until_queued(cli: TaskiqCli, run_id: str, step_keys: set[str]) -> dict[str, str]:
    """Waits until every given step has a task, checks that none has started; the run's task states."""

    def submitted() -> dict[str, str] | None:
        # task ids are RUN_ID.STEP_KEY.HASH.aN.TIME (dagster_taskiq.tags.step_task_prefix)
        states = {s.id.split(".")[1]: s.state for s in cli.poll_group(run_id)}
        return states if step_keys <= set(states) else None

    states = wait_for(f"steps {sorted(step_keys)} to be submitted", submitted, timeout=STALL_TIMEOUT, interval=0.2)
    started = {k: states[k] for k in step_keys if states[k] != "queued"}
    assert not started, f"steps started before all were submitted, the slot was not held: {states}"
    return states


def wait_running(cli: TaskiqCli, run_id: str, step_key: str) -> None:
    """Waits for a step's task to run: on a loaded machine the slot may take a moment
    to pass from kickoff to hold after every other step was submitted."""

    def running() -> bool:
        return {s.id.split(".")[1]: s.state for s in cli.poll_group(run_id)}.get(step_key) == "running"

    wait_for(f"step {step_key} to run", running, timeout=STALL_TIMEOUT, interval=0.2)


def start_order(stack: Stack, run_ids: list[str], step_keys: set[str]) -> list[tuple[float, str]]:
    """(STEP_START timestamp, step key) of the given steps across runs, earliest first."""
    found = [
        (entry.timestamp, str(entry.step_key))
        for run_id in run_ids
        for entry in stack.instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        if entry.step_key in step_keys
    ]
    assert sorted(k for _, k in found) == sorted(step_keys), found
    return sorted(found)


def submit_order(stack: Stack, run_id: str, step_keys: set[str]) -> list[str]:
    """The given steps in the order the executor submitted their tasks."""
    entries = stack.instance.all_logs(run_id, of_type=DagsterEventType.STEP_WORKER_STARTING)
    return [str(e.step_key) for e in entries if e.step_key in step_keys]


def submitted_priorities(stack: Stack, run_ids: list[str]) -> dict[str, int]:
    """Step key -> the priority the executor submitted its task with (its STEP_WORKER_STARTING event)."""
    out: dict[str, int] = {}
    for run_id in run_ids:
        for entry in stack.instance.all_logs(run_id, of_type=DagsterEventType.STEP_WORKER_STARTING):
            metadata = entry.get_dagster_event().event_specific_data.metadata  # type: ignore[union-attr]
            out[str(entry.step_key)] = int(str(metadata["taskiq priority"].value))
    return out


def assert_band_order(order: list[tuple[float, str]], priority: Mapping[str, int]) -> None:
    t0 = order[0][0]
    shown = ", ".join(f"{k} (p={priority[k]}, +{t - t0:.2f}s)" for t, k in order)
    ranks = [band(priority[k]) for _, k in order]
    assert ranks == sorted(ranks, reverse=True), f"steps did not start highest level first: {shown}"


def test_ready_steps_start_highest_band_first(one_slot: Stack, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    cli = TaskiqCli(binary=one_slot.binary)
    run_config = one_slot.run_config(ops={"hold": {"config": {"gate_file": str(gate)}}})
    run = BackgroundRun(one_slot, "priority_fan", run_config, {})
    try:
        wait_until_queued(cli, run.run_id, set(FAN_PRIORITIES))
        wait_running(cli, run.run_id, "hold")
    finally:
        gate.write_text("open")
        # Always, so that no run thread outlives its test (Dagster's logging
        # set-up is not safe in two runs starting at once in one process).
        run.join()

    assert submitted_priorities(one_slot, [run.run_id]) == {**FAN_PRIORITIES, "kickoff": 1000, "hold": 1000}
    # Submitted highest first, against Dagster's own order (its dagster/priority tags say lowest first).
    assert submit_order(one_slot, run.run_id, set(FAN_PRIORITIES)) == ["prio_20", "prio_5", "prio_0", "prio_minus5"]
    assert submit_order(one_slot, run.run_id, {"kickoff", "hold"}) == ["kickoff", "hold"]
    order = start_order(one_slot, [run.run_id], set(FAN_PRIORITIES))
    assert_band_order(order, FAN_PRIORITIES)
    assert [k for _, k in order] == ["prio_20", "prio_5", "prio_0", "prio_minus5"]


def test_run_priority_lifts_a_whole_run(one_slot: Stack, tmp_path: Path) -> None:
    """A run tagged run_priority 10 overtakes a plain run that was queued before it.

    Effective priorities: background run -5, 0, 5, 20; urgent run -5+10=5 and
    0+10=10. Were run_priority ignored, urgent_minus5 (low) and urgent_0
    (normal) would start after the background run's prio_0 and prio_5.
    """
    gate = tmp_path / "gate"
    cli = TaskiqCli(binary=one_slot.binary)
    background = BackgroundRun(
        one_slot, "priority_fan", one_slot.run_config(ops={"hold": {"config": {"gate_file": str(gate)}}}), {}
    )
    urgent: BackgroundRun | None = None
    try:
        wait_until_queued(cli, background.run_id, set(FAN_PRIORITIES))
        wait_running(cli, background.run_id, "hold")
        urgent = BackgroundRun(one_slot, "priority_urgent", one_slot.run_config(), {RUN_PRIORITY_TAG: "10"})
        wait_until_queued(cli, urgent.run_id, set(URGENT_PRIORITIES))
    finally:
        gate.write_text("open")
        background.join()
        if urgent is not None:
            urgent.join()
    assert urgent is not None

    effective = {**FAN_PRIORITIES, **{k: p + 10 for k, p in URGENT_PRIORITIES.items()}}
    run_ids = [background.run_id, urgent.run_id]
    submitted = submitted_priorities(one_slot, run_ids)
    assert {k: submitted[k] for k in effective} == effective
    order = start_order(one_slot, run_ids, set(effective))
    assert_band_order(order, effective)
    position = {k: i for i, (_, k) in enumerate(order)}
    assert position["urgent_0"] < position["prio_5"], order
    assert position["urgent_minus5"] < position["prio_0"], order
