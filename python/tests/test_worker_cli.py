"""`dagster-taskiq worker start -d / list / terminate`: a detached warm worker
configured by the executor's YAML alone (no connection settings in its
environment) shows in `worker list` with its queues, and
`worker terminate` lets it finish its running step before it stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml
from dagster import DagsterEventType, execute_job

from conftest import Stack, events_text
from harness import pid_alive, read_if_exists, wait_for, worker_env
from warm_jobs import recon


#: Where the connection could come from besides `-y`: left out, so that the
#: commands (and the worker `start` runs) reach the endpoint through -y alone.
CONNECTION_ENV = (
    "TASKIQ_GO_QUEUE_URL",
    "TASKIQ_GO_BUCKET",
    "TASKIQ_GO_ENDPOINT_URL",
    "TASKIQ_GO_CONFIG",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_S3",
    "DAGSTER_TASKIQ_SQS_QUEUE_URL",
    "DAGSTER_TASKIQ_SQS_ENDPOINT_URL",
    "DAGSTER_TASKIQ_S3_BUCKET",
)


def dagster_taskiq(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = worker_env(stack.dev.env, stack.dagster_home)
    for name in CONNECTION_ENV:
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "dagster_taskiq.worker_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def listed(stack: Stack, config: Path) -> dict[str, dict[str, Any]]:
    proc = dagster_taskiq(stack, "worker", "list", "--json", "-y", str(config))
    assert proc.returncode == 0, proc.stderr
    return {w["worker"]: w for w in map(json.loads, proc.stdout.splitlines())}


def start_detached(stack: Stack, config: Path, worker_id: str, *queues: str) -> tuple[int, Path]:
    args = ["worker", "start", "-d", "-y", str(config), "-n", worker_id, "-c", "1"]
    for q in queues:
        args += ["-q", q]
    log = stack.root / f"{worker_id}.log"
    proc = dagster_taskiq(stack, *args, "--log-file", str(log), "--", "--heartbeat", "1s")
    assert proc.returncode == 0, proc.stderr
    return int(json.loads(proc.stdout)["pid"]), log


def test_start_list_terminate(stack: Stack, tmp_path: Path) -> None:
    config = tmp_path / "executor.yaml"
    config.write_text(yaml.safe_dump({"execution": {"config": stack.executor_config()}}))
    pids: list[int] = []
    try:
        pid, log = start_detached(stack, config, "w-cli", "default", "special")
        pids.append(pid)
        found = wait_for("w-cli in `worker list`", lambda: listed(stack, config).get("w-cli"), timeout=60)
        assert found["queues"] == ["default", "special"], found
        # The settings come from -y: without it the same environment reaches nothing.
        assert dagster_taskiq(stack, "worker", "list", "--json").returncode != 0
        table = dagster_taskiq(stack, "worker", "list", "-y", str(config)).stdout
        assert any(line.startswith("w-cli ") and "default,special" in line for line in table.splitlines()), table

        info_file, gate = tmp_path / "info.json", tmp_path / "gate"
        outcome: dict[str, Any] = {}

        def run() -> None:
            ops = {"hold_with_child": {"config": {"info_file": str(info_file), "gate_file": str(gate)}}}
            outcome["result"] = execute_job(
                recon("holding"), instance=stack.instance, run_config=stack.run_config(ops=ops), raise_on_error=False
            )

        runner = threading.Thread(target=run, daemon=True)
        runner.start()
        wait_for("the step to start", lambda: read_if_exists(info_file), timeout=120)

        out = dagster_taskiq(stack, "worker", "terminate", "-y", str(config), "w-cli")
        assert out.returncode == 0, out.stderr
        assert "w-cli: asked to stop" in out.stdout
        wait_for("w-cli to see the stop request", lambda: "stop requested" in log.read_text(), timeout=30)
        assert pid_alive(pid), "the worker stopped before its running step ended"

        gate.write_text("open")
        runner.join(timeout=120)
        result = outcome["result"]
        assert result.success, events_text(stack.instance, result.run_id)[-4000:]
        succeeded = [e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_SUCCESS]
        assert succeeded == ["hold_with_child"]
        wait_for("w-cli to exit", lambda: not pid_alive(pid), timeout=60)
        assert "w-cli" not in listed(stack, config)

        # --all stops every live worker; naming none and --all together is refused
        other, _ = start_detached(stack, config, "w-cli-2")
        pids.append(other)
        wait_for("w-cli-2 in `worker list`", lambda: listed(stack, config).get("w-cli-2"), timeout=60)
        assert dagster_taskiq(stack, "worker", "terminate", "-y", str(config)).returncode != 0
        out = dagster_taskiq(stack, "worker", "terminate", "-y", str(config), "--all")
        assert out.returncode == 0 and "w-cli-2: asked to stop" in out.stdout, out.stdout + out.stderr
        wait_for("w-cli-2 to exit", lambda: not pid_alive(other), timeout=60)
    finally:
        for p in pids:
            try:
                os.killpg(p, signal.SIGKILL)
            except OSError:
                pass
