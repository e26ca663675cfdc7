"""The executor on real workers: outputs flow, failures show, retries retry, tags route."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, execute_job

from conftest import Stack, events_text, step_workers
from dagster_taskiq import RUN_PRIORITY_TAG, TaskiqCli
from dagster_taskiq.cli import MODE_ENV_VAR
from jobs import FAILURE_MESSAGE, recon


def test_diamond_passes_outputs_between_steps(two_workers: Stack) -> None:
    with execute_job(recon("diamond"), instance=two_workers.instance, run_config=two_workers.run_config()) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
        assert result.output_for_node("left") == 11
        assert result.output_for_node("right") == 101
        assert result.output_for_node("join") == 112
        workers = step_workers(two_workers.instance, result.run_id)
        assert set(workers) == {"start", "left", "right", "join"}
        assert all(w[0] in {"w-special", "w-plain"} for w in workers.values()), workers
        # the run id is the task group: one poll sees every step's task
        cli = TaskiqCli(binary=two_workers.binary)
        group = cli.poll_group(result.run_id)
        assert len(group) == 4, group
        # the last step's process may still be exiting after it reported success
        ended = cli.wait([s.id for s in group], timeout=30)
        assert {s.state for s in ended} == {"succeeded"}, ended


def test_fan_out_of_eight(two_workers: Stack) -> None:
    with execute_job(recon("fan_out"), instance=two_workers.instance, run_config=two_workers.run_config()) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
        assert result.output_for_node("total") == sum(i * i for i in range(8))
        squares = [k for k in step_workers(two_workers.instance, result.run_id) if k.startswith("square[")]
        assert len(squares) == 8


def test_failing_op_fails_the_run_with_its_message(two_workers: Stack) -> None:
    result = execute_job(
        recon("failing"), instance=two_workers.instance, run_config=two_workers.run_config(), raise_on_error=False
    )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == ["explode"]
    assert FAILURE_MESSAGE in events_text(two_workers.instance, result.run_id)
    skipped = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_SKIPPED}
    assert "after_explode" in skipped or not any(
        e.step_key == "after_explode" and e.event_type == DagsterEventType.STEP_SUCCESS for e in result.all_events
    )


def test_retry_policy_retries_on_a_worker(two_workers: Stack) -> None:
    with execute_job(recon("retried"), instance=two_workers.instance, run_config=two_workers.run_config()) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
        assert result.output_for_node("flaky") == 1
        kinds = [e.event_type for e in result.all_events if e.step_key == "flaky"]
        assert DagsterEventType.STEP_UP_FOR_RETRY in kinds
        assert DagsterEventType.STEP_RESTARTED in kinds
        # one worker event per attempt: each attempt is its own task
        assert len(step_workers(two_workers.instance, result.run_id)["flaky"]) == 2


def test_step_tag_routes_to_the_worker_serving_its_queue(two_workers: Stack) -> None:
    for _ in range(3):  # the other worker is free and would take it if routing were wrong
        with execute_job(
            recon("routing"), instance=two_workers.instance, run_config=two_workers.run_config()
        ) as result:
            assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
            assert step_workers(two_workers.instance, result.run_id)["routed"] == ["w-special"]


def recording_binary(real: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A stand-in for taskiq-go that records each submitted spec, then runs the real binary.

    It reads one command line per call, so the executor takes the subprocess
    path here (the other tests of this file go through the co-process).
    """
    monkeypatch.setenv(MODE_ENV_VAR, "subprocess")
    log = tmp_path / "specs.jsonl"
    shim = tmp_path / "taskiq-go"
    shim.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = submit ]; then body=$(cat); '
        f"printf '%s\\n' \"$body\" >> {log}; "
        f'printf %s "$body" | {real} "$@"; else exec {real} "$@"; fi\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return str(shim), log


