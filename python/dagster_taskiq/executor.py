"""``taskiq_executor``: Dagster's step-delegating executor running each step as a taskiq-go task."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from dagster import Field, IntSource, executor
from dagster import _check as check
from dagster._core.definitions.executor_definition import multiple_process_executor_requirements
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.execution.tags import get_tag_concurrency_limits_config
from dagster._core.executor.base import Executor
from dagster._core.executor.init import InitExecutorContext
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.step import ExecutionStep
from dagster._core.executor.step_delegating import StepDelegatingExecutor
from dagster._core.executor.step_delegating import step_delegating_executor as _sde
from dagster._core.storage.tags import PRIORITY_TAG as DAGSTER_PRIORITY_TAG
from dagster._core.instance import DagsterInstance

from dagster_taskiq.cli import ConnectionSettings, TaskStatus
from dagster_taskiq.config import TaskiqSettings, connection_config_schema
from dagster_taskiq.report import TASK_ID_KEY, WORKER_HOST_KEY, WORKER_ID_KEY, WORKER_PID_KEY
from dagster_taskiq.step_handler import TaskiqStepHandler
from dagster_taskiq.tags import task_priority


def executor_config_schema() -> dict[str, Field]:
    return {
        **connection_config_schema(),
        "retries": get_retries_config(),
        "max_concurrent": Field(
            IntSource,
            is_required=False,
            description="Most steps of one run in flight at once (queued or running). "
            "This limit is per run, not global.",
        ),
        "tag_concurrency_limits": get_tag_concurrency_limits_config(),
        "health_check_interval": Field(
            IntSource,
            is_required=False,
            default_value=10,
            description="Seconds between checks of running steps' tasks; a step whose task "
            "failed, was cancelled, timed out or lost its worker is marked failed (or retried).",
        ),
        "fast_exit": Field(
            bool,
            is_required=False,
            default_value=True,
            description="Run steps through `dagster-taskiq-step`, the dagster CLI without the "
            "interpreter's teardown, which frees the worker's slot about half a second sooner. "
            "Workers then need dagster-taskiq installed beside dagster (they do if the job's "
            "code imports it). False runs `dagster api execute_step` unchanged.",
        ),
        "poll_interval": Field(
            float,
            is_required=False,
            default_value=0.1,
            description="Seconds the orchestrator sleeps between reads of the event log while "
            "steps report events; after each read that finds none the sleep grows by half, up to "
            "max_poll_interval, and it drops back at the next event.",
        ),
        "max_poll_interval": Field(
            float,
            is_required=False,
            default_value=1.0,
            description="Longest sleep between reads of the event log, reached while the running "
            "steps report nothing (long steps): a read costs the orchestrator CPU time.",
        ),
    }


@executor(
    name="taskiq",
    config_schema=executor_config_schema(),
    requirements=multiple_process_executor_requirements(),
)
def taskiq_executor(init_context: InitExecutorContext) -> Executor:
    """Runs each step as a task on taskiq-go workers fed by an SQS queue.

    Steps report their events through the Dagster instance, so workers need the
    job's code importable and access to the instance's storage. Set it as a
    job's ``executor_def`` and configure it under ``execution: config:``::

        execution:
          config:
            queue_url: https://sqs.us-east-1.amazonaws.com/123/taskiq
            bucket: my-taskiq-results
            max_concurrent: 8

    Step tags ``dagster-taskiq/queue`` and ``dagster-taskiq/priority`` and the
    run tag ``dagster-taskiq/run_priority`` route and order the tasks. Settings
    left unset are taken from a ``TaskiqRunLauncher`` on the instance, then from
    the environment (``TASKIQ_GO_QUEUE_URL``, ``DAGSTER_TASKIQ_SQS_QUEUE_URL``...).
    """
    config = init_context.executor_config
    settings = _merge_launcher_settings(TaskiqSettings.from_config(config), init_context.instance)
    cli = settings.make_cli()
    cli.preflight()  # fail the run at once, naming the problem, rather than at its first step
    cli.check_wire_version()
    handler = TaskiqStepHandler(settings, cli)
    # One poll answers a whole round of health checks (see TaskiqStepHandler._health_status).
    handler.health_cache_seconds = check.int_elem(config, "health_check_interval") / 2
    return TaskiqExecutor(
        handler,
        retries=check.not_none(RetryMode.from_config(check.dict_elem(config, "retries"))),
        max_concurrent=check.opt_int_elem(config, "max_concurrent"),
        tag_concurrency_limits=check.opt_list_elem(config, "tag_concurrency_limits"),
        check_step_health_interval_seconds=check.int_elem(config, "health_check_interval"),
        sleep_seconds=check.float_elem(config, "poll_interval"),
        max_sleep_seconds=check.float_elem(config, "max_poll_interval"),
        should_verify_step=True,
    )


# -- the order ready steps are submitted in ----------------------------------------
#
# Dagster's step-delegating executor builds its ActiveExecution without a
# sort key, so ready steps come out in the order of Dagster's own
# ``dagster/priority`` tag. dagster-celery passed a key made of its priority
# tags; to do the same, the executor module's ActiveExecution is replaced (once,
# here) by a subclass that takes a key from a context variable, which only a
# TaskiqExecutor sets, in its own thread, while Dagster builds it. Other
# executors get Dagster's order unchanged.

_SORT_KEY: contextvars.ContextVar[Callable[[ExecutionStep], float] | None] = contextvars.ContextVar(
    "dagster_taskiq_sort_key", default=None
)


class _PrioritisedActiveExecution(ActiveExecution):
    """Dagster's ActiveExecution, ordered by the key a TaskiqExecutor supplies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        key = _SORT_KEY.get()
        if key is not None and kwargs.get("sort_key_fn") is None:
            kwargs["sort_key_fn"] = key
        super().__init__(*args, **kwargs)


