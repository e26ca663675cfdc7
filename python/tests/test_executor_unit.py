"""The executor's own bookkeeping, without workers: what makes it read the event log,
and how the workers of started steps are written and read back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.retries import RetryMode
from dagster._core.storage.dagster_run import DagsterRun

from dagster_taskiq import report
from dagster_taskiq.cli import TaskStatus, WorkerInfo
from dagster_taskiq.executor import RunLogFiles, TaskiqExecutor


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home")) as found:
        yield found


def _run(instance: DagsterInstance) -> DagsterRun:
    return instance.add_run(DagsterRun(job_name="job", run_id="r" * 8 + "-0000-0000-0000-" + "0" * 12))


class _Log:
    def warning(self, message: str) -> None:
        raise AssertionError(message)


class _Context:
    """The parts of a PlanOrchestrationContext the worker report uses."""

    def __init__(self, instance: DagsterInstance, run: DagsterRun) -> None:
        self.instance, self.dagster_run, self.log = instance, run, _Log()


class _Handler:
    """A step handler whose tasks all run, each on the worker given."""

    def __init__(self, workers: dict[str, str]) -> None:
        self.workers = workers
        self.polls: list[list[str]] = []
        self.launched_attempts = 0
        self.launched: dict[str, int] = {}

    def launched_of(self, base_key: str) -> int:
        return self.launched.get(base_key, 0)

    def latest_task_id(self, step_key: str) -> str | None:
        return f"task-{step_key}"

    def submit_pending(self) -> int:
        return 0

    def task_statuses(self, task_ids: Sequence[str]) -> list[TaskStatus]:
        self.polls.append(sorted(task_ids))
        keys = [t.removeprefix("task-") for t in task_ids]
        return [
            TaskStatus(id=f"task-{key}", state="running", worker=WorkerInfo(host="h", pid=7, id=self.workers[key]))
            for key in keys
            if key in self.workers
        ]


def _executor(handler: Any, instance: DagsterInstance, run: DagsterRun) -> TaskiqExecutor:
    executor = TaskiqExecutor(handler, retries=RetryMode.DISABLED, sleep_seconds=0.1, max_sleep_seconds=1.0)
    executor._plan_context = _Context(instance, run)  # type: ignore[assignment]
    return executor


def _engine_events(instance: DagsterInstance, run_id: str) -> list[Any]:
    return [e.dagster_event for e in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)]


def test_steps_found_together_are_reported_in_one_write(instance: DagsterInstance) -> None:
    run = _run(instance)
    executor = _executor(_Handler({"a": "w-1", "b": "w-2", "c": "w-1"}), instance, run)
    executor._pending_workers = {"task-a": "a", "task-b": "b", "task-c": "c"}
    executor._report_workers()
    events = _engine_events(instance, run.run_id)
    assert len(events) == 1 and events[0].step_key is None
    assert "Step b runs on taskiq-go worker w-2" in (events[0].message or "")
    found = report.step_workers(instance, run.run_id)
    assert {k: [w.worker_id for w in v] for k, v in found.items()} == {"a": ["w-1"], "b": ["w-2"], "c": ["w-1"]}
    assert found["b"][0].task_id == "task-b" and found["b"][0].host == "h"
    assert not executor._pending_workers


def test_a_step_found_alone_gets_its_own_event(instance: DagsterInstance) -> None:
    run = _run(instance)
    handler = _Handler({"a": "w-1"})
    executor = _executor(handler, instance, run)
    executor._pending_workers = {"task-a": "a", "task-late": "late"}  # "late" has no worker yet: asked again
    executor._report_workers()
    events = _engine_events(instance, run.run_id)
    assert [e.step_key for e in events] == ["a"]
    assert executor._pending_workers == {"task-late": "late"}
    handler.workers["late"] = "w-2"
    executor._report_workers()
    assert handler.polls == [["task-a", "task-late"], ["task-late"]]
    assert [e.step_key for e in _engine_events(instance, run.run_id)] == ["a", "late"]
    found = report.step_workers(instance, run.run_id)
    assert {k: [w.worker_id for w in v] for k, v in found.items()} == {"a": ["w-1"], "late": ["w-2"]}


def test_attempts_keep_their_order_across_both_kinds_of_event(instance: DagsterInstance) -> None:
    run = _run(instance)
    rows = [{"step_key": "a", "worker_id": "w-1", "host": "h", "pid": 1, "task_id": "t1", "attempt": 1}]
    rows.append({"step_key": "b", "worker_id": "w-1", "host": "h", "pid": 1, "task_id": "t2", "attempt": 1})
    from dagster import MetadataValue

    instance.report_engine_event(
        "two", run, EngineEventData(metadata={report.STEP_WORKERS_KEY: MetadataValue.json(rows)})
    )
    instance.report_engine_event(
        "retry of a", run, EngineEventData(metadata={report.WORKER_ID_KEY: "w-2", report.TASK_ID_KEY: "t3"}), step_key="a"
    )
    instance.report_engine_event("unrelated", run, EngineEventData(metadata={"other": "x"}))
    found = report.step_workers(instance, run.run_id)
    assert [w.worker_id for w in found["a"]] == ["w-1", "w-2"]
    assert [w.task_id for w in found["a"]] == ["t1", "t3"]
    assert [w.worker_id for w in found["b"]] == ["w-1"]


def test_a_step_is_looked_up_only_once_it_ran_a_while_short_ones_at_the_end(instance: DagsterInstance) -> None:
    # chain10's steps end within a second: looking up each one's worker as it started
    # cost a poll and an event-log write every few seconds of the run.
    from dagster_taskiq import executor as executor_module

    run = _run(instance)
    handler = _Handler({"short": "w-1", "long": "w-2"})
    executor = _executor(handler, instance, run)
    seen: set[int] = set()

    def pop() -> None:
        executor._last_read = -1e9  # every round reads, so each event comes out at once
        executor._pop_events(instance, run.run_id, seen)

    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_START, "short"), run.run_id)
    pop()
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "short"), run.run_id)
    pop()
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_START, "long"), run.run_id)
    pop()
    instance.report_engine_event("a log line", run, EngineEventData(), step_key="long")
    pop()
    assert handler.polls == [] and set(executor._pending_workers) == {"task-short", "task-long"}
    executor._running_since["task-long"] -= executor_module.WORKER_POLL_INTERVAL  # it has run that long
    instance.report_engine_event("another", run, EngineEventData(), step_key="long")
    pop()
    assert handler.polls == [["task-long", "task-short"]]  # one poll: the short one comes along
    assert not executor._pending_workers and not executor._running_since
    assert {k: [w.worker_id for w in v] for k, v in report.step_workers(instance, run.run_id).items()} == {
        "short": ["w-1"],
        "long": ["w-2"],
    }


def test_steps_that_ended_are_reported_with_the_runs_end(instance: DagsterInstance) -> None:
    run = _run(instance)
    handler = _Handler({"a": "w-1", "b": "w-2"})
    executor = _executor(handler, instance, run)
    seen: set[int] = set()
    for key in ("a", "b"):
        instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_START, key), run.run_id)
        instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, key), run.run_id)
        executor._last_read = -1e9
        executor._pop_events(instance, run.run_id, seen)
    assert handler.polls == [] and not executor._running_since
    executor._report_workers()  # what execute does once the run's steps are done
    assert handler.polls == [["task-a", "task-b"]]
    assert len(_engine_events(instance, run.run_id)) == 1


def test_the_run_files_change_with_each_write(instance: DagsterInstance) -> None:
    run = _run(instance)
    files = RunLogFiles.for_run(instance, run.run_id)
    assert files.paths and files.paths[0].endswith(f"{run.run_id}.db")
    before = files.signature()
    instance.report_engine_event("one", run, EngineEventData())
    after = files.signature()
    assert after is not None and after != before
    assert files.signature() == after  # nothing written since
    instance.report_engine_event("two", run, EngineEventData())
    assert files.signature() != after
    assert files.probe(0) == (2, [])  # two events, neither a step's end
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "a"), run.run_id)
    assert files.probe(2) == (3, [("a", "STEP_SUCCESS")]) and files.probe(3) == (3, [])
    files.close()


class _Reads(TaskiqExecutor):
    """The executor with Dagster's read of the event log counted."""

    def __init__(self, instance: DagsterInstance, run: DagsterRun) -> None:
        super().__init__(_Handler({}), retries=RetryMode.DISABLED, sleep_seconds=0.1, max_sleep_seconds=30.0)
        self._plan_context = _Context(instance, run)  # type: ignore[assignment]


