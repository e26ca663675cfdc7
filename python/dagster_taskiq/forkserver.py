"""The fork server: Dagster steps started from a warm process, one fork each.

``python -m dagster_taskiq.forkserver --socket PATH [--preload MODULE|FILE]...``
listens on a Unix socket for ``dagster-taskiq-step`` clients (see
:mod:`dagster_taskiq_step`). Two kinds of process do the work:

* the *master* (this process) holds the socket and hands each accepted
  connection to the current warm parent; it imports Dagster once, so a new
  warm parent starts in the time it takes to import the user's code;
* the *warm parent* (a fork of the master) imports the ``--preload`` modules
  and files once, then forks one child per step request. The child joins the
  client's process group, takes its stdin/stdout/stderr, environment, working
  directory and argv, and runs ``dagster api execute_step`` as the cold entry
  point would (:func:`dagster_taskiq.step_entry.run_dagster_cli`). The warm
  parent sends the child's pid and, once it has reaped it, its exit status
  to the client; it kills the child when the client's connection closes.

New code is picked up as Celery users know it: after ``--max-tasks-per-child``
steps the warm parent is replaced by a fresh one, and before each step the
master compares the modification times of the warm parent's own code (every
module it imported from outside the Python installation, plus the
``--watch`` paths) with those it had when it started, and replaces it when one
changed. A replaced warm parent takes no new step and exits once its running
steps end. A warm parent that cannot import its ``--preload`` code answers
every request with "cold", and the client starts the step cold.

SIGTERM or SIGINT stops the master: it stops listening, lets the warm parents
finish their running steps, and exits 0.
"""

from __future__ import annotations

import argparse
import array
import gc
import importlib
import json
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_taskiq_step import recv_request

#: How long a warm parent waits for a connected client's request.
REQUEST_TIMEOUT = 10.0
#: How long a stopping master waits for its warm parents' steps before killing them.
STOP_GRACE = 60.0
#: For measuring: a file the warm parent appends one JSON line to per reaped
#: step child (its CPU, page faults and context switches, tails included).
STATS_ENV_VAR = "DAGSTER_TASKIQ_STEP_STATS"
#: For measuring: a directory where each step child writes a cProfile of its
#: step, on a CPU clock (``step-PID.prof``).
PROFILE_ENV_VAR = "DAGSTER_TASKIQ_STEP_PROFILE"
# Read once, here: a step's own environment replaces the child's.
_PROFILE_DIR = os.environ.get(PROFILE_ENV_VAR, "")
_STATS_FILE = os.environ.get(STATS_ENV_VAR, "")


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    try:
        os.write(2, f"{stamp} forkserver[{os.getpid()}]: {message}\n".encode())
    except OSError:
        pass


def _send_line(sock: socket.socket, obj: dict[str, object]) -> None:
    try:
        sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
    except OSError:
        pass  # the client is gone; its child is killed when the EOF is read


