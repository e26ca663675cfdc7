"""Real jobs on real workers against the executor's shortcuts.

- Shared step arguments: every step's ``--compressed-input-json`` equals Dagster's own, in
  runs where steps launched in one round differ (retries beside first attempts, optional
  outputs yielded per mapped step, re-execution from failure with a parent's state), and
  the steps end as they do under Dagster's in-process executor.
- Health rounds: 32 steps in flight whose tasks are cancelled from outside all fail with
  taskiq-go's reason, and each round polls them in one call, however long the round's
  failure writes take; a step whose worker does not allow its command fails with exit 126.
- Event reads: a run whose SQLite file is swapped for a copy mid-run still sees its steps
  end; ``max_concurrent`` and ``tag_concurrency_limits`` hold with the gated reads.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInstance, ReexecutionOptions, RunsFilter, execute_job

from audit_jobs import SPANS, recon
from conftest import Stack, events_text
from dagster_taskiq import TaskiqCli
from dagster_taskiq.step_handler import TaskiqStepHandler
from harness import wait_for

_STATES = {
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
    DagsterEventType.STEP_UP_FOR_RETRY,
    DagsterEventType.STEP_RESTARTED,
}


@pytest.fixture(scope="module")
def workers(stack: Stack) -> Stack:
    stack.start_worker("a1", ["default"], concurrency=4)
    stack.start_worker("a2", ["default"], concurrency=4)
    return stack


@pytest.fixture
def args_checked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool, bool]]:
    """Every step's compressed arguments, checked against Dagster's: (step key, equal, shortcut on)."""
    seen: list[tuple[str, bool, bool]] = []
    original = TaskiqStepHandler.compressed_args

    def checked(self: TaskiqStepHandler, args: Any) -> str:
        ours = original(self, args)
        seen.append((args.step_keys_to_execute[0], ours == args._get_compressed_args(), self._args_shortcut))
        return ours

    monkeypatch.setattr(TaskiqStepHandler, "compressed_args", checked)
    return seen


def step_history(instance: DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """Step key -> the kinds of its state events, in order."""
    found: dict[str, list[str]] = defaultdict(list)
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is not None and ev.event_type in _STATES and ev.step_key:
            found[ev.step_key].append(ev.event_type.value)
    return dict(found)


def failure_texts(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the error texts of its failures."""
    found: dict[str, str] = defaultdict(str)
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        ev = entry.dagster_event
        assert ev is not None and ev.step_key
        error = ev.step_failure_data.error
        found[ev.step_key] += f"{ev.message or ''}\n{error.to_string() if error else ''}\n"
    return dict(found)


def outputs(instance: DagsterInstance, run_id: str) -> set[tuple[str, str, str | None]]:
    found = set()
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT):
        ev = entry.dagster_event
        assert ev is not None
        handle = ev.step_output_data.step_output_handle
        found.add((str(ev.step_key), handle.output_name, handle.mapping_key))
    return found


def assert_args_matched(seen: list[tuple[str, bool, bool]], at_least: int) -> None:
    assert len(seen) >= at_least, seen
    assert [s for s in seen if not s[1]] == [], "step arguments differ from Dagster's"
    assert all(s[2] for s in seen), "the shortcut was turned off: it was compared and found different"


def test_branches_retries_and_optional_outputs_match_in_process(
    workers: Stack, args_checked: list[tuple[str, bool, bool]]
) -> None:
    instance = workers.instance
    with execute_job(recon("branches_inproc"), instance=instance) as expected:
        assert expected.success, events_text(instance, expected.run_id)[-4000:]
        want = step_history(instance, expected.run_id)
        want_out = outputs(instance, expected.run_id)
        want_total = expected.output_for_node("collect")
    with execute_job(recon("branches_job"), instance=instance, run_config=workers.run_config()) as result:
        assert result.success, events_text(instance, result.run_id)[-4000:]
        got = step_history(instance, result.run_id)
        assert got == want
        assert outputs(instance, result.run_id) == want_out
        assert result.output_for_node("collect") == want_total
        assert result.output_for_node("flaky_beside") == 107  # the retry ran as retry 1
        assert got["on_no"] == ["STEP_SKIPPED"] and got["after_no"] == ["STEP_SKIPPED"]
        assert got["use_kept[few_1]"] == ["STEP_SKIPPED"]
        assert got["mapped_flaky[k_1]"] == ["STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_SUCCESS"]
    # 14 steps launched, 4 of them retries
    assert_args_matched(args_checked, 18)
    # each retry is its own task, with its attempt in its id
    ids = [s.id for s in TaskiqCli(binary=workers.binary).poll_group(result.run_id)]
    assert len([i for i in ids if ".flaky_beside." in i]) == 2
    assert {i.split(".")[-2] for i in ids if ".flaky_beside." in i} == {"a0", "a1"}