def _step_event(run: DagsterRun, kind: DagsterEventType, step_key: str) -> DagsterEvent:
    from dagster._core.execution.plan.objects import StepFailureData, StepSuccessData

    data: Any = None
    if kind == DagsterEventType.STEP_SUCCESS:
        data = StepSuccessData(duration_ms=1.0)
    elif kind == DagsterEventType.STEP_FAILURE:
        data = StepFailureData(error=None, user_failure_data=None)
    return DagsterEvent(event_type_value=kind.value, job_name=run.job_name, step_key=step_key, event_specific_data=data)


def test_reads_only_once_a_step_ended(instance: DagsterInstance) -> None:
    run = _run(instance)
    executor = _Reads(instance, run)
    seen: set[int] = set()

    def pop() -> list[DagsterEventType]:
        return [e.event_type for e in executor._pop_events(instance, run.run_id, seen)]

    instance.report_engine_event("starting", run, EngineEventData())
    assert pop() == [DagsterEventType.ENGINE_EVENT] and executor.reads == 1  # the first round reads
    assert pop() == [] and (executor.reads, executor.skipped_reads) == (1, 1)  # nothing written
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_START, "a"), run.run_id)
    instance.report_engine_event("a step's log line", run, EngineEventData(), step_key="a")
    assert pop() == [] and (executor.reads, executor.skipped_reads) == (1, 2)  # nothing to act on
    assert pop() == [] and executor.skipped_reads == 3
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "a"), run.run_id)
    assert pop() == [DagsterEventType.STEP_START, DagsterEventType.ENGINE_EVENT, DagsterEventType.STEP_SUCCESS]
    assert executor.reads == 2
    assert executor._sleep_seconds == pytest.approx(0.1)  # rounds stay poll_interval apart
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_FAILURE, "b"), run.run_id)
    assert pop() == [DagsterEventType.STEP_FAILURE] and executor.reads == 3


