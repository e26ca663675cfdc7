"""A worker SIGKILLed mid-step: its step is stopped with it, Dagster notices (the step's own
interruption or the health check) and retries the step."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from dagster import DagsterEventType, execute_job

from conftest import HEALTH_CHECK_INTERVAL, Stack, events_text
from harness import Proc, pid_alive, read_if_exists, wait_for
from jobs import recon

#: A running task is reported lost once its worker's heartbeat is this old
#: (taskiq-go: 3 heartbeats, at least 5 s; the test workers beat every second).
LOST_AFTER = 5.0


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_killed_worker_does_not_hang_the_run(stack: Stack, tmp_path: Path) -> None:
    workers = [stack.start_worker("w-doomed", concurrency=1), stack.start_worker("w-spare", concurrency=1)]
    pid_file = tmp_path / "step.pid"
    killed: dict[str, object] = {}

    def kill_the_steps_worker() -> None:
        pid = int(wait_for("the step to start", lambda: read_if_exists(pid_file), timeout=90))
        killed["step_pid"] = pid
        # The step runs under its task's supervisor, a child of the worker.
        ancestors = [parent_pid(pid)]
        while ancestors[-1] > 1 and len(ancestors) < 8:
            ancestors.append(parent_pid(ancestors[-1]))
        victim: Proc = next(w for w in workers if w.pid in ancestors)
        killed["worker"] = victim.name
        killed["at"] = time.time()
        victim.kill()

    killer = threading.Thread(target=kill_the_steps_worker, daemon=True)
    killer.start()
    run_config = stack.run_config(ops={"sleep_then_recover": {"config": {"pid_file": str(pid_file), "seconds": 600}}})
    try:
        started = time.monotonic()
        with execute_job(
            recon("recovering"), instance=stack.instance, run_config=run_config, raise_on_error=False
        ) as result:
            elapsed = time.monotonic() - started
            killer.join(timeout=5)
            assert "at" in killed, "the step never started, so no worker was killed"
            text = events_text(stack.instance, result.run_id)
            assert result.success, text[-4000:]
            assert result.output_for_node("sleep_then_recover") == 1

        retry = [
            e
            for e in stack.instance.all_logs(result.run_id)
            if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_UP_FOR_RETRY
        ]
        assert len(retry) == 1, text[-4000:]
        # The step's supervisor stops it when its worker dies (it no longer
        # runs on as an orphan): Dagster sees either the step's own
        # interruption or, if that event did not make it, the lost task.
        assert ("failed health check" in text and "lost" in text) or "nterrupt" in text, text[-4000:]
        noticed_after = retry[0].timestamp - float(killed["at"])  # type: ignore[arg-type]
        # lost detection + one health-check interval + the time a poll and a loop turn take
        assert noticed_after <= LOST_AFTER + HEALTH_CHECK_INTERVAL + 3, noticed_after
        assert elapsed < 120
    finally:
        step_pid = killed.get("step_pid")
        if isinstance(step_pid, int) and pid_alive(step_pid):
            os.kill(step_pid, signal.SIGKILL)
