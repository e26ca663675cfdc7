"""Wall time of a Dagster job of 16 independent no-op ops: taskiq_executor vs multiprocess_executor.

    .venv/bin/python bench/dagster_bench.py [--runs 3] [--workers 2] [--concurrency 1]

Starts its own `taskiq-go dev` endpoint with WORKERS in-process workers of
CONCURRENCY slots each, and gives Dagster's multiprocess_executor the same
parallelism (max_concurrent = WORKERS * CONCURRENCY). Runs alternate between the
two executors after one warm-up run of each. Prints wall times, their ratio, the
latency each step gains, and each step's in-process time from the event log.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    execute_job,
    job,
    multiprocess_executor,
    op,
)
from dagster._core.definitions.reconstruct import ReconstructableJob

from dagster_taskiq import taskiq_executor

ROOT = Path(__file__).resolve().parents[1]
STEPS = 16


@op
def noop() -> None:
    return None


def _graph() -> None:
    for i in range(STEPS):
        noop.alias(f"noop_{i:02d}")()


@job(executor_def=taskiq_executor)
def noops_taskiq() -> None:
    _graph()


@job(executor_def=multiprocess_executor)
def noops_multiprocess() -> None:
    _graph()


#: Variants that run an existing job with another config.
JOBS = {"noops_taskiq_plain": "noops_taskiq"}


def start_dev(
    binary: str, workdir: Path, workers: int, concurrency: int
) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env_file = workdir / "dev.env"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = open(workdir / "dev.log", "wb")
    proc = subprocess.Popen(
        [
            binary,
            "dev",
            "--addr",
            "127.0.0.1:0",
            "--env-file",
            str(env_file),
            "--workers",
            str(workers),
            "--concurrency",
            str(concurrency),
            "--log-level",
            "warn",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while not (env_file.exists() and "TASKIQ_GO_QUEUE_URL" in env_file.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"taskiq-go dev did not start; see {workdir / 'dev.log'}")
        time.sleep(0.05)
    values = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export ") :].split("=", 1)
            values[name] = value.strip("'\"")
    return proc, values


def step_latencies(instance: DagsterInstance, run_id: str) -> list[float]:
    """Per step: seconds from its process reporting in (STEP_WORKER_STARTED) to STEP_SUCCESS.

    Launch-to-start is not comparable: taskiq_executor queues every ready step
    at once while multiprocess_executor launches only into free slots.
    """
    began: dict[str, float] = {}
    done: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is None or not ev.step_key:
            continue
        if ev.event_type == DagsterEventType.STEP_WORKER_STARTED:
            began.setdefault(ev.step_key, entry.timestamp)
        elif ev.event_type == DagsterEventType.STEP_SUCCESS:
            done.setdefault(ev.step_key, entry.timestamp)
    return [done[k] - began[k] for k in done if k in began]


def run_once(instance: DagsterInstance, name: str, config: dict[str, Any]) -> tuple[float, list[float]]:
    recon = ReconstructableJob.for_file(str(Path(__file__).resolve()), name)
    run_config = {"execution": {"config": config}, "loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    started = time.monotonic()
    result = execute_job(recon, instance=instance, run_config=run_config, raise_on_error=False)
    wall = time.monotonic() - started
    if not result.success:
        raise SystemExit(f"{name} run {result.run_id} failed")
    return wall, step_latencies(instance, result.run_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--binary", default=os.environ.get("TASKIQ_GO_BIN") or str(ROOT / "bin" / "taskiq-go"))
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    parser.add_argument(
        "--plain", action="store_true", help="also time taskiq_executor with fast_exit off (plain `dagster` CLI)"
    )
    args = parser.parse_args()
    parallelism = args.workers * args.concurrency

    with tempfile.TemporaryDirectory(prefix="dagster-bench-") as tmp:
        workdir = Path(tmp)
        home = workdir / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        dev, env = start_dev(args.binary, workdir, args.workers, args.concurrency)
        os.environ.update(env)
        try:
            with DagsterInstance.from_config(str(home)) as instance:
                configs = {
                    "noops_taskiq": {"binary": args.binary},
                    "noops_multiprocess": {"max_concurrent": parallelism},
                }
                if args.plain:
                    configs["noops_taskiq_plain"] = {"binary": args.binary, "fast_exit": False}
                for name, config in configs.items():  # warm-up: bytecode caches, sqlite files
                    run_once(instance, JOBS.get(name, name), config)
                walls: dict[str, list[float]] = {name: [] for name in configs}
                lat: dict[str, list[float]] = {name: [] for name in configs}
                for i in range(args.runs):
                    order = list(configs) if i % 2 == 0 else list(reversed(configs))
                    for name in order:
                        wall, latencies = run_once(instance, JOBS.get(name, name), configs[name])
                        walls[name].append(wall)
                        lat[name].extend(latencies)
                        print(f"run {i + 1}: {name:<20} {wall:6.2f}s", flush=True)
        finally:
            dev.terminate()
            dev.wait(timeout=30)

    tq, mp = statistics.median(walls["noops_taskiq"]), statistics.median(walls["noops_multiprocess"])
    waves = STEPS / parallelism
    figures = {
        "steps": STEPS,
        "parallelism": parallelism,
        "runs": args.runs,
        "taskiq_wall_s": walls["noops_taskiq"],
        "multiprocess_wall_s": walls["noops_multiprocess"],
        "taskiq_median_s": round(tq, 3),
        "multiprocess_median_s": round(mp, 3),
        "ratio": round(tq / mp, 3),
        "added_latency_per_step_ms": round((tq - mp) / waves * 1000, 1),
        "taskiq_step_process_ms": round(statistics.median(lat["noops_taskiq"]) * 1000, 1),
        "multiprocess_step_process_ms": round(statistics.median(lat["noops_multiprocess"]) * 1000, 1),
    }
    print()
    print(f"16 no-op steps, parallelism {parallelism}, {args.runs} runs each (median wall time)")
    print(f"  taskiq_executor       {tq:6.2f}s")
    print(f"  multiprocess_executor {mp:6.2f}s")
    print(f"  ratio                 {tq / mp:6.3f}")
    print(f"  added latency per step (wall difference / {waves:g} waves): {figures['added_latency_per_step_ms']} ms")
    print(
        f"  in-process step time, worker started to success (median): "
        f"taskiq {figures['taskiq_step_process_ms']} ms, multiprocess {figures['multiprocess_step_process_ms']} ms"
    )
    if "noops_taskiq_plain" in walls:
        plain = statistics.median(walls["noops_taskiq_plain"])
        figures["taskiq_plain_wall_s"] = walls["noops_taskiq_plain"]
        figures["taskiq_plain_median_s"] = round(plain, 3)
        figures["plain_ratio"] = round(plain / mp, 3)
        figures["plain_added_latency_per_step_ms"] = round((plain - mp) / waves * 1000, 1)
        print(
            f"  taskiq_executor, fast_exit off {plain:6.2f}s  ratio {plain / mp:6.3f}  "
            f"added latency per step {figures['plain_added_latency_per_step_ms']} ms"
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
