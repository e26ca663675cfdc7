"""The fork server's warm-up, without a worker: what it shares with its children."""

from __future__ import annotations

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
