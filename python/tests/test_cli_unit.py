"""TaskiqCli on its own: binary lookup, exit codes, timeouts, JSON and settings passing.

A tiny shell script stands in for taskiq-go here so that the wrapper's own
behaviour is pinned down; everything else runs the real binary. The script
answers one command line per call, so these tests take the subprocess path
(test_coprocess.py covers the co-process with the real binary).
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from dagster._core.launcher import WorkerStatus

from dagster_taskiq.cli import (
    MODE_ENV_VAR,
    ConnectionSettings,
    TaskiqBinaryNotFound,
    TaskiqCli,
    TaskiqCliError,
    TaskiqCliTimeout,
    find_binary,
)
from dagster_taskiq.launcher import WORKER_STATUS
from dagster_taskiq.tags import (
    PRIORITY_TAG,
    QUEUE_TAG,
    RUN_PRIORITY_TAG,
    new_step_task_id,
    run_task_id,
    step_task_prefix,
    task_priority,
    task_queue,
)


@pytest.fixture(autouse=True)
def subprocess_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODE_ENV_VAR, "subprocess")


def fake_binary(tmp_path: Path, body: str, name: str = "taskiq-go") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_non_zero_exit_carries_stderr_and_code(tmp_path: Path) -> None:
    cli = TaskiqCli(binary=fake_binary(tmp_path, 'echo "taskiq-go: no such task" >&2; exit 67'))
    with pytest.raises(TaskiqCliError) as info:
        cli.result("abc")
    assert info.value.exit_code == 67
    assert info.value.stderr == "taskiq-go: no such task"
    assert "unknown task id" in str(info.value) and "result --json abc" in str(info.value)


def test_timeout_is_an_exception(tmp_path: Path) -> None:
    cli = TaskiqCli(binary=fake_binary(tmp_path, "exec sleep 5"), timeout=0.3)
    with pytest.raises(TaskiqCliTimeout, match="did not finish within 0.3s"):
        cli.poll(["x"])


def test_submit_sends_spec_on_stdin_and_settings_in_env(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    script = (
        f'cat > {out}.stdin; echo "$*" > {out}.args; env > {out}.env; echo \'{{"id":"t1","queue":"q","group":"g"}}\''
    )
    cli = TaskiqCli(
        binary=fake_binary(tmp_path, script),
        connection=ConnectionSettings(queue_url="http://q", endpoint_url="http://e", bucket="b", region_name="r"),
    )
    got = cli.submit({"argv": ["echo", "x" * 300_000], "id": "t1"})
    assert (got.id, got.queue, got.group) == ("t1", "q", "g")
    assert json.loads(Path(f"{out}.stdin").read_text())["argv"][1] == "x" * 300_000
    assert Path(f"{out}.args").read_text().split() == ["submit", "--json", "--spec", "-"]
    env = dict(line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines() if "=" in line)
    assert env["TASKIQ_GO_QUEUE_URL"] == "http://q"
    assert env["TASKIQ_GO_BUCKET"] == "b"
    assert env["AWS_ENDPOINT_URL"] == "http://e" and env["AWS_REGION"] == "r"


def test_submit_retries_an_unreachable_endpoint_only_with_an_id(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = f'echo x >> {counter}; echo "taskiq-go: cannot reach the endpoint" >&2; exit 69'
    cli = TaskiqCli(binary=fake_binary(tmp_path, script))
    with pytest.raises(TaskiqCliError):
        cli.submit({"argv": ["true"]})
    assert len(counter.read_text().splitlines()) == 1
    with pytest.raises(TaskiqCliError):
        cli.submit({"argv": ["true"], "id": "same"}, retries=1)
    assert len(counter.read_text().splitlines()) == 3


def test_poll_parses_json_lines(tmp_path: Path) -> None:
    lines = [
        {"id": "a", "state": "running", "exit_code": None, "worker": {"host": "h", "pid": 7, "id": "w1"}, "attempt": 1},
        {"id": "d", "state": "dead_letter", "exit_code": None, "error": "exceeded maxReceiveCount"},
        {
            "id": "b",
            "state": "failed",
            "exit_code": 3,
            "worker": {"host": "h", "pid": 8, "id": "w2"},
            "attempt": 1,
            "group": "g",
            "finished_at": "2026-01-01T00:00:00Z",
        },
    ]
    body = "\n".join(f"echo '{json.dumps(x)}'" for x in lines)
    statuses = TaskiqCli(binary=fake_binary(tmp_path, body)).poll(["a", "d", "b"])
    assert [(s.id, s.state, s.exit_code, str(s.worker), s.is_final) for s in statuses] == [
        ("a", "running", None, "h/w1", False),
        ("d", "dead_letter", None, "", True),
        ("b", "failed", 3, "h/w2", True),
    ]
    # A run whose task was dead-lettered is a failed run worker to monitoring.
    assert WORKER_STATUS["dead_letter"] is WorkerStatus.FAILED


def test_empty_group_polls_as_no_tasks(tmp_path: Path) -> None:
    cli = TaskiqCli(binary=fake_binary(tmp_path, 'echo "taskiq-go: group g has no tasks" >&2; exit 67'))
    assert cli.poll_group("g") == []


def test_binary_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    configured = fake_binary(tmp_path / "a", "true")
    from_env = fake_binary(tmp_path / "b", "true")
    on_path = fake_binary(tmp_path / "c", "true")
    monkeypatch.setenv("PATH", str(tmp_path / "c"))
    monkeypatch.setenv("TASKIQ_GO_BIN", from_env)
    assert find_binary(configured) == configured
    assert find_binary(None) == from_env
    monkeypatch.delenv("TASKIQ_GO_BIN")
    assert find_binary(None) == on_path
    monkeypatch.setenv("TASKIQ_GO_BIN", str(tmp_path / "nope"))
    with pytest.raises(TaskiqBinaryNotFound, match=r"\$TASKIQ_GO_BIN is .*nope.*pip install dagster-taskiq"):
        find_binary(None)


def test_tags_steer_queue_and_priority() -> None:
    assert task_queue({QUEUE_TAG: "gpu"}, "default") == "gpu"
    assert task_queue({}, "cpu") == "cpu"
    assert task_queue({}, None) is None
    assert task_priority({PRIORITY_TAG: "5"}, {RUN_PRIORITY_TAG: "10"}, 1) == 15
    assert task_priority({}, {RUN_PRIORITY_TAG: "-3"}, 1) == -2
    assert task_priority({PRIORITY_TAG: "900"}, {RUN_PRIORITY_TAG: "900"}, 0) == 1000
    with pytest.raises(ValueError, match=PRIORITY_TAG):
        task_priority({PRIORITY_TAG: "high"}, {}, 0)


def test_task_ids_are_valid_and_distinct() -> None:
    run_id = "0b9c2f1e-1111-2222-3333-444455556666"
    a = step_task_prefix(run_id, "square[3]", 0)
    b = step_task_prefix(run_id, "square_3_", 0)
    assert a != b  # the hash keeps slugs that collide apart
    for tid in (new_step_task_id(run_id, "x" * 300, 2), run_task_id(run_id), run_task_id(run_id, 2)):
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]*", tid) and len(tid) <= 200, tid
    assert new_step_task_id(run_id, "s", 0).startswith(step_task_prefix(run_id, "s", 0) + ".")
    assert run_task_id(run_id) == run_task_id(run_id)  # launching a run twice is one task
    assert run_task_id(run_id, 1) != run_task_id(run_id, 2)  # each resume is its own task


def test_native_step_client_link_prefers_the_small_binary_and_probes(tmp_path: Path) -> None:
    import os
    import shutil

    from harness import find_test_binary

    real = Path(find_test_binary()).resolve()
    # beside a binary that has the small client: that one
    small = real.parent / "taskiq-go-step"
    if small.exists():
        link = TaskiqCli(binary=str(real)).link_step_client(str(tmp_path / "a"))
        assert link is not None and os.path.realpath(link) == str(small)
    # the binary alone: the binary itself, started as dagster-taskiq-step
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(real, alone / "taskiq-go")
    link = TaskiqCli(binary=str(alone / "taskiq-go")).link_step_client(str(tmp_path / "b"))
    assert link is not None and os.path.realpath(link) == str(alone / "taskiq-go")
    assert Path(link).name == "dagster-taskiq-step"
    # a wrapper script cannot be it: no link, the Python client stays
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    assert TaskiqCli(binary=str(wrapper)).link_step_client(str(tmp_path / "c")) is None
    assert not (tmp_path / "c" / "dagster-taskiq-step").exists()
