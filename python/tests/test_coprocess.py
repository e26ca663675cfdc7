"""TaskiqCli through `taskiq-go serve --stdio` with the real binary and a real dev endpoint.

One co-process serves every caller of a Python process, from many threads at
once, answers matched by id; it is started again when it dies, and a failure
is the same TaskiqCliError, with the tool's message and exit code, as on the
subprocess path.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_taskiq.cli import (
    ConnectionSettings,
    TaskiqCli,
    TaskiqCliError,
    close_coprocesses,
)
from harness import DevServer, find_test_binary, wait_for


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = DevServer(find_test_binary(), tmp_path_factory.mktemp("coproc"))
    try:
        yield server
    finally:
        close_coprocesses()
        server.stop()


def connection(dev: DevServer) -> ConnectionSettings:
    return ConnectionSettings(
        queue_url=dev.env["TASKIQ_GO_QUEUE_URL"],
        endpoint_url=dev.env["AWS_ENDPOINT_URL"],
        bucket=dev.env.get("TASKIQ_GO_BUCKET"),
        region_name=dev.env.get("AWS_REGION"),
    )


def make_cli(dev: DevServer, mode: str = "coprocess") -> TaskiqCli:
    return TaskiqCli(binary=find_test_binary(), connection=connection(dev), extra_env=dev.env, mode=mode)


def test_one_coprocess_serves_every_thread(dev: DevServer) -> None:
    cli, other = make_cli(dev), make_cli(dev)
    assert cli.coprocess is other.coprocess  # one per Python process and connection
    cp = cli.coprocess
    assert cp is not None
    errors: list[BaseException] = []
    got: dict[str, str] = {}

    def submit_and_poll(n: int) -> None:
        try:
            tid = f"cp-thread-{n}"
            sub = cli.submit({"id": tid, "argv": ["true"], "group": "cp-threads"})
            assert sub.id == tid
            (status,) = cli.poll([tid])
            got[tid] = status.id
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit_and_poll, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert got == {f"cp-thread-{n}": f"cp-thread-{n}" for n in range(24)}  # each answer went to its caller
    assert cp.starts == 1
    assert sorted(s.id for s in cli.poll_group("cp-threads")) == sorted(got)


def test_batch_submit_and_errors_carry_the_tools_message(dev: DevServer) -> None:
    cli = make_cli(dev)
    subs = cli.submit_many([{"id": f"cp-batch-{n}", "argv": ["true"], "group": "cp-batch"} for n in range(12)])
    assert [s.id for s in subs] == [f"cp-batch-{n}" for n in range(12)]
    with pytest.raises(TaskiqCliError) as info:
        cli.result("cp-nope")
    assert info.value.exit_code == 67
    assert info.value.stderr == "taskiq-go: task cp-nope: no such task"
    assert "result --json cp-nope" in str(info.value) and "unknown task id" in str(info.value)
    with pytest.raises(TaskiqCliError) as info:
        cli.submit({"argv": []})
    assert info.value.exit_code == 65
    assert cli.poll_group("cp-no-such-group") == []
    # The subprocess path says the same.
    with pytest.raises(TaskiqCliError) as sub_info:
        make_cli(dev, "subprocess").result("cp-nope")
    assert (sub_info.value.exit_code, sub_info.value.stderr) == (67, "taskiq-go: task cp-nope: no such task")


def test_a_dead_coprocess_is_started_again(dev: DevServer) -> None:
    cli = make_cli(dev)
    cli.submit({"id": "cp-restart", "argv": ["true"]})
    cp = cli.coprocess
    assert cp is not None and cp.pid is not None
    before, pid = cp.starts, cp.pid
    os.kill(pid, signal.SIGKILL)
    wait_for("the co-process to be reaped", lambda: cp.pid is None or cp.pid != pid, timeout=30)
    assert [s.id for s in cli.poll(["cp-restart"])] == ["cp-restart"]
    assert cp.starts == before + 1


def test_a_coprocess_that_cannot_start_says_why(dev: DevServer, tmp_path: Path) -> None:
    # No bucket anywhere: serve refuses to start, exit 78, with taskiq-go's message.
    env_backup = {k: os.environ.pop(k) for k in ("TASKIQ_GO_BUCKET", "TASKIQ_GO_CONFIG") if k in os.environ}
    try:
        cli = TaskiqCli(
            binary=find_test_binary(),
            connection=ConnectionSettings(queue_url=dev.env["TASKIQ_GO_QUEUE_URL"], endpoint_url="http://127.0.0.1:9"),
            mode="coprocess",
        )
        with pytest.raises(TaskiqCliError) as info:
            cli.poll(["x"])
        assert info.value.exit_code == 78
        assert "no bucket" in info.value.stderr
    finally:
        os.environ.update(env_backup)


def test_a_changed_environment_gets_its_own_coprocess(dev: DevServer, tmp_path: Path) -> None:
    # A caller without a connection reads the endpoint from os.environ. When that
    # changes (a second endpoint, a test's next stack), calls must go to the new
    # endpoint, not to a co-process started with the old one.
    other = DevServer(find_test_binary(), tmp_path)
    saved = {k: os.environ.get(k) for k in set(dev.env) | set(other.env)}
    try:
        os.environ.update(dev.env)
        first = TaskiqCli(binary=find_test_binary(), mode="coprocess")
        first.submit({"id": "cp-env-first", "argv": ["true"], "group": "cp-env"})
        os.environ.update(other.env)
        second = TaskiqCli(binary=find_test_binary(), mode="coprocess")
        assert second.poll_group("cp-env") == []  # the second endpoint has none of the first's tasks
        second.submit({"id": "cp-env-second", "argv": ["true"], "group": "cp-env"})
        assert [s.id for s in second.poll_group("cp-env")] == ["cp-env-second"]
        os.environ.update(dev.env)
        assert [s.id for s in TaskiqCli(binary=find_test_binary()).poll_group("cp-env")] == ["cp-env-first"]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        other.stop()
