"""Bad configuration fails with a Dagster error that names the problem."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterError, DagsterInstance, DagsterRunStatus, execute_job

from conftest import Stack, events_text, make_stack
from dagster_taskiq import TaskiqBinaryNotFound, TaskiqCliError, TaskiqConfigError, TaskiqRunLauncher
from jobs import recon


@pytest.fixture(scope="module")
def stack(taskiq_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """No run launcher on this instance: the executor config alone must say where the queue is."""
    yield from make_stack(taskiq_bin, tmp_path_factory.mktemp("taskiq"), launcher=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def failed_run_text(stack: Stack, **executor: Any) -> str:
    result = execute_job(
        recon("diamond"), instance=stack.instance, run_config=stack.run_config(**executor), raise_on_error=False
    )
    assert not result.success
    run = stack.instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == DagsterRunStatus.FAILURE
    return events_text(stack.instance, result.run_id)


def test_no_queue_url(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TASKIQ_GO_QUEUE_URL", "DAGSTER_TASKIQ_SQS_QUEUE_URL", "TASKIQ_GO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    text = failed_run_text(stack, queue_url=None)
    assert "no SQS queue URL configured" in text and "queue_url" in text, text[-3000:]
    assert "TaskiqConfigError" in text


def test_binary_missing(stack: Stack, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "taskiq-go"
    text = failed_run_text(stack, binary=str(missing))
    assert "taskiq-go binary not found" in text and str(missing) in text, text[-3000:]
    assert "pip install dagster-taskiq" in text  # says how to install it


def test_binary_missing_everywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dagster_taskiq import TaskiqCli

    monkeypatch.delenv("TASKIQ_GO_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TaskiqBinaryNotFound, match=r"neither beside this Python nor on PATH.*pip install dagster-taskiq"):
        TaskiqCli()


def test_unreachable_endpoint(stack: Stack) -> None:
    port = closed_port()
    text = failed_run_text(
        stack,
        endpoint_url=f"http://127.0.0.1:{port}",
        queue_url=f"http://127.0.0.1:{port}/000000000000/taskiq",
    )
    assert "cannot reach" in text and f"127.0.0.1:{port}" in text, text[-3000:]
    assert "exited 69" in text


def test_launcher_without_queue_url(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TASKIQ_GO_QUEUE_URL", "DAGSTER_TASKIQ_SQS_QUEUE_URL", "TASKIQ_GO_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    launcher = TaskiqRunLauncher(binary=stack.binary)
    with pytest.raises(TaskiqConfigError, match="queue_url"):
        launcher.cli  # noqa: B018 - the property checks the settings


def test_launcher_failure_is_reported_on_the_run(stack: Stack, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_launcher:\n  module: dagster_taskiq\n  class: TaskiqRunLauncher\n"
        f"  config:\n    binary: {tmp_path / 'missing-taskiq-go'}\n"
    )
    with DagsterInstance.from_config(str(home)) as instance:
        job = recon("diamond")
        run = instance.create_run_for_job(job_def=job.get_definition(), job_code_origin=job.get_python_origin())
        with pytest.raises(DagsterError, match="taskiq-go binary not found"):
            instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        failed = instance.get_run_by_id(run.run_id)
        assert failed is not None and failed.status == DagsterRunStatus.FAILURE
        assert "taskiq-go binary not found" in events_text(instance, run.run_id)


def test_bad_task_is_refused_with_the_tools_message(stack: Stack) -> None:
    from dagster_taskiq import TaskiqCli

    cli = TaskiqCli(binary=stack.binary)
    with pytest.raises(TaskiqCliError) as info:
        cli.submit({"argv": ["true"], "queue": "no spaces allowed"})
    assert info.value.exit_code == 65
    assert "queue" in info.value.stderr