def test_reads_at_least_every_max_poll_interval(instance: DagsterInstance) -> None:
    run = _run(instance)
    instance.report_engine_event("starting", run, EngineEventData())
    executor = _Reads(instance, run)
    seen: set[int] = set()
    executor._pop_events(instance, run.run_id, seen)
    instance.report_engine_event("a log line", run, EngineEventData())
    executor._pop_events(instance, run.run_id, seen)
    assert (executor.reads, executor.skipped_reads) == (1, 1)
    executor._last_read -= 30.0  # max_poll_interval later: read what came
    assert [e.message for e in executor._pop_events(instance, run.run_id, seen)] == ["a log line"]
    assert (executor.reads, executor.skipped_reads) == (2, 1)


def test_a_storage_without_files_is_read_every_round_less_often_when_idle() -> None:
    with DagsterInstance.ephemeral() as ephemeral:  # events in memory
        run = _run(ephemeral)
        executor = _Reads(ephemeral, run)
        seen: set[int] = set()
        ephemeral.report_engine_event("starting", run, EngineEventData())
        assert len(executor._pop_events(ephemeral, run.run_id, seen)) == 1
        assert executor._pop_events(ephemeral, run.run_id, seen) == []
        assert (executor.reads, executor.skipped_reads) == (2, 0)
        assert executor._sleep_seconds == pytest.approx(0.1 * 1.5 * 1.5)  # nothing to act on: sleep longer
        ephemeral.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "a"), run.run_id)
        assert len(executor._pop_events(ephemeral, run.run_id, seen)) == 1
        assert executor._sleep_seconds == pytest.approx(0.1)


