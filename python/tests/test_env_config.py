"""Configured by the environment alone: the DAGSTER_TASKIQ_* variables name queue, endpoint,
bucket and prefix; the executor config says nothing of where the queue and store are.

The run goes through the co-process and through the subprocess path, and its
results land under the prefix the environment names (the worker is told the
same prefix; taskiq-go's default would not find them). Without a bucket the
run fails naming the variable to set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import DagsterRunStatus, execute_job

from conftest import Stack, events_text, make_stack
from dagster_taskiq import TaskiqCli
from dagster_taskiq.cli import MODE_ENV_VAR, ConnectionSettings
from jobs import recon

PREFIX = "from-env"
#: Everything that could configure the connection other than the four variables under test.
OTHER_SETTINGS = (
    "TASKIQ_GO_QUEUE_URL",
    "TASKIQ_GO_BUCKET",
    "TASKIQ_GO_PREFIX",
    "TASKIQ_GO_ENDPOINT_URL",
    "TASKIQ_GO_CONFIG",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_S3",
)


@pytest.fixture(scope="module")
def stack(taskiq_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """No run launcher (it could lend its settings), one worker using the same prefix."""
    for s in make_stack(taskiq_bin, tmp_path_factory.mktemp("taskiq"), launcher=False):
        s.start_worker("w-env", extra_args=["--prefix", PREFIX])
        yield s


@pytest.fixture()
def env_only(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    dev = stack.dev.env
    for name in OTHER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_TASKIQ_SQS_QUEUE_URL", dev["TASKIQ_GO_QUEUE_URL"])
    monkeypatch.setenv("DAGSTER_TASKIQ_SQS_ENDPOINT_URL", dev["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("DAGSTER_TASKIQ_S3_BUCKET", dev["TASKIQ_GO_BUCKET"])
    monkeypatch.setenv("DAGSTER_TASKIQ_S3_PREFIX", PREFIX)
    return stack


@pytest.mark.parametrize("mode", ["coprocess", "subprocess"])
def test_environment_alone_configures_the_executor(env_only: Stack, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    monkeypatch.setenv(MODE_ENV_VAR, mode)
    run_config = {"execution": {"config": {"health_check_interval": 2}}}
    with execute_job(recon("diamond"), instance=env_only.instance, run_config=run_config, raise_on_error=False) as result:
        assert result.success, events_text(env_only.instance, result.run_id)[-4000:]
        assert result.output_for_node("join") is not None
        run_id = result.run_id
    # The run's tasks are under the prefix from the environment.
    dev = env_only.dev.env
    cli = TaskiqCli(
        binary=env_only.binary,
        connection=ConnectionSettings(
            queue_url=dev["TASKIQ_GO_QUEUE_URL"], endpoint_url=dev["AWS_ENDPOINT_URL"], bucket=dev["TASKIQ_GO_BUCKET"]
        ),
        mode="subprocess",
    )
    assert cli.poll_group(run_id) == []  # not under taskiq-go's default prefix
    with_prefix = TaskiqCli(
        binary=env_only.binary,
        connection=ConnectionSettings(
            queue_url=dev["TASKIQ_GO_QUEUE_URL"],
            endpoint_url=dev["AWS_ENDPOINT_URL"],
            bucket=dev["TASKIQ_GO_BUCKET"],
            prefix=PREFIX,
        ),
        mode="subprocess",
    )
    states = {s.state for s in with_prefix.poll_group(run_id)}
    assert states == {"succeeded"}, states


def test_no_bucket_names_the_variable(env_only: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_TASKIQ_S3_BUCKET")
    run_config = {"execution": {"config": {"health_check_interval": 2}}}
    result = execute_job(recon("diamond"), instance=env_only.instance, run_config=run_config, raise_on_error=False)
    assert not result.success
    run = env_only.instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == DagsterRunStatus.FAILURE
    text = events_text(env_only.instance, result.run_id)
    assert "no S3 bucket configured" in text and "DAGSTER_TASKIQ_S3_BUCKET" in text, text[-3000:]
