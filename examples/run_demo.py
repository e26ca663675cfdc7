"""Runs examples/demo_job.py's `word_count` on the taskiq-go workers of the current environment.

Start the endpoint and workers first, then point this script at them:

    taskiq-go dev --workers 2 --env-file .cache/dev.env &
    . .cache/dev.env
    .venv/bin/python examples/run_demo.py

It starts nothing itself. It prints the run's outcome and which worker ran each step,
and exits 0 only when the run succeeded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob

from dagster_taskiq import step_workers

ROOT = Path(__file__).resolve().parents[1]
JOB_FILE = Path(__file__).resolve().parent / "demo_job.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dagster-home", default=os.environ.get("DAGSTER_HOME") or str(ROOT / ".cache" / "dagster_home")
    )
    args = parser.parse_args()

    if not (os.environ.get("TASKIQ_GO_QUEUE_URL") or os.environ.get("DAGSTER_TASKIQ_SQS_QUEUE_URL")):
        print(
            "run_demo: TASKIQ_GO_QUEUE_URL is not set: start `taskiq-go dev --workers 2 --env-file "
            ".cache/dev.env &` and `. .cache/dev.env` first",
            file=sys.stderr,
        )
        return 2
    if shutil.which("dagster") is None:
        print(
            "run_demo: warning: `dagster` is not on PATH; workers run steps as `dagster api "
            "execute_step`, so start them with the virtualenv's bin on PATH",
            file=sys.stderr,
        )
    home = Path(args.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    executor: dict[str, object] = {"health_check_interval": 5}
    repo_binary = ROOT / "bin" / "taskiq-go"
    if not os.environ.get("TASKIQ_GO_BIN") and repo_binary.exists():
        executor["binary"] = str(repo_binary)

    job = ReconstructableJob.for_file(str(JOB_FILE), "word_count")
    started = time.monotonic()
    with DagsterInstance.from_config(str(home)) as instance:
        with execute_job(
            job,
            instance=instance,
            run_config={
                "execution": {"config": executor},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
            raise_on_error=False,
        ) as result:
            elapsed = time.monotonic() - started
            status = "SUCCESS" if result.success else "FAILURE"
            print(f"\nrun {result.run_id}: {status} in {elapsed:.1f}s")

            outcome: dict[str, str] = {}
            for event in result.all_events:  # first mention fixes the order: launch order
                if event.step_key and event.step_key not in outcome:
                    outcome[event.step_key] = "-"
                if event.step_key and event.event_type in (
                    DagsterEventType.STEP_SUCCESS,
                    DagsterEventType.STEP_FAILURE,
                    DagsterEventType.STEP_SKIPPED,
                ):
                    outcome[event.step_key] = event.event_type.value.replace("STEP_", "").lower()
            workers = step_workers(instance, result.run_id)
            width = max(len(k) for k in outcome) if outcome else 10
            print(f"{'step':<{width}}  {'outcome':<8}  worker")
            for key in outcome:
                ran_on = ", ".join(f"{w.worker_id}@{w.host}" for w in workers.get(key, [])) or "-"
                print(f"{key:<{width}}  {outcome[key]:<8}  {ran_on}")
            if result.success:
                print(f"\nreport: {result.output_for_node('report')}")
            else:
                for event in result.all_events:
                    if event.event_type == DagsterEventType.STEP_FAILURE:
                        print(f"\n{event.step_key} failed: {event.step_failure_data.error.message.strip()}")
            return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
