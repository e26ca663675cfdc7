"""Secrets by reference in the executor's config: the task carries only the reference
(``PW: env:HOME``), the worker resolves it when the step starts, and the step sees
the worker's value. A reference the worker cannot resolve fails the step before it
starts, naming the reference.
"""

from __future__ import annotations

from dagster import execute_job

from conftest import Stack, events_text
from jobs import recon


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
