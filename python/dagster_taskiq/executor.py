"""``taskiq_executor``: Dagster's step-delegating executor running each step as a taskiq-go task."""

from __future__ import annotations

import collections
import contextlib
import contextvars
import importlib
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from dagster import Field, IntSource, MetadataValue, executor
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
from dagster._core.event_api import EventLogCursor, EventLogRecord
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.base import EventLogConnection
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import deserialize_value

from dagster_taskiq.cli import ConnectionSettings, TaskStatus
from dagster_taskiq.config import TaskiqSettings, connection_config_schema
from dagster_taskiq.report import STEP_WORKERS_KEY, TASK_ID_KEY, WORKER_HOST_KEY, WORKER_ID_KEY, WORKER_PID_KEY
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
            description="Seconds between the orchestrator's looks at the run's progress. With "
            "Dagster's default SQLite storage a look is a stat of the run's files and, when they "
            "changed, one small query: the event log is read only once a step ended (or at least "
            "every max_poll_interval). With other storages each look reads the log, and after a "
            "read that brings no step's end the sleep grows by half, up to max_poll_interval.",
        ),
        "max_poll_interval": Field(
            float,
            is_required=False,
            default_value=1.0,
            description="Longest time between reads of the event log while steps run: the events "
            "that change nothing the executor acts on (a step's process starting, its outputs and "
            "logs) come out at least this often. A read costs the orchestrator CPU time.",
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
    handler.health_cache_seconds = float(check.int_elem(config, "health_check_interval"))
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


@contextlib.contextmanager
def shared_sqlite_engines(instance: DagsterInstance) -> Iterator[bool]:
    """While the executor runs, this process's uses of Dagster's default SQLite
    storage reuse one SQLAlchemy engine per file; yields whether they do.

    Each event the executor writes (a step's launch, its worker, its own start)
    opens the run's file through a new engine, whose statements are compiled
    again for it: with one engine per file they are compiled once, and a write
    costs about a quarter less CPU. The engines keep no connection between uses
    (``NullPool``), so the storage behaves as before; Dagster's own function is
    put back at the end and the engines disposed of. The warm steps on the
    workers do the same (:func:`dagster_taskiq.forkserver.share_sqlite_engines`);
    where that is in place already, or the storage is not SQLite files, nothing
    is changed.
    """
    try:
        storage = instance.event_log_storage
    except Exception:  # an instance without a loadable event log writes nothing here
        storage = None
    modules: list[Any] = []
    if isinstance(storage, SqliteEventLogStorage):
        try:
            from sqlalchemy import create_engine as real_create_engine
            from sqlalchemy.pool import NullPool

            from dagster_taskiq.forkserver import SQLITE_STORAGE_MODULES

            modules = [importlib.import_module(m) for m in SQLITE_STORAGE_MODULES]
        except ImportError:
            modules = []
    if not modules or not all(getattr(m, "create_engine", None) is real_create_engine for m in modules):
        yield False
        return
    engines: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def create_engine(url: Any, **kwargs: Any) -> Any:
        if kwargs.get("poolclass") is not NullPool:
            return real_create_engine(url, **kwargs)
        key = (str(url), repr(sorted(kwargs.items())))
        with lock:
            engine = engines.get(key)
            if engine is None:
                engine = engines[key] = real_create_engine(url, **kwargs)
        return engine

    for m in modules:
        m.create_engine = create_engine
    try:
        yield True
    finally:
        for m in modules:
            if getattr(m, "create_engine", None) is create_engine:
                m.create_engine = real_create_engine
        for engine in engines.values():
            engine.dispose()


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


#: Seconds a started step runs before its worker is looked up, and between
#: lookups: one poll covers every step waiting to be reported, and one event
#: reports all it found. A step that ends sooner is reported with the next
#: lookup or with the run's end, so a run of short steps costs one poll and one
#: event-log write in all, not one of each per step or every few seconds.
WORKER_POLL_INTERVAL = 5.0

#: Events that say a step attempt is running on some worker.
_STARTED = frozenset(
    {DagsterEventType.STEP_WORKER_STARTED, DagsterEventType.STEP_START, DagsterEventType.STEP_RESTARTED}
)

#: Events the executor acts on: an ended, skipped or retried step may make
#: others ready or end the run. Every other event a step writes (its process
#: starting, its inputs, outputs and logs) is only passed on.
PROGRESS_EVENTS = frozenset(
    {
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.STEP_UP_FOR_RETRY,
        DagsterEventType.STEP_SKIPPED,
        DagsterEventType.RESOURCE_INIT_FAILURE,
    }
)

#: Events after which a step attempt's task runs no more.
_ENDED = frozenset({DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_UP_FOR_RETRY})

#: Events that end a step attempt.
_ATTEMPT_ENDS = frozenset(
    t.value for t in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE, DagsterEventType.STEP_UP_FOR_RETRY)
)

