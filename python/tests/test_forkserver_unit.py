"""The fork server's warm-up, without a worker: what it shares with its children."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent(
    """
    import os, sys
    from alembic.script import ScriptDirectory
    from dagster import DagsterInstance
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config
    from dagster_taskiq import forkserver

    reads = []
    init = ScriptDirectory.__init__
    def counting_init(self, *args, **kwargs):
        reads.append(args[0] if args else kwargs.get("dir"))
        init(self, *args, **kwargs)
    ScriptDirectory.__init__ = counting_init

    assert forkserver.share_migration_scripts() is True
    first = len(reads)
    assert first == 1, reads  # read once, in the warm parent

    pid = os.fork()
    if pid == 0:
        # A step child: a fresh instance (created, stamped) and its reopening
        # (checked against the newest script) read no script again.
        home = sys.argv[1]
        with DagsterInstance.from_config(home) as instance:
            instance.get_runs()
        with DagsterInstance.from_config(home) as instance:
            instance.get_runs()
        a = ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__))
        b = ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))
        ok = a is b and len(reads) == first
        # Scripts of another location are still read each time.
        other = get_alembic_config(sqlite_run_storage.__file__, script_location=os.path.dirname(a.dir))
        ok = ok and ScriptDirectory.from_config(other) is not ScriptDirectory.from_config(other)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_migration_scripts_are_read_once_for_every_step_child(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run([sys.executable, "-c", PROBE, str(home)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


ENGINES_PROBE = textwrap.dedent(
    """
    import os, sys
    import sqlalchemy
    from dagster import DagsterInstance
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from dagster_taskiq import forkserver

    made = []
    real = sqlalchemy.create_engine
    def counting(url, **kwargs):
        made.append(str(url))
        return real(url, **kwargs)
    # what the storages call, seen before the fork server wraps it
    for name in forkserver.SQLITE_STORAGE_MODULES:
        __import__(name, fromlist=["x"]).create_engine = counting
    sqlalchemy.create_engine = counting
    assert forkserver.share_sqlite_engines() is True

    def open_db_files():
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.endswith(".db"):
                out.append(target)
        return out

    home = sys.argv[1]
    with DagsterInstance.from_config(home) as instance:  # the warm parent's own use
        instance.get_runs()
    first = len(made)
    assert first > 0, made
    assert not open_db_files(), open_db_files()  # NullPool: nothing stays open

    pid = os.fork()
    if pid == 0:
        forkserver.renew_shared_engines()
        ok = True
        for _ in range(3):
            with DagsterInstance.from_config(home) as instance:
                instance.get_runs()
                instance.event_log_storage.get_logs_for_run("no-such-run")
        # the parent's engines reused, one new per new database (the run's shard)
        ok = ok and len(made) == first + 1 and len(set(made)) == len(made)
        # which alone keeps its connection: the child's own engine, not the parent's
        ok = ok and [os.path.basename(f) for f in open_db_files()] == ["no-such-run.db"]
        # a process the step forks gets an empty pool, not the kept connection
        kept = [e for (u, _), e in forkserver._ENGINES.items() if u.endswith("no-such-run.db")]
        ok = ok and len(kept) == 1
        pool = kept[0].pool
        r, w = os.pipe()
        grandchild = os.fork()
        if grandchild == 0:
            os.write(w, b"new" if kept[0].pool is not pool else b"same")
            os._exit(0)
        os.waitpid(grandchild, 0)
        ok = ok and os.read(r, 8) == b"new" and kept[0].pool is pool
        print(made, open_db_files(), file=sys.stderr)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_sqlite_engines_are_made_once_per_database_and_only_a_childs_own_stay_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run([sys.executable, "-c", ENGINES_PROBE, str(home)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


INSTANCE_PROBE = textwrap.dedent(
    """
    import os, sys
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import deserialize_value, serialize_value
    from dagster_taskiq import forkserver

    home, other, with_env = sys.argv[1:4]
    os.environ["DAGSTER_HOME"] = with_env
    os.environ["SOME_DIR"] = os.path.join(with_env, "storage")
    assert forkserver.build_warm_instance() is False  # its config names a variable
    assert not forkserver._WARM_INSTANCE
    os.environ["DAGSTER_HOME"] = home
    forkserver.share_sqlite_engines()
    assert forkserver.build_warm_instance() is True
    warm = forkserver._WARM_INSTANCE[1]
    fds = sorted(os.listdir("/proc/self/fd"))
    assert not [f for f in fds if os.path.realpath(f"/proc/self/fd/{f}").endswith(".db")]

    pid = os.fork()
    if pid == 0:
        forkserver.renew_shared_engines()
        forkserver.offer_warm_instance()
        # the run's ref, as a step receives it (serialized by the orchestrator)
        ref = deserialize_value(serialize_value(InstanceRef.from_dir(home)), InstanceRef)
        with DagsterInstance.from_ref(InstanceRef.from_dir(other)) as o:
            ok = o is not warm
        with DagsterInstance.from_ref(ref) as first:
            ok = ok and first is warm
            first.get_runs()
        with DagsterInstance.from_ref(ref) as second:  # taken once only
            ok = ok and second is not warm
            second.get_runs()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_instance_opened_ahead_is_taken_once_by_a_child_of_the_same_ref(tmp_path: Path) -> None:
    homes = []
    for name, yaml in [
        ("home", "telemetry:\n  enabled: false\n"),
        ("other", "telemetry:\n  enabled: false\n"),
        ("with_env", "storage:\n  sqlite:\n    base_dir:\n      env: SOME_DIR\n"),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "dagster.yaml").write_text(yaml)
        homes.append(str(tmp_path / name))
    done = subprocess.run([sys.executable, "-c", INSTANCE_PROBE, *homes], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_preloaded_jobs_have_their_run_config_schema_built(tmp_path: Path) -> None:
    code = tmp_path / "jobs_here.py"
    code.write_text(
        textwrap.dedent(
            """
            from dagster import Definitions, job, op

            @op
            def one():
                return 1

            @job
            def plain():
                one()

            @job
            def in_defs():
                one()

            defs = Definitions(jobs=[in_defs])
            """
        )
    )
    probe = textwrap.dedent(
        f"""
        import sys
        from dagster._core.code_pointer import load_python_file
        from dagster_taskiq import forkserver

        module = load_python_file({str(code)!r}, None)
        assert module.plain._run_config_schema is None
        assert forkserver.warm_jobs([module]) == 3, "plain, in_defs (a module attribute and in defs)"
        assert module.plain._run_config_schema is not None
        assert module.in_defs._run_config_schema is not None
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_warm_plan_builds_a_mapped_steps_plan_and_stores_nothing(tmp_path: Path) -> None:
    code = tmp_path / "dynamic_here.py"
    code.write_text(
        textwrap.dedent(
            """
            from dagster import Config, DynamicOut, DynamicOutput, job, op

            @op(out=DynamicOut(int))
            def spread():
                for i in range(3):
                    yield DynamicOutput(i, mapping_key=str(i))

            @op
            def leaf(n: int) -> int:
                return n

            @op
            def gather(values: list[int]) -> int:
                return len(values)

            @job
            def fan():
                gather(spread().map(leaf).collect())

            class Needed(Config):
                x: int

            @op
            def configured(config: Needed) -> int:
                return config.x

            @job
            def needs_config():
                configured()
            """
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    probe = textwrap.dedent(
        f"""
        import os, sys
        from dagster._core.code_pointer import load_python_file
        from dagster._core.definitions.reconstruct import ReconstructableJob
        from dagster._core.execution.plan import plan as plan_module
        from dagster_taskiq import forkserver

        resolved = []
        real = plan_module._update_from_resolved_dynamic_outputs
        def counting(*args, **kwargs):
            resolved.append(args[-1])
            return real(*args, **kwargs)
        plan_module._update_from_resolved_dynamic_outputs = counting

        module = load_python_file({str(code)!r}, None)
        assert forkserver.warm_plan(ReconstructableJob.for_module(module.__name__, "fan")) is True
        assert {{"spread": {{"result": ["0"]}}}} in resolved, resolved  # a mapped step's path was taken
        assert forkserver.warm_plan(module.needs_config) is False, "a job that needs a run config is skipped"
        assert forkserver.warm_jobs([module]) == 2
        assert os.listdir({str(home)!r}) == [], os.listdir({str(home)!r})
        """
    )
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
