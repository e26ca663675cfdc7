"""Secrets by reference in the executor's config: the task carries only the reference
(``PW: env:HOME``), the worker resolves it when the step starts, and the step sees
the worker's value. A reference the worker cannot resolve fails the step before it
starts, naming the reference. The run launcher's config takes the same references
and puts them, and only them, in the run's task.
"""

from __future__ import annotations

from dagster import execute_job
from dagster._config import process_config
from dagster._core.definitions.run_config import convert_config_input

from conftest import Stack, events_text
from dagster_taskiq import TaskiqRunLauncher
from jobs import recon


def test_the_launcher_takes_secrets_by_reference() -> None:
    config = {"secrets": {"PW": "ssm:/app/pw", "TOKEN": "secretsmanager:app-token"}}
    checked = process_config(convert_config_input(TaskiqRunLauncher.config_type()), config)
    assert checked.success, checked.errors
    launcher = TaskiqRunLauncher(**checked.value)
    spec = launcher.settings.task_spec(
        "run-1", ["dagster", "api", "execute_run"], group="g", env={}, labels={}, priority=0, queue_tags={}
    )
    assert spec["secrets"] == {"PW": "ssm:/app/pw", "TOKEN": "secretsmanager:app-token"}
    assert "ssm:/app/pw" not in str(spec["env"])


def test_a_step_gets_its_secret_from_the_worker(two_workers: Stack) -> None:
    run_config = two_workers.run_config(secrets={"PW": "env:HOME"})
    with execute_job(recon("secret_reader"), instance=two_workers.instance, run_config=run_config) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
        assert result.output_for_node("read_secret") == "same as HOME"


def test_an_unresolvable_secret_fails_the_step(two_workers: Stack) -> None:
    run_config = two_workers.run_config(secrets={"PW": "env:NO_SUCH_VARIABLE_ON_WORKERS"})
    with execute_job(
        recon("secret_reader"), instance=two_workers.instance, run_config=run_config, raise_on_error=False
    ) as result:
        assert not result.success
        text = events_text(two_workers.instance, result.run_id)
        assert "NO_SUCH_VARIABLE_ON_WORKERS" in text, text[-4000:]
