"""``dagster-taskiq-step``: the ``dagster`` CLI, minus the interpreter's teardown.

A step process has stored every event, closed its instance and flushed its
logs by the time ``dagster api execute_step`` returns; what remains is Python
freeing every module of Dagster one object at a time, about half a second of
CPU during which the worker's slot stays taken. This entry point runs the same
CLI, then does what interpreter exit would still do that matters (wait for
non-daemon threads, run atexit handlers, flush stdio) and leaves with
``os._exit``, as multiprocessing's children do.

This is the cold path. ``dagster-taskiq-step`` itself is the thin client in
``dagster_taskiq_step``, which hands the step to a warm fork server
(:mod:`dagster_taskiq.forkserver`) when one is configured and reachable, and
comes here otherwise; the fork server's children run :func:`run_dagster_cli`
too.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback


def main() -> None:
    """Runs ``dagster ARGS`` and leaves with its exit code through ``os._exit``."""
    os._exit(run_dagster_cli(sys.argv[1:]))


def run_dagster_cli(args: list[str]) -> int:
    """Runs the dagster CLI with ``args``; returns its exit code once threads,
    atexit handlers and stdio are done, for the caller to ``os._exit`` with."""
    from dagster._cli import main as dagster_main

    sys.argv = ["dagster", *args]
    code = 0
    try:
        dagster_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - report like the interpreter would, then exit
        traceback.print_exc()
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


if __name__ == "__main__":
    main()