def test_a_leaf_ending_while_others_run_is_read_later(instance: DagsterInstance) -> None:
    run = _run(instance)
    executor = _Reads(instance, run)
    executor._feeds, executor._every_end_matters = {"a": [None]}, False  # "a" feeds a mapped step
    executor._taskiq.launched_attempts = 3  # type: ignore[attr-defined]
    seen: set[int] = set()

    def pop() -> list[str | None]:
        return [e.step_key for e in executor._pop_events(instance, run.run_id, seen)]

    instance.report_engine_event("starting", run, EngineEventData())
    pop()
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "leaf"), run.run_id)
    assert pop() == [] and executor.reads == 1  # nothing waits for it, and two still run
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "a[1]"), run.run_id)
    assert pop() == ["leaf", "a[1]"] and executor.reads == 2  # its downstream may start
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "other"), run.run_id)
    assert pop() == ["other"] and executor.reads == 3  # the last one in flight: the run ends
    executor._every_end_matters = True  # a concurrency limit: any end frees a slot
    executor._taskiq.launched_attempts = 9  # type: ignore[attr-defined]
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "leaf2"), run.run_id)
    assert pop() == ["leaf2"] and executor.reads == 4


def test_the_plan_says_which_steps_feed_others() -> None:
    from dagster._core.execution.api import create_execution_plan

    from jobs import recon

    plan = create_execution_plan(recon("fan_out"))
    executor = TaskiqExecutor(_Handler({}), retries=RetryMode.DISABLED)
    feeds, every = executor._plan_shape(plan)
    # emit feeds the mapped square[?]; total waits for every square
    assert not every and feeds == {"emit": [None], "square": [frozenset({"square"})]}, feeds
    limited = TaskiqExecutor(_Handler({}), retries=RetryMode.DISABLED, max_concurrent=2)
    assert limited._plan_shape(plan) == (None, True)


def test_a_fan_outs_ends_are_read_once_with_the_last(instance: DagsterInstance) -> None:
    # leaf[0..2] all feed "gather", which waits for every leaf: only the last
    # leaf's end can make it ready, so the two before it are read with that one.
    run = _run(instance)
    executor = _Reads(instance, run)
    executor._feeds, executor._every_end_matters = {"leaf": [frozenset({"leaf"})]}, False
    handler = executor._taskiq
    handler.launched, handler.launched_attempts = {"leaf": 3}, 3  # type: ignore[attr-defined]
    seen: set[int] = set()

    def pop() -> list[str | None]:
        return [e.step_key for e in executor._pop_events(instance, run.run_id, seen)]

    instance.report_engine_event("starting", run, EngineEventData())
    pop()
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "leaf[0]"), run.run_id)
    assert pop() == []
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "leaf[1]"), run.run_id)
    assert pop() == [] and executor.reads == 1
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_UP_FOR_RETRY, "leaf[2]"), run.run_id)
    assert pop() == ["leaf[0]", "leaf[1]", "leaf[2]"] and executor.reads == 2  # a retry is acted on
    handler.launched = {"leaf": 4}  # type: ignore[attr-defined]  # leaf[2] again
    handler.launched_attempts = 4  # type: ignore[attr-defined]
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "leaf[2]"), run.run_id)
    assert pop() == ["leaf[2]"] and executor.reads == 3  # the last leaf: gather is ready


