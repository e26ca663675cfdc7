"""A warm worker's allowlist that names the step command by its exact path (the
Python client `dagster-taskiq-step` of the worker's virtualenv, as the README
shows) allows its steps whichever client `dagster-taskiq worker start` hands
them to: the native one it links first on the worker's PATH, or the Python one
(`--python-client`); and it still refuses a step when it names another path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import execute_job

from conftest import Stack, events_text, make_stack
from dagster_taskiq import TaskiqCli
from harness import TESTS_DIR, Proc, start_warm_worker, wait_for, worker_env
from warm_jobs import recon

WARM_JOBS = str(TESTS_DIR / "warm_jobs.py")
#: The Python client this virtualenv installed, as an operator names it in --allow.
PYTHON_CLIENT = str(Path(sys.executable).parent / "dagster-taskiq-step")


@pytest.fixture(scope="module")
def stack(taskiq_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(taskiq_bin, tmp_path_factory.mktemp("warm-allow"), launcher=False)


def allow_worker(stack: Stack, worker_id: str, queue: str, allow: str, *start_args: str) -> Proc:
    """A warm worker on queue that allows the one command pattern allow."""
    worker = start_warm_worker(
        stack.binary,
        worker_env(stack.dev.env, stack.dagster_home),
        stack.root,
        worker_id,
        queues=[queue],
        concurrency=1,
        start_args=["--preload", WARM_JOBS, *start_args],
        extra_args=["--allow", allow],
    )
    stack.workers.append(worker)
    return worker


def identify(stack: Stack, queue: str, worker: Proc) -> dict[str, object]:
    try:
        with execute_job(recon("identify"), instance=stack.instance, run_config=stack.run_config(queue=queue)) as result:
            assert result.success, events_text(stack.instance, result.run_id)[-4000:] + worker.log()[-4000:]
            me: dict[str, object] = result.output_for_node("whoami")
    finally:
        worker.stop()
        stack.workers.remove(worker)
    return me


def test_exact_path_allows_the_native_client(stack: Stack) -> None:
    assert Path(PYTHON_CLIENT).is_file(), PYTHON_CLIENT
    worker = allow_worker(stack, "w-allow-native", "default", PYTHON_CLIENT)
    wait_for("worker start to link the native client", lambda: "native client" in worker.log(), timeout=120)
    me = identify(stack, "default", worker)
    binary = Path(stack.binary).resolve()
    # the step's task was the native client, not a Python interpreter
    assert me["group_leader_exe"] in (str(binary), str(binary.parent / "taskiq-go-step")), me
    assert "dagster_taskiq.forkserver" in str(me["parent"]), me


def test_exact_path_allows_the_python_client(stack: Stack) -> None:
    worker = allow_worker(stack, "w-allow-python", "special", PYTHON_CLIENT, "--python-client")
    me = identify(stack, "special", worker)
    assert "python" in Path(str(me["group_leader_exe"])).name, me
    assert "dagster_taskiq.forkserver" in str(me["parent"]), me


def test_another_exact_path_refuses_the_native_client(stack: Stack, tmp_path: Path) -> None:
    elsewhere = tmp_path / "bin" / "dagster-taskiq-step"
    worker = allow_worker(stack, "w-allow-elsewhere", "runs", str(elsewhere))
    wait_for("worker start to link the native client", lambda: "native client" in worker.log(), timeout=120)
    try:
        result = execute_job(
            recon("identify"), instance=stack.instance, run_config=stack.run_config(queue="runs"), raise_on_error=False
        )
        assert not result.success
        cli = TaskiqCli(binary=stack.binary)
        (task,) = [s for s in cli.poll_group(result.run_id) if ".whoami." in s.id]
        assert task.state == "failed", task
        assert task.error == "command dagster-taskiq-step is not allowed on this worker", task
    finally:
        worker.stop()
        stack.workers.remove(worker)
