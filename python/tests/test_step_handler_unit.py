"""The step handler's own bookkeeping, without workers: how many tasks a round of
health checks polls, and which task is a step's latest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster_shared.record import copy

from dagster_taskiq.cli import TaskStatus, WorkerInfo
from dagster_taskiq.config import TaskiqSettings
from dagster_taskiq.step_handler import TaskiqStepHandler


class _Cli:
    """A client whose tasks run until told otherwise; it records each poll's ids."""

    def __init__(self) -> None:
        self.polls: list[list[str]] = []
        self.states: dict[str, str] = {}

    def submit_many(self, specs: Sequence[Mapping[str, Any]]) -> list[object]:
        for spec in specs:
            self.states[str(spec["id"])] = "queued"
        return []

    def poll(self, ids: Sequence[str]) -> list[TaskStatus]:
        self.polls.append(list(ids))
        return [TaskStatus(id=i, state=self.states[i], worker=WorkerInfo(id="w-1")) for i in ids]


def _handler(cli: _Cli, task_ids: Sequence[str]) -> TaskiqStepHandler:
    handler = TaskiqStepHandler(TaskiqSettings(), cli)  # type: ignore[arg-type]
    handler._unsubmitted = [{"id": t} for t in task_ids]
    handler.submit_pending()
    return handler


def test_a_round_of_health_checks_polls_every_live_task_once() -> None:
    # Dagster checks the running steps one after another; the first check of
    # the round polls all of them, the steps not checked before included.
    cli = _Cli()
    ids = [f"t{i:03d}" for i in range(200)]
    handler = _handler(cli, ids)
    statuses = [handler._health_status(t) for t in ids]
    assert [s.id for s in statuses if s is not None] == ids
    assert cli.polls == [ids]


def test_tasks_seen_ended_are_not_polled_again() -> None:
    cli = _Cli()
    handler = _handler(cli, ["a", "b", "c"])
    cli.states["b"] = "succeeded"
    handler._health_status("a")
    handler._health = {}  # the next round
    cli.states["a"] = "running"
    assert handler._health_status("a") == TaskStatus(id="a", state="running", worker=WorkerInfo(id="w-1"))
    assert cli.polls == [["a", "b", "c"], ["a", "c"]]


def test_the_latest_attempt_is_the_one_reported() -> None:
    handler = TaskiqStepHandler(TaskiqSettings(), _Cli())  # type: ignore[arg-type]
    handler._remember("s", 1, "task-2")
    handler._remember("s", 0, "task-1")  # found later, for a resumed run: older all the same
    assert handler.latest_task_id("s") == "task-2" and handler.latest_task_id("other") is None
    assert handler.launched_attempts == 2


def _args(step_key: str, ready: int, outputs: set[Any] | None = None) -> Any:
    from dagster._core.execution.plan.handle import StepHandle  # noqa: F401 - the plan's types load
    from dagster._core.execution.plan.outputs import StepOutputHandle
    from dagster._core.execution.plan.state import KnownExecutionState
    from dagster._grpc.types import ExecuteStepArgs

    from jobs import recon

    known = KnownExecutionState(
        previous_retry_attempts={"emit": 1},
        dynamic_mappings={"emit": {"result": [str(i) for i in range(8)]}},
        ready_outputs={StepOutputHandle("emit", "result", str(i)) for i in range(ready)},
    )
    if outputs is not None:  # the same set the whole time, as Dagster's ActiveExecution hands it
        outputs.update(known.ready_outputs)
        known = known._replace(ready_outputs=outputs) if hasattr(known, "_replace") else copy(known, ready_outputs=outputs)
    return ExecuteStepArgs(
        job_origin=recon("fan_out").get_python_origin(),
        run_id="r" * 8 + "-0000-0000-0000-" + "0" * 12,
        step_keys_to_execute=[step_key],
        known_state=known,
        should_verify_step=True,
    )


def test_the_step_arguments_are_dagsters_own() -> None:
    # The JSON shared by the steps of a round, with each step's key put in,
    # compresses to exactly what Dagster would pass: for every step, also once
    # the known state has grown, and for a key JSON must escape.
    handler = TaskiqStepHandler(TaskiqSettings(), _Cli())  # type: ignore[arg-type]
    for key, ready in [("square[0]", 8), ("square[1]", 8), ("total", 8), ('odd "key" é', 8), ("square[2]", 3)]:
        args = _args(key, ready)
        assert handler.compressed_args(args) == args._get_compressed_args(), key
    assert handler._args_shortcut


def test_the_step_arguments_of_a_round_are_serialized_once(monkeypatch: Any) -> None:
    from dagster_taskiq import step_handler

    made: list[str] = []
    original = step_handler.serialize_value

    def counted(value: Any) -> str:
        made.append(type(value).__name__)
        return original(value)

    monkeypatch.setattr(step_handler, "serialize_value", counted)
    handler = TaskiqStepHandler(TaskiqSettings(), _Cli())  # type: ignore[arg-type]
    handler._args_checked = True  # past the first comparison with Dagster's own
    for i in range(8):
        handler.compressed_args(_args(f"square[{i}]", 8))
    handler.compressed_args(_args("total", 9))  # a new known state
    assert made == ["ExecuteStepArgs", "ExecuteStepArgs"]


def test_the_step_arguments_follow_outputs_added_in_place() -> None:
    # Dagster's known state holds the run's own set of ready outputs, which grows
    # as steps end: the arguments of a step launched after that carry them.
    from dagster._core.execution.plan.outputs import StepOutputHandle

    handler = TaskiqStepHandler(TaskiqSettings(), _Cli())  # type: ignore[arg-type]
    outputs: set[Any] = set()
    first = _args("square[0]", 0, outputs)
    assert handler.compressed_args(first) == first._get_compressed_args()
    outputs.update(StepOutputHandle(f"square[{i}]", "result") for i in range(8))
    later = _args("total", 0, outputs)
    assert later.known_state.ready_outputs is first.known_state.ready_outputs
    assert handler.compressed_args(later) == later._get_compressed_args()


def test_a_slow_round_polls_once_and_the_next_round_polls_again() -> None:
    # Checks that write a failure each can make a round outlast half the interval:
    # its answer still serves the round; a step asked about again starts the next.
    cli = _Cli()
    ids = ["a", "b", "c"]
    handler = _handler(cli, ids)
    handler.health_cache_seconds = 60.0
    handler._health_status("a")
    handler._health = {t: (at - 30.0, s) for t, (at, s) in handler._health.items()}  # a slow round
    handler._health_status("b")
    handler._health_status("c")
    assert cli.polls == [ids]
    handler._health_status("a")  # the next round
    assert cli.polls == [ids, ids]
