"""The binary lookup prefers the bundled taskiq-go after `binary` and $TASKIQ_GO_BIN, and a
binary that speaks another wire version is warned about (TaskiqVersionWarning), by the
executor too when a run creates it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dagster_taskiq import WIRE_VERSION, TaskiqCli
from dagster_taskiq import cli as cli_module
from dagster_taskiq.cli import TaskiqVersionWarning


def fake_binary(path: Path, wire: int | None) -> str:
    field = f', "wire_version": {wire}' if wire is not None else ""
    path.write_text(f"#!/bin/sh\necho '{{\"version\": \"9.9.9\"{field}}}'\n")
    path.chmod(0o755)
    return str(path)


def test_no_warning_for_the_same_wire_version(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    cli = TaskiqCli(binary=fake_binary(tmp_path / "taskiq-go", WIRE_VERSION))
    assert cli.check_wire_version().wire_version == WIRE_VERSION
    assert not [w for w in recwarn if issubclass(w.category, TaskiqVersionWarning)]


@pytest.mark.parametrize("wire", [WIRE_VERSION + 1, None])
def test_warns_for_another_wire_version(tmp_path: Path, wire: int | None) -> None:
    cli = TaskiqCli(binary=fake_binary(tmp_path / "taskiq-go", wire))
    with pytest.warns(TaskiqVersionWarning, match="speaks wire version"):
        cli.check_wire_version()


def test_bundled_binary_comes_after_config_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = tmp_path / "venv-bin"
    scripts.mkdir()
    bundled = fake_binary(scripts / "taskiq-go", WIRE_VERSION)
    on_path = tmp_path / "path-bin"
    on_path.mkdir()
    fake_binary(on_path / "taskiq-go", WIRE_VERSION)
    monkeypatch.setattr(cli_module.sysconfig, "get_path", lambda name: str(scripts))
    monkeypatch.setattr(cli_module.sys, "executable", str(tmp_path / "elsewhere" / "python"))
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.delenv("TASKIQ_GO_BIN", raising=False)
    assert cli_module.find_binary() == bundled
    env_bin = fake_binary(tmp_path / "env-taskiq-go", WIRE_VERSION)
    monkeypatch.setenv("TASKIQ_GO_BIN", env_bin)
    assert cli_module.find_binary() == env_bin
    configured = fake_binary(tmp_path / "configured", WIRE_VERSION)
    assert cli_module.find_binary(configured) == configured
    monkeypatch.delenv("TASKIQ_GO_BIN")
    os.unlink(bundled)
    assert cli_module.find_binary() == str(on_path / "taskiq-go")
    assert sys.executable.endswith("python")


def test_the_executor_warns_when_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating the executor (what a run does first) checks the binary's wire version."""
    from dagster import DagsterInstance, job, op
    from dagster._config import process_config
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.executor.init import InitExecutorContext

    from dagster_taskiq import taskiq_executor

    @op
    def nothing() -> None: ...

    @job(executor_def=taskiq_executor)
    def one_step() -> None:
        nothing()

    # One command line a call: the fake answers `version` and the preflight poll (no tasks).
    monkeypatch.setenv(cli_module.MODE_ENV_VAR, "subprocess")
    binary = tmp_path / "taskiq-go"
    binary.write_text(
        "#!/bin/sh\n"
        f"case \"$1\" in version) echo '{{\"version\": \"9.9.9\", \"wire_version\": {WIRE_VERSION + 1}}}';; esac\n"
    )
    binary.chmod(0o755)
    raw = {"queue_url": "http://127.0.0.1:9/000000000000/q", "endpoint_url": "http://127.0.0.1:9",
           "bucket": "b", "binary": str(binary)}
    processed = process_config(taskiq_executor.config_schema.config_type, raw)
    assert processed.success and processed.value is not None, processed.errors
    create = taskiq_executor.executor_creation_fn
    assert create is not None
    with DagsterInstance.ephemeral() as instance:
        context = InitExecutorContext(
            job=InMemoryJob(one_step),
            executor_def=taskiq_executor,
            executor_config=dict(processed.value),
            instance=instance,
        )
        with pytest.warns(TaskiqVersionWarning, match=f"speaks wire version {WIRE_VERSION + 1}"):
            create(context)