_PROBE = "SELECT step_key, dagster_event_type FROM event_logs WHERE id > ? AND id <= ? AND dagster_event_type IN ({}) ORDER BY id".format(
    ",".join("?" * len(PROGRESS_EVENTS))
)


class RunLogFiles:
    """The SQLite database a run's events are kept in (Dagster's default storage:
    one file per run, in WAL mode), looked at without reading the event log.

    Dagster's read of the log costs the orchestrator 3 to 8 ms of CPU (a new
    SQLAlchemy engine, a query compiled again, every event deserialised); the
    files' ``stat`` says whether anything was written since the last look, for
    two system calls, and :meth:`probe` whether any of it is an event the
    executor acts on, with one indexed query on a connection kept open (tens of
    microseconds). Other storages have no files here: they are always read.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self._db: sqlite3.Connection | None = None
        # The inode of the file the connection was opened on: a file replaced under the run
        # (restored, rotated) is another one, which a connection kept open would never see.
        self._db_ino: int | None = None
        self._broken = False

    @classmethod
    def for_run(cls, instance: DagsterInstance, run_id: str) -> RunLogFiles:
        try:
            storage = instance.event_log_storage
        except Exception:  # an instance without a loadable event log has nothing to stat
            return cls([])
        if not isinstance(storage, SqliteEventLogStorage):
            return cls([])
        db = storage.path_for_shard(run_id)
        return cls([db, db + "-wal"])

    def signature(self) -> tuple[tuple[int, int, int] | None, ...] | None:
        """What the files look like now; None when there are none to look at."""
        if not self.paths:
            return None
        found: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                st = os.stat(path)
            except OSError:
                found.append(None)
                continue
            found.append((st.st_ino, st.st_size, st.st_mtime_ns))
        if self._db is not None and (found[0] is None or found[0][0] != self._db_ino):
            self.close()  # opened again, on the file now at the path, at the next look
        return tuple(found)

    def _connection(self) -> sqlite3.Connection | None:
        """The read-only connection to the run's file, opened on first use; None when
        there is none to open."""
        if not self.paths or self._broken:
            return None
        if self._db is None:
            try:
                ino = os.stat(self.paths[0]).st_ino
            except OSError:
                return None
            # Read-only, autocommit: every query sees the latest commit and holds no lock after it.
            uri = pathlib.Path(self.paths[0]).resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None, check_same_thread=False)
            self._db_ino = ino
        return self._db

    def probe(self, after_id: int) -> tuple[int | None, list[tuple[str, str]]] | None:
        """The last event's id, and the (step key, event type) of the progress events stored
        after ``after_id`` up to it; None if the file cannot be queried (then the caller
        reads the log)."""
        try:
            db = self._connection()
            if db is None:
                return None
            # The last id first: an event stored after it is found by the next probe.
            last = db.execute("SELECT MAX(id) FROM event_logs").fetchone()[0]
            if last is None or last <= after_id:
                return last, []
            rows = db.execute(_PROBE, (after_id, last, *(t.value for t in PROGRESS_EVENTS))).fetchall()
        except sqlite3.Error:
            self.close()
            self._broken = True  # a schema or file this does not know: read the log as Dagster does
            return None
        return int(last), [(str(key or ""), str(kind)) for key, kind in rows]

    def records(
        self, run_id: str, cursor: str | None, of_type: Any, limit: int | None
    ) -> EventLogConnection | None:
        """What ``SqlEventLogStorage.get_records_for_run`` answers (ascending, an id cursor or
        none, a set of event types), through the connection kept open: without a new
        SQLAlchemy engine and the query compiled again, about two thirds of a read with
        a few events in it. None when this cannot answer (the caller asks Dagster)."""
        if not isinstance(of_type, (set, frozenset)) or not of_type:
            return None
        after = -1
        if cursor is not None:
            parsed = EventLogCursor.parse(cursor)
            if not parsed.is_id_cursor():
                return None
            after = parsed.storage_id()
        types = sorted(t.value for t in of_type)
        sql = "SELECT id, event FROM event_logs WHERE run_id = ? AND id > ? AND dagster_event_type IN ({}) ORDER BY id ASC".format(
            ",".join("?" * len(types))
        )
        params: list[object] = [run_id, after, *types]
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        try:
            db = self._connection()
            if db is None:
                return None
            rows = db.execute(sql, params).fetchall()
            records = [EventLogRecord(storage_id=int(i), event_log_entry=deserialize_value(e, EventLogEntry)) for i, e in rows]
        except Exception:  # a file or an event this does not know: Dagster's read says what is wrong
            return None
        if records:
            next_cursor = EventLogCursor.from_storage_id(records[-1].storage_id).to_string()
        else:
            next_cursor = cursor or EventLogCursor.from_storage_id(-1).to_string()
        return EventLogConnection(records=records, cursor=next_cursor, has_more=bool(limit and len(rows) == limit))

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None


class _LogReader:
    """The instance as Dagster's read of the event log uses it, the read answered from
    the run's file when :meth:`RunLogFiles.records` can."""

    def __init__(self, instance: DagsterInstance, files: RunLogFiles) -> None:
        self._instance, self._files = instance, files

    @property
    def event_log_storage(self) -> Any:
        return self._instance.event_log_storage

    def get_records_for_run(
        self,
        run_id: str,
        cursor: str | None = None,
        of_type: Any = None,
        limit: int | None = None,
        ascending: bool = True,
    ) -> EventLogConnection:
        found = self._files.records(run_id, cursor, of_type, limit) if ascending else None
        if found is None:
            return self._instance.get_records_for_run(run_id, cursor, of_type, limit, ascending)
        return found