if getattr(_sde, "ActiveExecution", None) is ActiveExecution:
    setattr(_sde, "ActiveExecution", _PrioritisedActiveExecution)


def step_sort_key(run_tags: Mapping[str, str], default_priority: int) -> Callable[[ExecutionStep], float]:
    """Highest ``dagster-taskiq/priority`` + ``dagster-taskiq/run_priority`` first, as dagster-celery did;
    Dagster's ``dagster/priority`` orders steps of equal priority."""

    def key(step: ExecutionStep) -> float:
        try:
            ours = task_priority(step.tags, run_tags, default_priority)
        except ValueError:  # reported when the step is launched
            ours = default_priority
        try:
            theirs = int(step.tags.get(DAGSTER_PRIORITY_TAG, 0))
        except ValueError:
            theirs = 0
        return -float(ours) * 1e6 - float(max(-999_999, min(999_999, theirs)))

    return key


def _merge_launcher_settings(settings: TaskiqSettings, instance: DagsterInstance) -> TaskiqSettings:
    """Fills connection settings the executor leaves unset from a TaskiqRunLauncher."""
    from dagster_taskiq.launcher import TaskiqRunLauncher

    try:
        launcher = instance.run_launcher
    except Exception:  # an instance without a loadable launcher still runs steps
        return settings
    if not isinstance(launcher, TaskiqRunLauncher):
        return settings
    mine, theirs = settings.connection, launcher.settings.connection
    connection = ConnectionSettings(
        queue_url=mine.queue_url or theirs.queue_url,
        region_name=mine.region_name or theirs.region_name,
        endpoint_url=mine.endpoint_url or theirs.endpoint_url,
        bucket=mine.bucket or theirs.bucket,
        prefix=mine.prefix or theirs.prefix,
        config_file=mine.config_file or theirs.config_file,
    )
    return TaskiqSettings(
        connection=connection,
        binary=settings.binary or launcher.settings.binary,
        queue=settings.queue,
        priority=settings.priority,
        env_vars=settings.env_vars,
        secrets=settings.secrets or launcher.settings.secrets,
        working_directory=settings.working_directory or launcher.settings.working_directory,
        task_timeout=settings.task_timeout,
        call_timeout=settings.call_timeout,
        fast_exit=settings.fast_exit,
    )


#: Seconds between lookups of the workers of started steps: one poll covers
#: every step that started in that time (and any that has ended since), so a
#: run of short steps costs a poll a second, not one per step.
WORKER_POLL_INTERVAL = 1.0

