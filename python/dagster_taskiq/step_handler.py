"""The step handler: one taskiq-go task per Dagster step attempt."""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence

from dagster import _check as check
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.executor.step_delegating.step_handler.base import (
    CheckStepHealthResult,
    StepHandler,
    StepHandlerContext,
)
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import serialize_value
from dagster_shared.record import copy

from dagster_taskiq.cli import EXIT_UNKNOWN_TASK, TaskiqCli, TaskiqCliError, TaskStatus
from dagster_taskiq.config import TaskiqSettings
from dagster_taskiq.tags import new_step_task_id, step_task_prefix, task_priority

#: States in which a step's task is still doing its job.
_HEALTHY_STATES = frozenset({"queued", "running", "succeeded"})
_STDERR_TAIL = 2000
#: How long a step may stay unreported after its task succeeded. The step's
#: events are written before its process exits, so this only trips when the
#: step refused to run (a duplicate attempt) or its events were lost.
SUCCEEDED_WITHOUT_EVENTS_GRACE = 15.0
#: Longest that one poll's answer serves the health checks of the other steps:
#: Dagster checks every running step once per round, rounds an interval apart,
#: and the first check of a round polls them all; a step asked about again
#: starts the next round. The executor sets it to its interval: a round whose
#: checks are slow (each failed step is a write of the event log) still polls once.
HEALTH_CACHE_SECONDS = 1.0
#: The fast-exit wrapper of the dagster CLI, warm through a fork server when the
#: worker has one (see dagster_taskiq_step and dagster_taskiq.step_entry).
STEP_ENTRY_SCRIPT = "dagster-taskiq-step"
STEP_ENTRY_MODULE = "dagster_taskiq_step"
#: Stands for the step key in the serialized step arguments that the steps of one
#: round share (see TaskiqStepHandler.compressed_args).
_KEY_PLACEHOLDER = "__dagster_taskiq_step_key__"


def _step_key(ctx: StepHandlerContext) -> str:
    keys = check.not_none(ctx.execute_step_args.step_keys_to_execute)
    check.invariant(len(keys) == 1, "TaskiqStepHandler launches exactly one step per task")
    return keys[0]


def _attempt(ctx: StepHandlerContext, step_key: str) -> int:
    known = ctx.execute_step_args.known_state
    return known.get_retry_state().get_attempt_count(step_key) if known else 0