def _close_fds(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


# -- code the warm parent watches ------------------------------------------------------


def _installed_roots() -> list[str]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(str(Path(__file__).resolve().parent))  # dagster_taskiq itself
    roots.add(str(Path(__file__).resolve().parent.parent / "dagster_taskiq_step"))
    return [os.path.join(os.path.realpath(r), "") for r in roots if r]


def user_code_files() -> list[str]:
    """Files of the imported modules that are not part of the Python installation."""
    roots = _installed_roots()
    files: set[str] = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        real = os.path.realpath(path)
        if not any(real.startswith(r) for r in roots):
            files.add(real)
    return sorted(files)


def _python_files(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
                out.extend(os.path.join(root, n) for n in names if n.endswith(".py"))
        else:
            out.append(p)
    return out


def mtimes(files: Iterable[str]) -> dict[str, int]:
    """Modification time (ns) of each file; -1 for a file that does not exist."""
    out: dict[str, int] = {}
    for f in files:
        try:
            out[f] = os.stat(f).st_mtime_ns
        except OSError:
            out[f] = -1
    return out


def changed(snapshot: dict[str, int]) -> str | None:
    """The first file whose modification time differs from the snapshot's."""
    now = mtimes(snapshot)
    for f, t in snapshot.items():
        if now[f] != t:
            return f
    return None


# -- the warm parent ---------------------------------------------------------------------


#: What a step process imports after ``dagster`` itself: the CLI, the instance
#: and its SQL storages (SQLAlchemy, Alembic), the executor's logging and the
#: filesystem IO manager. Measured: about 460 modules, 2.5 s of CPU per step
#: when left to each child.
WARM_MODULES = (
    "dagster._cli.api",
    "dagster._core.instance.factory",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.event_log.sqlite",
    "dagster._core.storage.runs.sqlite",
    "dagster._core.storage.schedules.sqlite",
    "dagster._core.storage.local_compute_log_manager",
    "dagster._core.storage.root",
    "dagster._core.storage.fs_io_manager",
    "dagster._core.execution.api",
    "dagster._core.execution.plan.execute_plan",
    "dagster._daemon",
    "dagster._utils.test.definitions",
    "dagster._core.workspace.autodiscovery",
    "alembic.command",
    "alembic.config",
    "alembic.autogenerate",
    "sqlalchemy",
    "rich",
    "structlog",
    "fsspec",
    "fsspec.implementations.local",
    "upath",
    # upath loads these on first use (the instance's defs state storage):
    # 20 modules, measured 25 ms of CPU in each step child when left to it
    "upath.core",
    "upath.implementations.local",
    "dagster._core.system_config.composite_descent",
    "dagster._core.definitions.repository_definition.repository_data_builder",
    "dagster_taskiq.step_entry",
    "watchdog.observers",
    "watchdog.events",
)


def _instance_modules() -> list[str]:
    """Modules of the classes the instance in $DAGSTER_HOME configures (storage, launcher...)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not os.path.exists(os.path.join(home, "dagster.yaml")):
        return []
    from dagster._core.instance.ref import InstanceRef

    ref = InstanceRef.from_dir(home)
    names = []
    for attr in dir(ref):
        module = getattr(getattr(ref, attr, None), "module_name", None) if attr.endswith("_data") else None
        if isinstance(module, str):
            names.append(module)
    return names


#: Dagster's own migration scripts: installed files that do not change while
#: the fork server runs.
DAGSTER_ALEMBIC_LOCATION = "dagster:_core/storage/alembic"


def share_migration_scripts() -> bool:
    """Reads Dagster's migration scripts once, here, for every child.

    Each SQL storage a step opens checks its database's schema revision
    against the newest migration script, and Alembic reads every one of
    Dagster's 260-odd scripts again to find it: measured, 1.5 s of a step
    child's 4.2 s on a loaded machine, three times per step (run, event log and
    schedule storages). The scripts are part of the installed Dagster, so the
    warm parent keeps the one parsed copy, and its children inherit it.
    Scripts of any other location are read as before. False when this Alembic
    has not the shape this relies on (the step then reads them as it would
    cold).
    """
    try:
        from alembic.script import ScriptDirectory
        from dagster._core.storage.runs.sqlite import sqlite_run_storage
        from dagster._core.storage.sql import get_alembic_config
    except ImportError:
        return False
    original = ScriptDirectory.__dict__.get("from_config")
    if not isinstance(original, classmethod):
        return False
    read = original.__func__
    shared: dict[str, ScriptDirectory] = {}

    def from_config(cls: type[ScriptDirectory], config: object) -> ScriptDirectory:
        location = config.get_main_option("script_location")  # type: ignore[attr-defined]
        if cls is not ScriptDirectory or location != DAGSTER_ALEMBIC_LOCATION:
            return read(cls, config)  # type: ignore[no-any-return]
        found = shared.get(location)
        if found is None:
            found = shared[location] = read(cls, config)
        return found

    ScriptDirectory.from_config = classmethod(from_config)  # type: ignore[assignment,method-assign]
    try:
        ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).as_revision_number("head")
    except Exception as exc:  # noqa: BLE001 - only a warm-up
        ScriptDirectory.from_config = original  # type: ignore[assignment,method-assign]
        _log(f"cannot read Dagster's migration scripts ahead: {exc!r}")
        return False
    return True


#: Dagster's SQLite storages, which create a SQLAlchemy engine per connection.
SQLITE_STORAGE_MODULES = (
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
)
#: The engines shared_sqlite_engines made, to be renewed in each child.
_ENGINES: dict[tuple[str, str], Any] = {}


def share_sqlite_engines() -> bool:
    """Makes Dagster's SQLite storages reuse one engine per database file.

    Each connection a SQLite storage opens goes through a new SQLAlchemy
    engine (``create_engine(..., poolclass=NullPool)``, then ``connect()``):
    the dialect is initialized again and every statement compiled again,
    because the compiled-statement cache is the engine's. A step opens 17 of
    them to write its dozen events. With ``NullPool`` an engine holds no
    connection between uses (each ``connect()`` opens one and closing it closes
    the file), so one engine per database and connect arguments behaves the
    same and keeps its compiled statements. Engines the warm parent made are
    renewed in each child (:func:`renew_shared_engines`), so that no state of
    theirs is used on both sides of a fork. False when this Dagster has not
    the shape this relies on.
    """
    try:
        from sqlalchemy import create_engine as real_create_engine
        from sqlalchemy.pool import NullPool

        modules = [importlib.import_module(m) for m in SQLITE_STORAGE_MODULES]
    except ImportError:
        return False
    if not all(getattr(m, "create_engine", None) is real_create_engine for m in modules):
        return False

    def create_engine(url: Any, **kwargs: Any) -> Any:
        if kwargs.get("poolclass") is not NullPool:
            return real_create_engine(url, **kwargs)
        key = (str(url), repr(sorted(kwargs.items())))
        engine = _ENGINES.get(key)
        if engine is None:
            if _IN_CHILD:
                engine = _kept_connection_engine(real_create_engine, url, kwargs)
            else:
                engine = real_create_engine(url, **kwargs)
            _ENGINES[key] = engine
        return engine

    for m in modules:
        m.create_engine = create_engine  # type: ignore[attr-defined]
    return True


#: Set in a forked step child: engines made from then on keep their connection.
_IN_CHILD: list[bool] = []


def _kept_connection_engine(real_create_engine: Any, url: Any, kwargs: dict[str, Any]) -> Any:
    """An engine for a step child that keeps one connection per thread for the
    child's life, where Dagster asked for none (``NullPool``, and ``dispose()``
    after each use).

    A step child writes each of its events through a new connection to the
    run's SQLite file, the one file every step of the run writes: SQLite reads
    the file's schema again on the first statement of each connection, and
    closing it runs the end-of-connection work (a checkpoint attempt of the
    write-ahead log). Measured writing 100 events in one process: 5.0 to 5.6
    ms of CPU an event so, 1.0 to 2.2 with the connection kept; a step writes
    eight to twelve events, and the fan-out's first and last steps 400 each.
    Each event is still its own transaction, committed before the write
    returns, so other processes see it as before. Only engines a child makes
    keep a connection: those it inherited from the warm parent hold none (see
    :func:`renew_shared_engines`), and the child's own die with it. A process
    the step forks (user code's ``multiprocessing``) starts with a new, empty
    pool, so that no SQLite connection is used on both sides of a fork.
    """
    from sqlalchemy.pool import SingletonThreadPool

    engine = real_create_engine(url, **{**kwargs, "poolclass": SingletonThreadPool})
    renew = engine.dispose
    os.register_at_fork(after_in_child=lambda: renew(close=False))
    engine.dispose = lambda close=True: None  # Dagster's dispose() after each use would close it
    return engine


def renew_shared_engines() -> None:
    """In a forked child: new pools for the engines inherited from the warm
    parent; engines made from now on keep their connection."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)
    _IN_CHILD[:] = [True]


#: The parts of an instance that DagsterInstance.from_ref builds at once (the
#: compute log manager, run launcher and coordinator are built on first use).
EAGER_INSTANCE_PARTS = (
    "local_artifact_storage_data",
    "run_storage_data",
    "event_storage_data",
    "schedule_storage_data",
    "storage_data",
    "scheduler_data",
    "secrets_loader_data",
    "defs_state_storage_data",
)
_NAMES_ENV = re.compile(r"(^|[\s{,])env\s*:", re.MULTILINE)
#: The instance the warm parent built for its children: (its ref, the instance).
_WARM_INSTANCE: list[Any] = []


def build_warm_instance() -> bool:
    """Opens the instance of ``$DAGSTER_HOME`` once, here, for the children to take.

    Opening the run's instance cost a warm step child 25 ms of CPU and 2,500
    page faults (measured on fan16): every storage rehydrated from its YAML,
    each SQLite storage checking its tables and schema revision. Only an
    instance whose eagerly built parts are all Dagster's own (its SQLite
    storages, local artifacts, scheduler) and whose config names no
    environment variable (which the step's environment might set otherwise)
    is opened ahead: it then holds paths and engines but no open connection
    or file (the engines' ``NullPool``, see :func:`share_sqlite_engines`), so
    that a child can use it as its own. A child takes it, once, when the
    run's instance ref equals it (:func:`offer_warm_instance`); any other ref
    is opened as before. False when nothing was opened.
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home or not os.path.exists(os.path.join(home, "dagster.yaml")):
        return False
    try:
        from dagster._core.instance import DagsterInstance
        from dagster._core.instance.ref import InstanceRef

        ref = InstanceRef.from_dir(home)
        if getattr(ref, "custom_instance_class_data", None) is not None:
            return False
        for attr in EAGER_INSTANCE_PARTS:
            data = getattr(ref, attr, None)
            if data is None:
                continue
            if not str(data.module_name).startswith("dagster._core.") or _NAMES_ENV.search(data.config_yaml or ""):
                return False
        if not isinstance(DagsterInstance.__dict__.get("from_ref"), staticmethod):
            return False
        instance = DagsterInstance.from_ref(ref)
        instance.get_runs(limit=1)  # its storages' first statements compiled here, once
    except Exception as exc:  # noqa: BLE001 - only a warm-up
        _log(f"cannot open the instance of {home} ahead: {exc!r}")
        return False
    _WARM_INSTANCE[:] = [ref, instance]
    return True


def offer_warm_instance() -> None:
    """In a forked child: the first ``DagsterInstance.from_ref`` of the warm
    parent's ref returns the instance it opened (see :func:`build_warm_instance`)."""
    if not _WARM_INSTANCE:
        return
    from dagster._core.instance import DagsterInstance

    warm_ref, warm = _WARM_INSTANCE
    _WARM_INSTANCE.clear()
    real = DagsterInstance.__dict__["from_ref"].__func__

    def from_ref(instance_ref: Any) -> Any:
        nonlocal warm
        if warm is not None and instance_ref == warm_ref:
            taken, warm = warm, None
            return taken
        return real(instance_ref)

    DagsterInstance.from_ref = staticmethod(from_ref)  # type: ignore[method-assign]


def tail_without_watcher() -> bool:
    """Makes the step's compute-log mirroring start one process, not two.

    Dagster's local compute log manager mirrors a step's stdout and stderr
    through a ``tail -F`` each, and starts beside each tail a Python watcher
    whose only job is to kill the tail if the step process dies without
    cleaning up: two interpreter starts per step, measured 0.11 CPU-seconds of
    the 0.44 a warm no-op step costs. In a child that joined its task's process
    group the watcher has nothing to do, because taskiq-go kills the task's
    whole group (the tails are in it) when the task ends, however it ends. So
    such a child runs the tails alone. False, and Dagster's own way, when this
    Dagster has not the shape this relies on.
    """
    try:
        from dagster._core.execution import compute_logs
    except ImportError:
        return False
    fileno = getattr(compute_logs, "_fileno", None)
    if not callable(getattr(compute_logs, "execute_posix_tail", None)) or not callable(fileno):
        return False

    @contextmanager
    def execute_posix_tail(path: str, stream: Any) -> Iterator[tuple[int, None]]:
        tail = None
        try:
            tail = subprocess.Popen(["tail", "-F", "-c", "+0", path], stdout=stream if fileno(stream) else None)
            yield (tail.pid, None)
        finally:
            # as Dagster's: a wait users may set so that the tail's 1 s polling catches the end
            time.sleep(float(os.getenv("DAGSTER_COMPUTE_LOG_TAIL_WAIT_AFTER_FINISH", "0")))
            if tail is not None:
                # Dagster's clean-up waits with a timeout, which polls in sleeps
                # of up to 50 ms; a tail ends at once on SIGTERM, so wait for it.
                tail.terminate()
                tail.wait()

    compute_logs.execute_posix_tail = execute_posix_tail
    return True


def warm_jobs(modules: Iterable[Any]) -> int:
    """Builds the run config schema of every job the preloaded modules define,
    and one execution plan of each (:func:`warm_plan`).

    A step's execution plan needs its job's run config schema, which Dagster
    builds on first use and keeps on the job definition; a step child finds
    its job as the very object the warm parent imported (measured: the same
    ``JobDefinition``), so a schema built here is built once for every step
    instead of once per step. Returns how many were built.
    """
    try:
        from dagster import Definitions, JobDefinition
        from dagster._core.definitions.reconstruct import ReconstructableJob
    except ImportError:
        return 0
    jobs: list[tuple[Any, Any]] = []
    for module in modules:
        importable = sys.modules.get(module.__name__) is module
        for attr, value in list(vars(module).items()):
            if isinstance(value, JobDefinition):
                # the way a step child finds it: a job reconstructed from a code pointer
                jobs.append((value, ReconstructableJob.for_module(module.__name__, attr) if importable else value))
            elif isinstance(value, Definitions):
                try:
                    jobs.extend((j, j) for j in value.resolve_all_job_defs())
                except Exception as exc:  # noqa: BLE001 - only a warm-up
                    _log(f"cannot resolve the jobs of {module.__name__} ahead: {exc!r}")
    built = 0
    for job, target in jobs:
        try:
            job.run_config_schema  # noqa: B018 - built on first use, then kept
            built += 1
        except Exception:  # noqa: BLE001 - only a warm-up; the step reports its own error
            continue
        warm_plan(target)
    return built


def warm_plan(job: Any) -> bool:
    """Builds execution plans of ``job`` here, as each step child does.

    A step child builds its job's execution plan for its one step (for a step
    of a dynamic fan-out, after resolving every mapped step). Done first in the
    child, that runs code no process has run since the fork and fills the
    lazily built parts of the job's definition, copying their pages: measured
    in forked children, a plan for one step of the 202-step fan-out took 21 to
    28 ms of CPU and 2,035 page faults when the warm parent had built none, 15
    to 16 ms and 965 when it had built one for a mapped step of a job
    reconstructed from its code pointer, as a child's is (1,590 when built from
    the ``JobDefinition`` alone). So the warm parent builds one for the job's
    first step with the run config ``{}`` and, when a step has a dynamic
    output, one for a mapped step with one mapping key. Jobs that need a run
    config are skipped. Only in memory: nothing is stored or run. False when
    no plan could be built.
    """
    try:
        from dagster._core.execution.api import create_execution_plan
        from dagster._core.execution.plan.state import KnownExecutionState

        plan = create_execution_plan(job, run_config={})
        keys = list(plan.step_keys_to_execute)
        if keys:
            create_execution_plan(job, run_config={}, step_keys_to_execute=keys[:1])
        mappings: dict[str, dict[str, list[str] | None]] = {}
        for step in plan.steps:
            for output in step.step_outputs:
                if output.is_dynamic:
                    mappings.setdefault(step.key, {})[output.name] = ["0"]
        if mappings:
            known = KnownExecutionState(dynamic_mappings=mappings)
            resolved = create_execution_plan(job, run_config={}, known_state=known)
            mapped = [k for k in resolved.step_keys_to_execute if k.endswith("[0]")]
            if mapped:
                create_execution_plan(job, run_config={}, step_keys_to_execute=mapped[:1], known_state=known)
    except Exception:  # noqa: BLE001 - only a warm-up; the step builds its own
        return False
    return True


def preload(names: Sequence[str]) -> None:
    """Imports what every step needs, then the user's modules and files."""
    import dagster  # noqa: F401
    import dagster._cli  # noqa: F401
    from dagster._core.code_pointer import load_python_file

    try:
        instance_modules = _instance_modules()
    except Exception as exc:  # noqa: BLE001 - only a warm-up
        _log(f"cannot read the instance's dagster.yaml to warm its storage: {exc!r}")
        instance_modules = []
    for module in (*WARM_MODULES, *instance_modules):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - an optional module or another Dagster version
            pass
    share_migration_scripts()
    share_sqlite_engines()
    modules = []
    for name in names:
        if name.endswith(".py") or os.sep in name:
            modules.append(load_python_file(os.path.abspath(name), None))
        else:
            modules.append(importlib.import_module(name))
    warm_jobs(modules)
    build_warm_instance()


@dataclass
class _Child:
    pid: int
    conn: socket.socket
    pidfd: int = -1
    reaped: bool = False
    started: float = field(default_factory=time.monotonic)


def _run_child(request: dict[str, object], fds: list[int]) -> int:
    """In the forked child: become the step process the client would have been."""
    from dagster_taskiq.step_entry import run_dagster_cli

    renew_shared_engines()
    offer_warm_instance()

    try:
        os.setpgid(0, int(request["pgid"]))  # type: ignore[call-overload]
    except OSError:
        pass  # another session: the client forwards signals instead
    else:
        tail_without_watcher()
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 4096)
    env = request.get("env")
    if isinstance(env, dict):
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
    for entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(1, entry)
    os.chdir(str(request.get("cwd") or "/"))
    random.seed()
    main_module = sys.modules.get("__main__")
    if main_module is not None:  # so that click names the program `dagster`, not this module
        main_module.__spec__ = None
        main_module.__package__ = None
    argv = request.get("argv")
    args = [str(a) for a in argv] if isinstance(argv, list) else []
    if _STATS_FILE:
        return _run_timed(args)
    if not _PROFILE_DIR:
        return run_dagster_cli(args)
    import cProfile

    profile = cProfile.Profile(time.process_time)
    try:
        return int(profile.runcall(run_dagster_cli, args))
    finally:
        profile.dump_stats(os.path.join(_PROFILE_DIR, f"step-{os.getpid()}.prof"))