#: Events that say a step attempt is running on some worker.
_STARTED = frozenset(
    {DagsterEventType.STEP_WORKER_STARTED, DagsterEventType.STEP_START, DagsterEventType.STEP_RESTARTED}
)


class TaskiqExecutor(StepDelegatingExecutor):
    """The step-delegating executor, plus an event per step naming the worker that ran it."""

    def __init__(self, step_handler: TaskiqStepHandler, max_sleep_seconds: float | None = None, **kwargs: Any) -> None:
        self._sleep_min = self._sleep_now = 0.1
        self._sleep_max: float | None = max_sleep_seconds
        super().__init__(step_handler, **kwargs)
        self._taskiq = step_handler
        self._plan_context: PlanOrchestrationContext | None = None
        self._pending_workers: set[str] = set()
        self._reported: set[str] = set()
        self._next_worker_poll = 0.0

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        self._plan_context = plan_context
        token = _SORT_KEY.set(step_sort_key(plan_context.dagster_run.tags, self._taskiq.settings.priority))
        try:
            # The ActiveExecution is built before the first event comes out.
            inner = super().execute(plan_context, execution_plan)
            first = next(inner, None)
        finally:
            _SORT_KEY.reset(token)
        if first is not None:
            yield first
            yield from inner
        self._report_workers()

    # Dagster's loop sleeps self._sleep_seconds between rounds, reading the
    # event log in each one that has steps in flight: here that sleep is
    # poll_interval while events come, and grows by half after each read that
    # found none, up to max_poll_interval. A chain of short steps is read as
    # often as before; an hour-long step costs a read a second, not ten.
    @property
    def _sleep_seconds(self) -> float:
        return self._sleep_now

    @_sleep_seconds.setter
    def _sleep_seconds(self, value: float) -> None:
        self._sleep_min = self._sleep_now = value
        if self._sleep_max is None or self._sleep_max < value:
            self._sleep_max = value

    def _pop_events(self, instance: DagsterInstance, run_id: str, seen_storage_ids: set[int]) -> Sequence[DagsterEvent]:
        events = super()._pop_events(instance, run_id, seen_storage_ids)
        if events:
            self._sleep_now = self._sleep_min
        else:
            self._sleep_now = min(self._sleep_max or self._sleep_min, self._sleep_now * 1.5)
        started = {e.step_key for e in events if e.event_type in _STARTED and e.step_key}
        now = time.monotonic()
        if started and not self._pending_workers:
            self._next_worker_poll = max(self._next_worker_poll, now)
        self._pending_workers |= started
        if self._pending_workers and now >= self._next_worker_poll:
            self._next_worker_poll = now + WORKER_POLL_INTERVAL
            self._report_workers()
        return events

    def _report_workers(self) -> None:
        """Writes 'step X ran on worker W' to the event log once a started step's worker is known."""
        ctx = self._plan_context
        if ctx is None or not self._pending_workers:
            return
        try:
            statuses = self._taskiq.statuses_for_steps(sorted(self._pending_workers))
        except Exception as exc:  # reporting is informative only; never fail the run for it
            ctx.log.warning(f"dagster-taskiq: could not poll step workers: {exc}")
            return
        for step_key, status in statuses.items():
            if status.worker.id and status.id not in self._reported:
                self._reported.add(status.id)
                self._pending_workers.discard(step_key)
                _report_worker(ctx, step_key, status)
            elif status.is_final:
                self._pending_workers.discard(step_key)


def _report_worker(ctx: PlanOrchestrationContext, step_key: str, status: TaskStatus) -> None:
    w = status.worker
    metadata: Mapping[str, Any] = {
        WORKER_HOST_KEY: w.host,
        WORKER_ID_KEY: w.id,
        WORKER_PID_KEY: w.pid,
        TASK_ID_KEY: status.id,
        "taskiq task attempt": status.attempt,
    }
    ctx.instance.report_engine_event(
        f"Step {step_key} runs on taskiq-go worker {w.id} on host {w.host} (task {status.id}).",
        ctx.dagster_run,
        EngineEventData(metadata=metadata),
        step_key=step_key,
    )