def test_the_run_file_answers_dagsters_read_as_dagster_does(instance: DagsterInstance) -> None:
    # The executor's read of the run's events, through the connection it keeps
    # open, gives the records and cursors Dagster's own read gives.
    run = _run(instance)
    instance.report_engine_event("one", run, EngineEventData())
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_START, "a"), run.run_id)
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "a"), run.run_id)
    files = RunLogFiles.for_run(instance, run.run_id)
    all_types = set(DagsterEventType)
    cursors: list[str | None] = [None]
    for limit in (2, 1000, 1000):
        cursor = cursors[-1]
        ours = files.records(run.run_id, cursor, all_types, limit)
        theirs = instance.get_records_for_run(run.run_id, cursor, of_type=all_types, limit=limit)
        assert ours is not None
        assert [r.storage_id for r in ours.records] == [r.storage_id for r in theirs.records]
        assert [r.event_log_entry for r in ours.records] == [r.event_log_entry for r in theirs.records]
        assert (ours.cursor, ours.has_more) == (theirs.cursor, theirs.has_more)
        cursors.append(ours.cursor)
    assert files.records(run.run_id, None, None, None) is None  # not a read it knows: Dagster's
    files.close()


def test_a_replaced_run_file_is_read_again(instance: DagsterInstance, tmp_path: Path) -> None:
    # The file at the run's path replaced by a copy (restored, rotated): the events written
    # to it afterwards are found, not the old file's through the connection kept open.
    import sqlite3

    run = _run(instance)
    instance.report_engine_event("one", run, EngineEventData())
    files = RunLogFiles.for_run(instance, run.run_id)
    files.signature()
    assert files.probe(0) == (1, [])
    copy = tmp_path / "copy.db"
    src, dst = sqlite3.connect(files.paths[0]), sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    copy.replace(files.paths[0])
    instance.report_dagster_event(_step_event(run, DagsterEventType.STEP_SUCCESS, "a"), run.run_id)
    files.signature()  # each look stats the files before it queries them
    assert files.probe(1) == (2, [("a", "STEP_SUCCESS")])
    ours = files.records(run.run_id, None, set(DagsterEventType), None)
    assert ours is not None and [r.storage_id for r in ours.records] == [1, 2]
    files.close()


SHARED_ENGINES_PROBE = """
import sys
import sqlalchemy
from dagster import DagsterInstance
from dagster._core.events import EngineEventData
from dagster._core.storage.dagster_run import DagsterRun
from dagster_taskiq import executor, forkserver

made = []
real = sqlalchemy.create_engine
def counting(url, **kwargs):
    made.append(str(url))
    return real(url, **kwargs)
for name in forkserver.SQLITE_STORAGE_MODULES:  # what the storages call, seen before it is wrapped
    __import__(name, fromlist=["x"]).create_engine = counting
sqlalchemy.create_engine = counting
with DagsterInstance.ephemeral() as ephemeral, executor.shared_sqlite_engines(ephemeral) as shared:
    assert shared is False  # not SQLite files: left alone
with DagsterInstance.from_config(sys.argv[1]) as instance:
    run = instance.add_run(DagsterRun(job_name="job", run_id="r" * 8 + "-0000-0000-0000-" + "0" * 12))
    with executor.shared_sqlite_engines(instance) as shared:
        assert shared is True
        for i in range(5):
            instance.report_engine_event(f"event {i}", run, EngineEventData())
        assert len(instance.all_logs(run.run_id)) == 5
    run_files = [u for u in made if run.run_id in u]
    assert len(run_files) == 1, made  # five writes and a read of the run's file, one engine
    for name in forkserver.SQLITE_STORAGE_MODULES:  # Dagster's own function back
        assert __import__(name, fromlist=["x"]).create_engine is counting
    instance.report_engine_event("after", run, EngineEventData())
    assert len([u for u in made if run.run_id in u]) == 2, made
"""


def test_the_orchestrators_writes_share_one_engine_per_sqlite_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SHARED_ENGINES_PROBE, str(home)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