def test_tags_reach_submit(two_workers: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim, log = recording_binary(two_workers.binary, tmp_path, monkeypatch)
    with execute_job(
        recon("prioritized"),
        instance=two_workers.instance,
        run_config=two_workers.run_config(binary=shim, priority=1),
        tags={RUN_PRIORITY_TAG: "3"},
    ) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
    specs = {s["labels"]["dagster/step_key"]: s for s in map(json.loads, log.read_text().splitlines())}
    assert specs["urgent"]["queue"] == "special" and specs["urgent"]["priority"] == 10
    assert "queue" not in specs["ordinary"] and specs["ordinary"]["priority"] == 4
    for spec in specs.values():
        assert spec["group"] == result.run_id
        assert spec["max_attempts"] == 1
        assert spec["argv"][:3] == ["dagster-taskiq-step", "api", "execute_step"]
        assert spec["id"].startswith(result.run_id + ".")
    assert step_workers(two_workers.instance, result.run_id)["urgent"] == ["w-special"]


def test_plain_dagster_cli_when_fast_exit_is_off(
    two_workers: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shim, log = recording_binary(two_workers.binary, tmp_path, monkeypatch)
    with execute_job(
        recon("diamond"), instance=two_workers.instance, run_config=two_workers.run_config(binary=shim, fast_exit=False)
    ) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
        assert result.output_for_node("join") == 112
    argvs = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    assert len(argvs) == 4 and all(a[:3] == ["dagster", "api", "execute_step"] for a in argvs)


def test_a_run_calls_taskiq_go_through_one_coprocess(two_workers: Stack, tmp_path: Path) -> None:
    """Every submit, health check and worker lookup of a 10-step run, and the executor's
    check of the binary's wire version, go to one co-process: no other process is started."""
    starts = tmp_path / "starts"
    shim = tmp_path / "taskiq-go"
    shim.write_text(f'#!/bin/sh\necho "$1" >> {starts}\nexec {two_workers.binary} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    with execute_job(
        recon("fan_out"), instance=two_workers.instance, run_config=two_workers.run_config(binary=str(shim))
    ) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
    assert starts.read_text().split() == ["serve"]


def test_steps_ready_together_are_submitted_together(
    two_workers: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The eight mapped steps that emit's end makes ready go in one submit call."""
    monkeypatch.setenv(MODE_ENV_VAR, "subprocess")  # one command line per call, recorded
    log = tmp_path / "submits"
    shim = tmp_path / "taskiq-go"
    shim.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = submit ]; then body=$(cat); '
        f'printf "%s %s\\n" "$3" "$(printf "%s\\n" "$body" | grep -c argv)" >> {log}; '
        f'printf "%s\\n" "$body" | {two_workers.binary} "$@"; else exec {two_workers.binary} "$@"; fi\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    with execute_job(
        recon("fan_out"), instance=two_workers.instance, run_config=two_workers.run_config(binary=str(shim))
    ) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
        assert result.output_for_node("total") == sum(i * i for i in range(8))
    # emit alone, the squares together, then total: one call each
    assert log.read_text().split("\n")[:-1] == ["--spec 1", "--batch 8", "--spec 1"], log.read_text()


def test_a_long_step_is_read_less_often(two_workers: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # While a step runs and reports nothing, the orchestrator reads the event
    # log (Dagster's read, which the executor makes only when it must) about
    # once per max_poll_interval (1 s), not every poll_interval (0.1 s).
    from dagster._core.executor.step_delegating.step_delegating_executor import StepDelegatingExecutor

    reads: list[float] = []
    original = StepDelegatingExecutor._pop_events

    def counted(self: StepDelegatingExecutor, *args: object, **kwargs: object) -> object:
        reads.append(time.time())
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(StepDelegatingExecutor, "_pop_events", counted)
    seconds = 8.0
    run_config = two_workers.run_config(ops={"sleep_long": {"config": {"pid_file": str(tmp_path / "pid"), "seconds": seconds}}})
    with execute_job(recon("sleepy"), instance=two_workers.instance, run_config=run_config) as result:
        assert result.success, events_text(two_workers.instance, result.run_id)[-4000:]
        logs = two_workers.instance.all_logs(result.run_id)
    start = next(e.timestamp for e in logs if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_START)
    end = next(e.timestamp for e in logs if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_OUTPUT)
    assert end - start >= seconds
    during = [t for t in reads if start < t < end]
    # Read every 0.1 s that would be 80; growing to 1 s, about 12.
    assert 1 <= len(during) <= 24, (len(during), end - start)