def test_reexecution_from_failure_matches_in_process(
    workers: Stack, args_checked: list[tuple[str, bool, bool]], tmp_path: Path
) -> None:
    instance = workers.instance
    flag = tmp_path / "flag"
    ops = {"fails_until_flag": {"config": {"flag_file": str(flag)}}}
    first = execute_job(
        recon("refail_job"), instance=instance, run_config=workers.run_config(ops=ops), raise_on_error=False
    )
    assert not first.success
    failed = {k for k, v in step_history(instance, first.run_id).items() if v[-1] == "STEP_FAILURE"}
    assert failed == {"fails_until_flag[m1]", "fails_until_flag[m3]"}
    flag.write_text("")
    with execute_job(
        recon("refail_job"),
        instance=instance,
        run_config=workers.run_config(ops=ops),
        reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance),
    ) as again:
        assert again.success, events_text(instance, again.run_id)[-4000:]
        history = step_history(instance, again.run_id)
        # only what failed or did not run, reading the parent run's outputs
        assert set(history) == {"fails_until_flag[m1]", "fails_until_flag[m3]", "summed"}
        assert again.output_for_node("summed") == 3 * sum(range(5))
    assert_args_matched(args_checked, 6 + 4)


def test_thirty_two_cancelled_steps_fail_with_the_reason_in_few_polls(
    workers: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[int] = []
    original = TaskiqCli.poll

    def counted(self: TaskiqCli, ids: Any) -> Any:
        if sys._getframe(1).f_code.co_name == "_health_status":  # not the workers' lookups
            polls.append(len(ids))
        return original(self, ids)

    monkeypatch.setattr(TaskiqCli, "poll", counted)
    gate = tmp_path / "gate"
    cli = TaskiqCli(binary=workers.binary)
    ops = {"many": {"config": {"gate_file": str(gate)}}, "held": {"config": {"gate_file": str(gate)}}}

    box: dict[str, Any] = {}

    def run() -> None:
        box["result"] = execute_job(
            recon("many_held_job"), instance=workers.instance, run_config=workers.run_config(ops=ops), raise_on_error=False
        )

    thread = threading.Thread(target=run, daemon=True)  # a hang must not keep pytest alive
    thread.start()
    try:
        # eight steps (the two workers' slots) hold; the other 24 wait in the queue
        wait_for("eight held steps to start", lambda: len(list(tmp_path.glob("gate.started.*"))) >= 8, 240)
        run_id = wait_for("the run's tasks", lambda: _group_with(workers.instance, cli, 32), 60)
        cli.cancel_group(run_id)
        thread.join(240)
        assert not thread.is_alive(), "the run did not end after its tasks were cancelled"
    finally:
        gate.write_text("")
        thread.join(60)
    result = box["result"]
    assert not result.success
    history = step_history(workers.instance, result.run_id)
    held = {k: v for k, v in history.items() if k.startswith("held[")}
    assert len(held) == 32 and all(v == ["STEP_FAILURE"] for v in held.values()), held
    # a step that was running records its own interruption (its worker stopped it); one
    # still queued never ran, and the health round fails it with taskiq-go's reason
    reasons = failure_texts(workers.instance, result.run_id)
    queued = {k for k, v in reasons.items() if "is cancelled; cancelled before it started" in v}
    stopped = {k for k, v in reasons.items() if "DagsterExecutionInterruptedError" in v or "is cancelled" in v}
    assert len(queued) >= 32 - 8, reasons
    assert {k: v for k, v in reasons.items() if k.startswith("held[") and k not in stopped | queued} == {}
    # a round polls every step in flight at once; once the 32 are in flight, only a check
    # made after its round's answer expired (a slow round on a busy machine) polls alone
    first = next(i for i, n in enumerate(polls) if n >= 32)
    assert len([n for n in polls[first:] if n < 32]) <= 8, polls


def _group_with(instance: DagsterInstance, cli: TaskiqCli, n: int) -> str | None:
    """The run id whose group has n held steps, once it has them."""
    runs = instance.get_runs(limit=1, filters=RunsFilter(job_name="many_held"))
    if not runs:
        return None
    group = cli.poll_group(runs[0].run_id)
    return runs[0].run_id if len([s for s in group if ".held_" in s.id]) >= n else None


def test_sqlite_file_swapped_mid_run_does_not_hang(workers: Stack, tmp_path: Path) -> None:
    """The run's events file replaced by a copy (a restore, storage rotated): the executor's
    open connection must not keep reading the file that is gone."""
    gate = tmp_path / "gate"

    box: dict[str, Any] = {}
    ops = {"wait_gate": {"config": {"gate_file": str(gate)}}}

    def run() -> None:
        box["result"] = execute_job(
            recon("gate_chain_job"), instance=workers.instance, run_config=workers.run_config(ops=ops), raise_on_error=False
        )

    thread = threading.Thread(target=run, daemon=True)  # a hang must not keep pytest alive
    thread.start()
    try:
        wait_for("the gated step to start", lambda: (tmp_path / "gate.started").exists(), 240)
        runs = workers.instance.get_runs(limit=1, filters=RunsFilter(job_name="gate_chain"))
        storage: Any = workers.instance.event_log_storage
        db = Path(storage.path_for_shard(runs[0].run_id))
        copy = db.with_suffix(".copy")
        src, dst = sqlite3.connect(db), sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        copy.replace(db)
        gate.write_text("hello")
        thread.join(180)
        assert not thread.is_alive(), "the run hangs after its events file was replaced"
    finally:
        gate.write_text("hello")
        thread.join(60)
    result = box["result"]
    assert result.success, events_text(workers.instance, result.run_id)[-4000:]
    history = step_history(workers.instance, result.run_id)
    assert history == {k: ["STEP_SUCCESS"] for k in ("wait_gate", "after", "after_after")}, history


@pytest.mark.parametrize(
    "limit",
    [
        {"max_concurrent": 2},
        {"tag_concurrency_limits": [{"key": "audit/kind", "value": "span", "limit": 2}]},
    ],
    ids=["max_concurrent", "tag_concurrency_limits"],
)
def test_concurrency_limits_hold_with_gated_reads(workers: Stack, tmp_path: Path, limit: dict[str, Any]) -> None:
    ops = {name: {"config": {"dir": str(tmp_path)}} for name in SPANS}
    with execute_job(
        recon("spans_job"), instance=workers.instance, run_config=workers.run_config(ops=ops, **limit)
    ) as result:
        assert result.success, events_text(workers.instance, result.run_id)[-4000:]
    spans = [(float((tmp_path / f"{n}.start").read_text()), float((tmp_path / f"{n}.end").read_text())) for n in SPANS]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= limit.get("max_concurrent", 2), spans


def test_a_step_its_worker_does_not_allow_fails_with_the_reason(workers: Stack) -> None:
    """A worker that refuses the step's command (exit 126): the health round fails the step
    with taskiq-go's reason, and the run ends."""
    from jobs import recon as jobs_recon

    refusing = workers.start_worker("a-refuse", ["special"], concurrency=1, extra_args=["--allow", "/nowhere/only"])
    try:
        result = execute_job(
            jobs_recon("routing"), instance=workers.instance, run_config=workers.run_config(), raise_on_error=False
        )
    finally:
        refusing.stop()
        workers.workers.remove(refusing)
    assert not result.success
    history = step_history(workers.instance, result.run_id)
    assert history == {"routed": ["STEP_FAILURE"], "unrouted": ["STEP_SUCCESS"]}, history
    reason = failure_texts(workers.instance, result.run_id)["routed"]
    assert "is failed" in reason and "exit code 126" in reason, reason
