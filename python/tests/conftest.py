"""Fixtures: a real `taskiq-go dev` endpoint, real workers and a Dagster instance per test module."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from dagster_taskiq import report
from harness import DevServer, Proc, find_test_binary, start_warm_worker, start_worker, wait_for, worker_env

#: Seconds between step health checks in the tests' executor config.
HEALTH_CHECK_INTERVAL = 2


@pytest.fixture(scope="session")
def taskiq_bin() -> str:
    try:
        return find_test_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@dataclass
class Stack:
    """One dev endpoint, its workers and a Dagster instance in a private DAGSTER_HOME."""

    binary: str
    root: Path
    dagster_home: Path
    dev: DevServer
    instance: DagsterInstance
    workers: list[Proc] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return dict(self.dev.env)

    def start_worker(
        self,
        worker_id: str,
        queues: Sequence[str] = (),
        concurrency: int = 4,
        extra_args: Sequence[str] = (),
        warm: bool = False,
    ) -> Proc:
        """A `taskiq-go work`, or with warm a `dagster-taskiq worker start` (fork server and worker)."""
        proc = (start_warm_worker if warm else start_worker)(
            self.binary,
            worker_env(self.dev.env, self.dagster_home),
            self.root,
            worker_id,
            queues,
            concurrency,
            extra_args,
        )
        self.workers.append(proc)
        return proc

    def executor_config(self, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "queue_url": self.dev.env["TASKIQ_GO_QUEUE_URL"],
            "endpoint_url": self.dev.env["AWS_ENDPOINT_URL"],
            "binary": self.binary,
            "health_check_interval": HEALTH_CHECK_INTERVAL,
        }
        if self.dev.env.get("TASKIQ_GO_BUCKET"):
            config["bucket"] = self.dev.env["TASKIQ_GO_BUCKET"]
        if self.dev.env.get("AWS_REGION"):
            config["region_name"] = self.dev.env["AWS_REGION"]
        config.update(overrides)
        return {k: v for k, v in config.items() if v is not None}

    def run_config(self, ops: Mapping[str, Any] | None = None, **executor: Any) -> dict[str, Any]:
        config: dict[str, Any] = {"execution": {"config": self.executor_config(**executor)}}
        if ops:
            config["ops"] = dict(ops)
        return config

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.log()[-4000:]}" for p in [self.dev.proc, *self.workers]]
        return "\n".join(parts)


def make_stack(
    binary: str, root: Path, launcher: bool = True, run_monitoring: Mapping[str, Any] | None = None
) -> Iterator[Stack]:
    dagster_home = root / "dagster_home"
    dagster_home.mkdir(parents=True)
    dev = DevServer(binary, root, queues=["special", "runs"])
    saved = dict(os.environ)
    try:
        os.environ.update(dev.env)
        os.environ["DAGSTER_HOME"] = str(dagster_home)
        os.environ["TASKIQ_GO_BIN"] = binary
        settings: dict[str, Any] = {"telemetry": {"enabled": False}}
        if launcher:
            # taskiq-go runs a task again when its worker is lost; with run monitoring on,
            # Dagster ignores such a duplicate run worker instead of failing the run.
            settings["run_monitoring"] = {"enabled": True, **(run_monitoring or {})}
            settings["run_launcher"] = {
                "module": "dagster_taskiq",
                "class": "TaskiqRunLauncher",
                "config": {
                    "binary": binary,
                    "queue_url": dev.env["TASKIQ_GO_QUEUE_URL"],
                    "endpoint_url": dev.env["AWS_ENDPOINT_URL"],
                },
            }
        (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(settings))
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            stack = Stack(binary, root, dagster_home, dev, instance)
            try:
                yield stack
            finally:
                for worker in stack.workers:
                    worker.stop()
    finally:
        dev.stop()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def stack(taskiq_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(taskiq_bin, tmp_path_factory.mktemp("taskiq"))


@pytest.fixture(scope="module")
def two_workers(stack: Stack) -> Stack:
    """Worker w-special serves the queues default and special; w-plain serves only default.
    Both are warm: their steps are forked from a fork server's warm parent."""
    stack.start_worker("w-special", ["default", "special"], warm=True)
    stack.start_worker("w-plain", ["default"], warm=True)
    return stack


# -- reading a run's events ----------------------------------------------------------


def run_events(instance: DagsterInstance, run_id: str) -> list[Any]:
    return list(instance.all_logs(run_id))


def events_text(instance: DagsterInstance, run_id: str) -> str:
    """Every message and error text of a run, for asserting that something is visible."""
    lines: list[str] = []
    for entry in run_events(instance, run_id):
        lines.append(entry.message or "")
        ev = entry.dagster_event
        if ev is None:
            continue
        lines.append(ev.message or "")
        data = ev.event_specific_data
        error = getattr(data, "error", None)
        if error is not None:
            lines.append(error.to_string())
    return "\n".join(lines)


def step_workers(instance: DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """Step key -> ids of the workers its attempts ran on, from the executor's events."""
    return {k: [w.worker_id for w in v] for k, v in report.step_workers(instance, run_id).items()}


def wait_for_run(instance: DagsterInstance, run_id: str, statuses: set[DagsterRunStatus], timeout: float) -> Any:
    def finished() -> Any:
        run = instance.get_run_by_id(run_id)
        return run if run is not None and run.status in statuses else None

    try:
        return wait_for(f"run {run_id} to reach {sorted(s.value for s in statuses)}", finished, timeout, 0.2)
    except AssertionError:
        run = instance.get_run_by_id(run_id)
        raise AssertionError(
            f"run {run_id} is {run.status if run else None} after {timeout}s:\n{events_text(instance, run_id)[-6000:]}"
        ) from None