def _record_stats(pid: int, usage: Any, started: float) -> None:
    line = {
        "pid": pid,
        "wall_ms": round((time.monotonic() - started) * 1000, 1),
        "cpu_ms": round((usage.ru_utime + usage.ru_stime) * 1000, 1),
        "utime_ms": round(usage.ru_utime * 1000, 1),
        "minflt": usage.ru_minflt,
        "majflt": usage.ru_majflt,
        "nvcsw": usage.ru_nvcsw,
        "nivcsw": usage.ru_nivcsw,
    }
    try:
        with open(_STATS_FILE, "a") as f:
            f.write(json.dumps(line) + "\n")
    except OSError:
        pass


#: For measuring (``$DAGSTER_TASKIQ_STEP_STATS``): the parts of a step whose
#: CPU a child records, as (module, attribute holder, name).
_TIMED = (
    ("dagster._cli.api", None, "deserialize_value"),
    ("dagster._cli.api", None, "verify_step"),
    ("dagster._cli.api", None, "create_execution_plan"),
    ("dagster._cli.api", None, "recon_job_from_origin"),
    ("dagster._cli.api", None, "create_context_free_log_manager"),
    ("dagster._core.instance", "DagsterInstance", "get_run_by_id"),
    ("dagster._core.instance", "DagsterInstance", "get_execution_plan_snapshot"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SqliteEventLogStorage", "store_event"),
    ("dagster._core.storage.event_log.sqlite.sqlite_event_log", "SqliteEventLogStorage", "_initdb"),
    ("dagster._core.storage.upath_io_manager", "UPathIOManager", "load_input"),
    ("dagster._core.storage.upath_io_manager", "UPathIOManager", "handle_output"),
)


def _run_timed(args: list[str]) -> int:
    """Runs the step, then appends the CPU of its parts to the stats file."""
    import resource

    from dagster_taskiq.step_entry import run_dagster_cli

    spent: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - t

        return wrapper

    for module_name, holder_name, name in _TIMED:
        try:
            module = importlib.import_module(module_name)
            holder = getattr(module, holder_name) if holder_name else module
            setattr(holder, name, timed(name, getattr(holder, name)))
        except (ImportError, AttributeError):
            pass
    start = time.process_time()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    code = run_dagster_cli(args)
    line = {
        "child_pid": os.getpid(),
        "before_cli_ms": round(start * 1000, 1),
        "cli_ms": round((time.process_time() - start) * 1000, 1),
        "faults_before_cli": faults,
        "faults_cli": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
        **{f"{k}_ms": round(v * 1000, 1) for k, v in spent.items()},
    }
    try:
        with open(_STATS_FILE, "a") as f:
            f.write(json.dumps(line) + "\n")
    except OSError:
        pass
    return code


class WarmParent:
    """Forks one child per step request handed over by the master."""

    def __init__(self, control: socket.socket, names: Sequence[str]) -> None:
        self.control = control
        self.cold_reason = ""
        self.children: dict[int, _Child] = {}
        self.sel = selectors.DefaultSelector()
        self.draining = False
        self.names = list(names)

    def serve(self) -> int:
        started = time.monotonic()
        try:
            preload(self.names)
        except BaseException as exc:  # noqa: BLE001 - any import failure means cold starts
            self.cold_reason = f"cannot import {' '.join(self.names) or 'dagster'} warm: {exc!r}"
            _log(self.cold_reason + "; steps start cold")
        else:
            _log(f"warm parent ready in {time.monotonic() - started:.2f}s (preloaded: {' '.join(self.names) or '-'})")
        # the instance's config too: the warm parent may have opened it ahead
        home_yaml = [os.path.join(os.environ["DAGSTER_HOME"], "dagster.yaml")] if os.environ.get("DAGSTER_HOME") else []
        _send_line(self.control, {"watch": mtimes([*user_code_files(), *home_yaml])})
        # What is imported now is shared with every child: keep the collector
        # from touching it, so that a child does not copy those pages.
        gc.collect()
        gc.freeze()
        self.sel.register(self.control, selectors.EVENT_READ, None)
        while not (self.draining and not self.children):
            for key, _ in self.sel.select(timeout=1.0):
                if key.data is None:
                    self._from_master()
                else:
                    kind, child = key.data
                    if kind == "conn":
                        self._from_client(child)
                    else:
                        self._reap(child)
            self._reap_any()
        return 0

    def _from_master(self) -> None:
        fds = array.array("i")
        try:
            msg, ancdata, _, _ = self.control.recvmsg(64, socket.CMSG_SPACE(16 * fds.itemsize))
        except OSError:
            msg, ancdata = b"", []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        if not msg:
            self.draining = True
            self.sel.unregister(self.control)
            self.control.close()
        for fd in fds:
            self._start(socket.socket(fileno=fd))

    def _start(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_TIMEOUT)
        try:
            request, fds = recv_request(conn)
        except EOFError:
            conn.close()  # a probe (`worker start` waiting for the socket) or a client that died
            return
        except (OSError, ValueError) as exc:
            _log(f"dropping a client whose request could not be read: {exc!r}")
            conn.close()
            return
        conn.settimeout(None)
        if self.cold_reason or len(fds) < 3:
            _send_line(conn, {"cold": self.cold_reason or "no stdin/stdout/stderr received"})
            _close_fds(fds)
            conn.close()
            return
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _run_child(request, fds)
            except BaseException:  # noqa: BLE001 - report, then leave like a process would
                traceback.print_exc()
            os._exit(code)
        _close_fds(fds)
        pgid = int(request.get("pgid") or 0)
        try:
            os.setpgid(pid, pgid)  # both sides set it, so no race with the child's first steps
        except OSError:
            pass
        try:
            grouped = os.getpgid(pid) == pgid
        except OSError:
            grouped = False
        child = _Child(pid, conn)
        self.children[pid] = child
        _send_line(conn, {"pid": pid, "grouped": grouped})
        self.sel.register(conn, selectors.EVENT_READ, ("conn", child))
        if hasattr(os, "pidfd_open"):
            try:
                child.pidfd = os.pidfd_open(pid)
                self.sel.register(child.pidfd, selectors.EVENT_READ, ("pid", child))
            except OSError:
                child.pidfd = -1

    def _from_client(self, child: _Child) -> None:
        try:
            data = child.conn.recv(4096)
        except OSError:
            data = b""
        if data:
            return  # nothing is expected from the client but its end
        # The client died (or was killed alone): its step must not run on.
        self.sel.unregister(child.conn)
        if not child.reaped:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except OSError:
                pass
            _log(f"client of step process {child.pid} went away: killed it")

    def _reap(self, child: _Child, status: int | None = None, usage: Any = None) -> None:
        if status is None:
            try:
                _, status, usage = os.wait4(child.pid, 0)
            except ChildProcessError:
                status = 0
        child.reaped = True
        if _STATS_FILE and usage is not None:
            _record_stats(child.pid, usage, child.started)
        code = os.waitstatus_to_exitcode(status)
        _send_line(child.conn, {"signal": -code} if code < 0 else {"exit": code})
        self.children.pop(child.pid, None)
        for fileobj in (child.conn, child.pidfd):
            if fileobj != -1:
                try:
                    self.sel.unregister(fileobj)
                except (KeyError, ValueError):
                    pass
        child.conn.close()
        if child.pidfd != -1:
            os.close(child.pidfd)

    def _reap_any(self) -> None:
        """Reaps children without a pidfd (platforms without pidfd_open)."""
        for pid, child in list(self.children.items()):
            if child.pidfd != -1:
                continue
            try:
                done, status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                done, status, usage = pid, 0, None
            if done:
                self._reap(child, status, usage)


# -- the master ----------------------------------------------------------------------------


@dataclass
class _Parent:
    pid: int
    control: socket.socket
    watch: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    buffer: bytes = b""
    alive: bool = True


class Master:
    """Holds the socket and hands each connection to the current warm parent."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.path: str = args.socket
        self.names: list[str] = list(args.preload)
        self.watch_paths: list[str] = list(args.watch)
        self.max_tasks: int = args.max_tasks_per_child
        self.sel = selectors.DefaultSelector()
        self.parents: dict[int, _Parent] = {}
        self.current: _Parent | None = None
        self.stopping = False
        self.listener = self._bind()

    def _bind(self) -> socket.socket:
        if os.path.exists(self.path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
            except OSError:
                os.unlink(self.path)  # left by a server that died
            else:
                raise SystemExit(f"forkserver: another fork server listens on {self.path}")
            finally:
                probe.close()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        os.chmod(self.path, 0o600)
        sock.listen(256)
        return sock

    def _spawn(self, why: str) -> _Parent:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ours.close()
                self.listener.close()
                for p in self.parents.values():
                    p.control.close()
                self.sel.close()
                for s in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(s, signal.SIG_IGN)  # the master tells it when to stop
                code = WarmParent(theirs, self.names).serve()
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
            os._exit(code)
        theirs.close()
        parent = _Parent(pid, ours, watch=mtimes(_python_files(self.watch_paths)))
        self.parents[pid] = parent
        self.sel.register(ours, selectors.EVENT_READ, parent)
        _log(f"started warm parent {pid} ({why})")
        return parent

    def _retire(self, parent: _Parent, why: str) -> None:
        if self.current is parent:
            self.current = None
        if parent.alive:
            _log(f"retiring warm parent {parent.pid} after {parent.steps} steps: {why}")
            self._drop(parent)

    def _drop(self, parent: _Parent) -> None:
        try:
            self.sel.unregister(parent.control)
        except (KeyError, ValueError):
            pass
        parent.control.close()
        parent.alive = False

    def _route(self, conn: socket.socket) -> None:
        parent = self.current
        if parent is not None:
            stale = changed(parent.watch)
            if stale:
                self._retire(parent, f"{stale} changed")
                parent = None
        if parent is None:
            parent = self.current = self._spawn("code changed" if self.parents else "first step")
        try:
            parent.control.sendmsg(
                [b"c"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [conn.fileno()]))]
            )
        except OSError as exc:
            _log(f"cannot hand a step to warm parent {parent.pid}: {exc}")
        conn.close()
        parent.steps += 1
        if self.max_tasks and parent.steps >= self.max_tasks:
            self._retire(parent, f"--max-tasks-per-child {self.max_tasks} reached")
            self.current = self._spawn("recycled")

    def _from_parent(self, parent: _Parent) -> None:
        try:
            data = parent.control.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            if self.current is parent:
                self.current = None
            self._drop(parent)
            return
        parent.buffer += data
        while b"\n" in parent.buffer:
            line, parent.buffer = parent.buffer.split(b"\n", 1)
            msg = json.loads(line)
            if isinstance(msg.get("watch"), dict):
                parent.watch.update({str(k): int(v) for k, v in msg["watch"].items()})

    def _reap(self) -> None:
        while self.parents:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            parent = self.parents.pop(pid, None)
            if parent is None:
                continue
            if parent.alive:
                _log(f"warm parent {pid} died ({os.waitstatus_to_exitcode(status)}): starting another")
                self._drop(parent)
                if self.current is parent:
                    self.current = None
                if not self.stopping:
                    self.current = self._spawn("the last one died")

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def serve(self) -> int:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._stop)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.current = self._spawn("start")
        _log(f"listening on {self.path}")
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.5):
                if key.data is None:
                    try:
                        conn, _ = self.listener.accept()
                    except OSError:
                        continue
                    self._route(conn)
                else:
                    self._from_parent(key.data)
            self._reap()
        return self._shutdown()

    def _shutdown(self) -> int:
        _log("stopping: no new steps; waiting for running ones")
        self.sel.unregister(self.listener)
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        for parent in list(self.parents.values()):
            if parent.alive:
                self._drop(parent)
        deadline = time.monotonic() + STOP_GRACE
        while self.parents and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        for pid in self.parents:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _log("stopped")
        return 0


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m dagster_taskiq.forkserver``."""
    p = argparse.ArgumentParser(
        prog="python -m dagster_taskiq.forkserver",
        description="Start Dagster steps warm: fork each from a process that imported Dagster and your code.",
    )
    p.add_argument("--socket", required=True, help="Unix socket to listen on ($DAGSTER_TASKIQ_FORKSERVER of steps)")
    p.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODULE|FILE",
        help="module or Python file the warm parent imports once (repeatable)",
    )
    p.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="PATH",
        help="file or directory (its *.py) whose change restarts the warm parent (repeatable); "
        "the preloaded code's own files are always watched",
    )
    p.add_argument(
        "--max-tasks-per-child",
        type=int,
        default=0,
        metavar="N",
        help="replace the warm parent after N steps (0: never)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the fork server until SIGTERM or SIGINT."""
    args = parser().parse_args(argv)
    return Master(args).serve()


if __name__ == "__main__":
    sys.exit(main())
