"""The executor on a PostgreSQL-backed instance: no run file to stat or query, so every
look reads the log through Dagster's own read, and a run with retries, optional outputs
and mapped steps ends as under Dagster's in-process executor."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, execute_job

from audit_jobs import recon
from conftest import Stack, events_text
from dagster_taskiq.executor import RunLogFiles, TaskiqExecutor
from harness import DevServer
from test_audit_executor import step_history
from test_shared_nothing import start_postgres

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def pg_stack(taskiq_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("audit-pg")
    home = root / "dagster_home"
    home.mkdir()
    pg = start_postgres()
    dev = DevServer(taskiq_bin, root)
    saved = dict(os.environ)
    try:
        os.environ.update(dev.env)
        os.environ["DAGSTER_HOME"] = str(home)
        os.environ["TASKIQ_GO_BIN"] = taskiq_bin
        db = {
            "hostname": "127.0.0.1",
            "port": pg.port,
            "username": "dagster",
            "password": "trust",
            "db_name": "dagster",
            "scheme": "postgresql+psycopg2",
        }
        settings: dict[str, Any] = {"telemetry": {"enabled": False}, "storage": {"postgres": {"postgres_db": db}}}
        (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
        with DagsterInstance.from_config(str(home)) as instance:
            stack = Stack(taskiq_bin, root, home, dev, instance)
            try:
                stack.start_worker("pg1", ["default"], concurrency=4)
                stack.start_worker("pg2", ["default"], concurrency=4)
                yield stack
            finally:
                for worker in stack.workers:
                    worker.stop()
    finally:
        dev.stop()
        pg.stop()
        os.environ.clear()
        os.environ.update(saved)


def test_branches_on_postgres_match_in_process(pg_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = pg_stack.instance
    kinds: list[list[str]] = []
    original = RunLogFiles.for_run

    def recorded(cls: type[RunLogFiles], inst: DagsterInstance, run_id: str) -> RunLogFiles:
        files = original(inst, run_id)
        kinds.append(files.paths)
        return files

    monkeypatch.setattr(RunLogFiles, "for_run", classmethod(recorded))
    reads: list[int] = []
    pop = TaskiqExecutor._pop_events

    def counted(self: TaskiqExecutor, *args: Any) -> Any:
        out = pop(self, *args)
        reads.append(self.skipped_reads)
        return out

    monkeypatch.setattr(TaskiqExecutor, "_pop_events", counted)
    with execute_job(recon("branches_inproc"), instance=instance) as expected:
        assert expected.success, events_text(instance, expected.run_id)[-4000:]
        want = step_history(instance, expected.run_id)
        want_total = expected.output_for_node("collect")
    with execute_job(recon("branches_job"), instance=instance, run_config=pg_stack.run_config()) as result:
        assert result.success, events_text(instance, result.run_id)[-4000:]
        assert step_history(instance, result.run_id) == want
        assert result.output_for_node("collect") == want_total
    assert kinds == [[]], "a Postgres instance has no run file: Dagster's read"
    assert reads and max(reads) == 0, "every look read the log"