class TaskiqStepHandler(StepHandler):
    """Submits each step to taskiq-go, polls it for health and cancels it on termination."""

    def __init__(self, settings: TaskiqSettings, cli: TaskiqCli) -> None:
        super().__init__()
        self._settings = settings
        self._cli = cli
        # (step key, attempt) -> task id of its latest launch; step key -> (attempt, task id) of its latest.
        self._task_ids: dict[tuple[str, int], str] = {}
        self._latest: dict[str, tuple[int, str]] = {}
        # base key (before any mapping key) -> how many attempts of its steps were launched.
        self._launched_by_base: collections.Counter[str] = collections.Counter()
        # task id -> when a health check first saw it succeeded while its step still ran.
        self._succeeded_seen: dict[str, float] = {}
        # task id -> (when polled, its status): the last round of health checks.
        self._health: dict[str, tuple[float, TaskStatus]] = {}
        # task id -> when it was submitted or its health last asked for: what the next round polls.
        self._watched: dict[str, float] = {}
        # task ids whose health was asked for since the last poll: this round's checks.
        self._asked: set[str] = set()
        self.health_cache_seconds = HEALTH_CACHE_SECONDS
        self._lock = threading.Lock()
        # Specs of the step attempts launched since the last submit_pending, in launch order.
        self._unsubmitted: list[dict[str, object]] = []
        # Task ids whose submit failed: nothing to cancel.
        self._not_submitted: set[str] = set()
        # The step arguments of the last launch but its step key, and their JSON with the
        # key left as _KEY_PLACEHOLDER; whether that shortcut gave Dagster's own text.
        self._args_shared: tuple[object, ...] | None = None
        self._args_json = ""
        self._args_checked = False
        self._args_shortcut = True

    @property
    def name(self) -> str:
        return "TaskiqStepHandler"

    @property
    def cli(self) -> TaskiqCli:
        return self._cli

    @property
    def settings(self) -> TaskiqSettings:
        return self._settings

    @property
    def launched_attempts(self) -> int:
        """How many step attempts this handler has launched (or found running, for a resumed run)."""
        with self._lock:
            return len(self._task_ids)

    def latest_task_id(self, step_key: str) -> str | None:
        """The task id of the step's most recent launch in this process, if any."""
        with self._lock:
            found = self._latest.get(step_key)
        return found[1] if found else None

    def launched_of(self, base_key: str) -> int:
        """How many attempts of the steps of this base key (``leaf`` for ``leaf[3]``) were launched."""
        with self._lock:
            return self._launched_by_base[base_key]

    def _remember(self, step_key: str, attempt: int, task_id: str) -> None:
        """Records a step attempt's task (with the lock held)."""
        if (step_key, attempt) not in self._task_ids:
            self._launched_by_base[step_key.split("[", 1)[0]] += 1
        self._task_ids[(step_key, attempt)] = task_id
        if attempt >= self._latest.get(step_key, (-1, ""))[0]:
            self._latest[step_key] = (attempt, task_id)

    # -- building the task -----------------------------------------------------------

    def step_argv(self, ctx: StepHandlerContext) -> list[str]:
        """``ExecuteStepArgs.get_command_args()``, through the fast-exit entry point when enabled.

        Only the two standard entry points (``dagster`` and ``PYTHON -m dagster``)
        are swapped; a custom one is left as it is.
        """
        args = ctx.execute_step_args
        argv = [*args.get_command_args(skip_serialized_namedtuple=True), "--compressed-input-json"]
        argv.append(self.compressed_args(args))
        if not self._settings.fast_exit or "api" not in argv:
            return argv
        entry, rest = argv[: argv.index("api")], argv[argv.index("api") :]
        if entry == ["dagster"]:
            return [STEP_ENTRY_SCRIPT, *rest]
        if len(entry) == 3 and entry[1:] == ["-m", "dagster"]:
            return [entry[0], "-m", STEP_ENTRY_MODULE, *rest]
        return argv

    def compressed_args(self, args: ExecuteStepArgs) -> str:
        """``args._get_compressed_args()``, what ``--compressed-input-json`` takes, for less.

        The steps Dagster launches in one round have the same arguments but their
        step key, and their known state (ready outputs, mapping keys, retries)
        grows with the run: serializing it for each of a fan-out's 200 steps cost
        the orchestrator more than their submits. The JSON is made once per
        state, with a placeholder for the key, and only compressed per step. The
        first result is compared with Dagster's own; should they ever differ,
        every later step gets Dagster's.
        """
        keys = args.step_keys_to_execute
        if not self._args_shortcut or keys is None or len(keys) != 1:
            return args._get_compressed_args()
        known = args.known_state
        # A copy of the known state: Dagster hands it the run's own set of ready outputs,
        # which grows in place as steps end.
        state = None
        if known is not None:
            state = (
                frozenset(known.ready_outputs or ()),
                repr(known.previous_retry_attempts),
                repr(known.dynamic_mappings),
                repr(known.step_output_versions),
                repr(known.parent_state),
            )
        shared = (
            args.job_origin,
            args.run_id,
            args.instance_ref,
            args.retry_mode,
            state,
            args.should_verify_step,
            args.print_serialized_events,
        )
        marker = json.dumps(_KEY_PLACEHOLDER)
        if self._args_shared is None or self._args_shared != shared:
            text = serialize_value(copy(args, step_keys_to_execute=[_KEY_PLACEHOLDER]))
            if text.count(marker) != 1:
                self._args_shortcut = False
                return args._get_compressed_args()
            self._args_shared, self._args_json = shared, text
        out = base64.b64encode(zlib.compress(self._args_json.replace(marker, json.dumps(keys[0])).encode())).decode()
        if not self._args_checked:
            self._args_checked = True
            if out != args._get_compressed_args():
                self._args_shortcut = False
                return args._get_compressed_args()
        return out

    def task_spec(self, ctx: StepHandlerContext, task_id: str) -> dict[str, object]:
        """The task document for one step attempt."""
        step_key = _step_key(ctx)
        run = ctx.dagster_run
        step_tags: Mapping[str, str] = ctx.step_tags.get(step_key, {})
        attempt = _attempt(ctx, step_key)
        return self._settings.task_spec(
            task_id,
            self.step_argv(ctx),
            group=run.run_id,
            env={"DAGSTER_RUN_JOB_NAME": run.job_name, "DAGSTER_RUN_STEP_KEY": step_key},
            labels={
                "dagster/run_id": run.run_id,
                "dagster/job": run.job_name,
                "dagster/step_key": step_key,
                "dagster/attempt": str(attempt + 1),
            },
            priority=task_priority(step_tags, run.tags, self._settings.priority),
            queue_tags=step_tags,
        )

    # -- StepHandler -----------------------------------------------------------------

    def launch_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        """Queues the step's task for :meth:`submit_pending`, which the executor calls once
        Dagster has launched every step ready in this round: they go in one submit."""
        ctx = step_handler_context
        step_key = _step_key(ctx)
        attempt = _attempt(ctx, step_key)
        task_id = new_step_task_id(ctx.execute_step_args.run_id, step_key, attempt)
        spec = self.task_spec(ctx, task_id)
        with self._lock:
            self._remember(step_key, attempt, task_id)
            self._unsubmitted.append(spec)
        queue = str(spec.get("queue") or "default")
        yield DagsterEvent.step_worker_starting(
            ctx.get_step_context(step_key),
            message=f"Submitting step {step_key} to taskiq-go queue {queue} as task {task_id}.",
            metadata={
                "taskiq task id": task_id,
                "taskiq queue": queue,
                "taskiq priority": int(spec["priority"]),  # type: ignore[call-overload]
            },
        )

    def submit_pending(self) -> int:
        """Submits the step attempts launched since the last call, together, in launch
        order (Dagster's, highest priority first); returns how many."""
        with self._lock:
            specs, self._unsubmitted = self._unsubmitted, []
        if not specs:
            return 0
        try:
            self._cli.submit_many(specs)
        except Exception:
            with self._lock:
                self._not_submitted.update(str(s["id"]) for s in specs)
            raise
        now = time.monotonic()
        with self._lock:  # the next round of health checks polls them all at once
            self._watched.update((str(s["id"]), now) for s in specs)
        return len(specs)

    def _drop_unsubmitted(self, task_id: str) -> bool:
        """Forgets a launched attempt not submitted yet (or whose submit failed); whether it was one."""
        with self._lock:
            kept = [s for s in self._unsubmitted if s.get("id") != task_id]
            found = len(kept) != len(self._unsubmitted) or task_id in self._not_submitted
            self._unsubmitted = kept
            return found

    def _find_task_id(self, ctx: StepHandlerContext, step_key: str) -> str | None:
        attempt = _attempt(ctx, step_key)
        with self._lock:
            known = self._task_ids.get((step_key, attempt))
        if known:
            return known
        # Not launched by this process (a resumed run): look for it in the run's group.
        prefix = step_task_prefix(ctx.execute_step_args.run_id, step_key, attempt) + "."
        ids = sorted(s.id for s in self._cli.poll_group(ctx.execute_step_args.run_id) if s.id.startswith(prefix))
        if not ids:
            return None
        with self._lock:
            self._remember(step_key, attempt, ids[-1])
        return ids[-1]

    def check_step_health(self, step_handler_context: StepHandlerContext) -> CheckStepHealthResult:
        ctx = step_handler_context
        self.submit_pending()  # a task is checked only once it was sent
        step_key = _step_key(ctx)
        task_id = self._find_task_id(ctx, step_key)
        if task_id is None:
            return CheckStepHealthResult.unhealthy(f"no taskiq-go task was found for step {step_key}")
        try:
            status = self._health_status(task_id)
        except TaskiqCliError as exc:
            if exc.exit_code == EXIT_UNKNOWN_TASK:
                return CheckStepHealthResult.unhealthy(f"taskiq-go does not know task {task_id}")
            raise
        if status is None:
            return CheckStepHealthResult.unhealthy(f"taskiq-go reported nothing for task {task_id}")
        if status.state == "succeeded":
            first = self._succeeded_seen.setdefault(task_id, time.monotonic())
            if time.monotonic() - first > SUCCEEDED_WITHOUT_EVENTS_GRACE:
                return CheckStepHealthResult.unhealthy(
                    f"taskiq-go task {task_id} succeeded on worker {status.worker} but step "
                    f"{step_key} reported no outcome (did it refuse to run a duplicate attempt?)"
                )
            return CheckStepHealthResult.healthy()
        if status.state in _HEALTHY_STATES:
            return CheckStepHealthResult.healthy()
        return CheckStepHealthResult.unhealthy(self._describe_failure(status))

    def _health_status(self, task_id: str) -> TaskStatus | None:
        """The task's status for this round of health checks.

        The first check of a round polls, in one call, every task submitted
        or asked about lately and not seen ended (the steps still running,
        also those not checked yet); the other checks of the round read that
        answer, however long the round takes, up to ``health_cache_seconds``.
        A task asked about twice since the poll is a check of the next round. Dagster checks the running steps one by one: polling only
        those asked about so far would poll 1, 2, ... n tasks in the first
        round of a run of n steps.
        """
        now = time.monotonic()
        with self._lock:
            self._watched[task_id] = now
            hit = self._health.get(task_id)
            if hit is not None and task_id not in self._asked and now - hit[0] < self.health_cache_seconds:
                self._asked.add(task_id)
                return hit[1]
            forget = now - max(3 * self.health_cache_seconds, 30.0)
            self._watched = {t: seen for t, seen in self._watched.items() if seen >= forget}
            ids = sorted(self._watched)
        try:
            statuses = self._cli.poll(ids)
        except TaskiqCliError as exc:
            if exc.exit_code != EXIT_UNKNOWN_TASK or ids == [task_id]:
                raise
            with self._lock:  # one of the others is unknown: ask for this one alone
                self._watched.pop(task_id, None)
            statuses = self._cli.poll([task_id])
        with self._lock:
            self._health = {s.id: (now, s) for s in statuses}
            self._asked = {task_id}
            for s in statuses:
                if s.is_final:  # its step ends with it; asked again, it is polled again
                    self._watched.pop(s.id, None)
        return next((s for s in statuses if s.id == task_id), None)

    def _describe_failure(self, status: TaskStatus) -> str:
        parts = [f"taskiq-go task {status.id} is {status.state}"]
        if status.exit_code is not None:
            parts.append(f"exit code {status.exit_code}")
        if status.state == "lost":
            parts.append(f"its worker {status.worker} stopped heartbeating")
        elif status.worker.id:
            parts.append(f"worker {status.worker}")
        if status.error:
            parts.append(status.error)
        reason = "; ".join(parts)
        if status.is_final and status.state != "cancelled":
            tail = self._stderr_tail(status.id)
            if tail:
                reason += f"\nstderr (tail):\n{tail}"
        return reason

    def _stderr_tail(self, task_id: str) -> str:
        try:
            record = self._cli.result(task_id)
        except Exception:  # the reason is still useful without the output
            return ""
        stderr = record.get("stderr") or {}
        text = str(stderr.get("tail") or stderr.get("data") or "")
        return text[-_STDERR_TAIL:]

    def terminate_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        ctx = step_handler_context
        step_key = _step_key(ctx)
        task_id = self._find_task_id(ctx, step_key)
        if task_id is None or self._drop_unsubmitted(task_id):
            return  # never sent: nothing runs
        yield DagsterEvent.engine_event(
            ctx.get_step_context(step_key),
            message=f"Cancelling taskiq-go task {task_id} of step {step_key}.",
            event_specific_data=EngineEventData(),
        )
        self._cli.cancel([task_id])

    # -- worker reporting ------------------------------------------------------------

    def task_statuses(self, task_ids: Sequence[str]) -> list[TaskStatus]:
        """The states of these tasks (step attempts), in one poll."""
        return self._cli.poll(sorted(set(task_ids))) if task_ids else []