class TaskiqExecutor(StepDelegatingExecutor):
    """The step-delegating executor, plus the workers that ran each step in the event log."""

    def __init__(self, step_handler: TaskiqStepHandler, max_sleep_seconds: float | None = None, **kwargs: Any) -> None:
        self._sleep_min = self._sleep_now = 0.1
        self._sleep_max: float | None = max_sleep_seconds
        super().__init__(step_handler, **kwargs)
        self._taskiq = step_handler
        self._plan_context: PlanOrchestrationContext | None = None
        # task id -> step key: started step attempts whose worker is not reported yet;
        # task id -> when it was seen starting, for those not seen ending.
        self._pending_workers: dict[str, str] = {}
        self._running_since: dict[str, float] = {}
        self._reported: set[str] = set()
        self._next_worker_poll = 0.0
        # run id -> its event log's files; what they looked like when last looked at.
        self._log_files: dict[str, RunLogFiles] = {}
        self._seen_signature: Any = None
        self._probed_id = 0
        self._last_read = 0.0
        # Base key (before any mapping key) of each step other steps take inputs from ->
        # for each of those, the base keys it takes inputs from (None: a mapped step,
        # which one end of its upstream may make ready); None: unknown, every end matters.
        # Whether any end may free a slot; the step attempts seen ending, by base key.
        self._feeds: dict[str, list[frozenset[str] | None]] | None = None
        self._every_end_matters = True
        self._ended = 0
        self._ended_by_base: collections.Counter[str] = collections.Counter()
        #: Reads of the event log made, and skipped because nothing the executor acts on was written.
        self.reads = self.skipped_reads = 0

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        with shared_sqlite_engines(plan_context.instance):
            yield from self._execute(plan_context, execution_plan)

    def _execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        self._plan_context = plan_context
        self._feeds, self._every_end_matters = self._plan_shape(execution_plan)
        token = _SORT_KEY.set(step_sort_key(plan_context.dagster_run.tags, self._taskiq.settings.priority))
        try:
            # The ActiveExecution is built before the first event comes out.
            inner = super().execute(plan_context, execution_plan)
            first = next(inner, None)
        finally:
            _SORT_KEY.reset(token)
        try:
            if first is not None:
                yield first
                yield from inner
            self._report_workers()
        finally:
            for files in self._log_files.values():
                files.close()

    # Dagster's loop sleeps self._sleep_seconds between rounds, reading the
    # event log in each one that has steps in flight. Here a round reads it
    # only when an event the executor acts on (PROGRESS_EVENTS: not the success
    # of a step that feeds no other while others still run, when no
    # concurrency limit or pool applies) was stored since the last read, or
    # max_poll_interval has passed since then: the events in between (a
    # step's process starting, its outputs and logs) come out with the next read. With Dagster's default SQLite storage a round that reads
    # nothing costs a stat of the run's files and, when they changed, one
    # small query: the rounds stay poll_interval apart, so a step's end is
    # acted on as soon as before, for a fraction of the reads. A storage that
    # cannot be looked at so is read every round; there the sleep is
    # poll_interval after a read that brought a progress event and grows by
    # half after one that did not, up to max_poll_interval.
    #
    # Dagster reads _sleep_seconds once per round, after it has launched every
    # step made ready in it: that is when the round's launches are submitted,
    # together (and, should that hook ever move, at the next round's start).
    @property
    def _sleep_seconds(self) -> float:
        handler = getattr(self, "_taskiq", None)  # None while Dagster's __init__ runs
        if handler is not None:
            handler.submit_pending()
        return self._sleep_now

    @_sleep_seconds.setter
    def _sleep_seconds(self, value: float) -> None:
        self._sleep_min = self._sleep_now = value
        if self._sleep_max is None or self._sleep_max < value:
            self._sleep_max = value

    def _plan_shape(
        self, execution_plan: ExecutionPlan
    ) -> tuple[dict[str, list[frozenset[str] | None]] | None, bool]:
        """For each base key (before any mapping key) of a step that feeds others, the
        base keys each of those others takes inputs from (None for a mapped one); and
        whether every step's end may let another start (a concurrency limit or pool)."""
        if self._max_concurrent is not None or self._tag_concurrency_limits:
            return None, True
        feeds: dict[str, list[frozenset[str] | None]] = {}
        try:
            for step in execution_plan.steps:
                if getattr(step, "pool", None):
                    return None, True
                upstream = getattr(step, "get_all_dependency_keys", None) or getattr(step, "get_execution_dependency_keys")
                bases = frozenset(str(key).split("[", 1)[0] for key in upstream())
                waits = None if "[" in str(step.key) else bases
                for base in bases:
                    feeds.setdefault(base, []).append(waits)
        except Exception:  # a plan this does not know: act on every end at once
            return None, True
        return feeds, False

    def _in_flight(self, base: str) -> int:
        """Step attempts of this base key launched and not seen ending."""
        return self._taskiq.launched_of(base) - self._ended_by_base[base]

    def _acts_on(self, step_key: str, kind: str) -> bool:
        """Whether a progress event can change what runs next: anything but the success
        of a step while every step it feeds still waits for another in flight (one of the
        same mapped step, for a collect), or of a step that feeds none while others run.
        So a burst of a fan-out's ends is read once, with the last."""
        if kind != DagsterEventType.STEP_SUCCESS.value or self._every_end_matters or self._feeds is None:
            return True
        for waits in self._feeds.get(step_key.split("[", 1)[0], ()):
            if waits is None or all(self._in_flight(base) <= 0 for base in waits):
                return True  # that step may be ready now
        return self._taskiq.launched_attempts <= self._ended  # the last one in flight: the run ends

    def _needs_read(self, files: RunLogFiles, signature: Any, now: float) -> bool:
        """Whether this round must read the log; looks at the run's files when it can."""
        if signature is None or now - self._last_read >= (self._sleep_max or self._sleep_min):
            return True
        if signature == self._seen_signature:
            return False  # nothing written since the last look
        found = files.probe(self._probed_id)
        if found is None:
            return True
        last, progress = found
        self._seen_signature = signature
        if last is not None:
            self._probed_id = max(self._probed_id, last)
        for key, kind in progress:
            if kind in _ATTEMPT_ENDS:
                self._ended += 1
                self._ended_by_base[key.split("[", 1)[0]] += 1
        return any(self._acts_on(key, kind) for key, kind in progress)

    def _pop_events(self, instance: DagsterInstance, run_id: str, seen_storage_ids: set[int]) -> Sequence[DagsterEvent]:
        self._taskiq.submit_pending()
        now = time.monotonic()
        files = self._log_files.get(run_id)
        if files is None:
            files = self._log_files[run_id] = RunLogFiles.for_run(instance, run_id)
        signature = files.signature()  # before looking: a write after it is seen next round
        events: Sequence[DagsterEvent] = []
        if self._needs_read(files, signature, now):
            self.reads += 1
            reader: Any = _LogReader(instance, files) if files.paths else instance
            events = super()._pop_events(reader, run_id, seen_storage_ids)
            self._seen_signature, self._last_read = signature, now
            if signature is None and not any(e.event_type in PROGRESS_EVENTS for e in events):
                self._sleep_now = min(self._sleep_max or self._sleep_min, self._sleep_now * 1.5)
            else:
                self._sleep_now = self._sleep_min
        else:
            self.skipped_reads += 1
        if events:
            self._note_workers_to_report(events, now)
        # Never in a round that brought a step's end: Dagster launches the steps it made
        # ready right after this returns, and a poll and a write must not delay them.
        acted_on = any(e.event_type in PROGRESS_EVENTS for e in events)
        if not acted_on and now >= self._next_worker_poll and self._running_since:
            if min(self._running_since.values()) <= now - WORKER_POLL_INTERVAL:
                self._next_worker_poll = now + WORKER_POLL_INTERVAL
                self._report_workers()
        return events

    def _note_workers_to_report(self, events: Sequence[DagsterEvent], now: float) -> None:
        """Adds the step attempts these events start to those whose worker is to be
        reported; those they end wait for the run's end (or another step's lookup)."""
        for e in events:
            if not e.step_key:
                continue
            if e.event_type in _STARTED:
                # The attempt running now: a retry launched later is another task.
                task_id = self._taskiq.latest_task_id(e.step_key)
                if task_id and task_id not in self._reported and task_id not in self._pending_workers:
                    self._pending_workers[task_id] = e.step_key
                    self._running_since[task_id] = now
            elif e.event_type in _ENDED:
                task_id = self._taskiq.latest_task_id(e.step_key)
                if task_id:
                    self._running_since.pop(task_id, None)

    def _report_workers(self) -> None:
        """Writes 'step X ran on worker W' to the event log once a started step's worker is known.

        The steps found in one poll go into one event: a step's own engine
        event when it is alone, a run event naming them all otherwise (each
        event is a write of the run's log by this process).
        """
        ctx = self._plan_context
        if ctx is None or not self._pending_workers:
            return
        try:
            statuses = self._taskiq.task_statuses(list(self._pending_workers))
        except Exception as exc:  # reporting is informative only; never fail the run for it
            ctx.log.warning(f"dagster-taskiq: could not poll step workers: {exc}")
            return
        found: list[tuple[str, TaskStatus]] = []
        for status in statuses:
            step_key = self._pending_workers.get(status.id)
            if step_key is None:
                continue
            if status.worker.id:
                self._reported.add(status.id)
                del self._pending_workers[status.id]
                self._running_since.pop(status.id, None)
                found.append((step_key, status))
            elif status.is_final:  # it ended before any worker took it
                del self._pending_workers[status.id]
                self._running_since.pop(status.id, None)
        if len(found) == 1:
            _report_worker(ctx, *found[0])
        elif found:
            _report_step_workers(ctx, found)


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


def _report_step_workers(ctx: PlanOrchestrationContext, found: Sequence[tuple[str, TaskStatus]]) -> None:
    """One run event for several steps: a line each, and their workers as JSON metadata."""
    lines = [
        f"Step {key} runs on taskiq-go worker {s.worker.id} on host {s.worker.host} (task {s.id})." for key, s in found
    ]
    rows = [
        {
            "step_key": key,
            "worker_id": s.worker.id,
            "host": s.worker.host,
            "pid": s.worker.pid,
            "task_id": s.id,
            "attempt": s.attempt,
        }
        for key, s in found
    ]
    ctx.instance.report_engine_event(
        f"{len(found)} steps run on taskiq-go workers:\n" + "\n".join(lines),
        ctx.dagster_run,
        EngineEventData(metadata={STEP_WORKERS_KEY: MetadataValue.json(rows)}),
    )
