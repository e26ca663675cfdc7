"""The orchestrator's cost of calling taskiq-go: the co-process against one process per call.

    .venv/bin/python bench/coproc_bench.py [--calls 500] [--runs 2] [--json FILE]

1. times `TaskiqCli.submit` and `TaskiqCli.poll` from Python (and a request the
   co-process refuses before any I/O: the protocol's own cost), through the
   `serve --stdio` co-process and through one subprocess per call (p50, p90),
   on a `taskiq-go dev` of its own with no workers (so that only the calls
   are measured);
2. runs a Dagster job of 16 independent no-op ops on `taskiq-go dev --workers 2
   --concurrency 1`, in both
   modes, alternating, and counts the `taskiq-go` processes the orchestrator
   started (the binary is called through a wrapper that logs each start) and
   the orchestrator's CPU seconds (its own plus its reaped children's: the
   calls, and the co-process once closed; the endpoint and workers are not
   reaped until the end, so they do not count).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, execute_job, job, op
from dagster._core.definitions.reconstruct import ReconstructableJob

from dagster_taskiq import taskiq_executor
from dagster_taskiq.cli import ConnectionSettings, TaskiqCli, close_coprocesses

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dagster_bench import _env_file, _wait  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = 16


@op
def noop() -> None:
    return None


@job(executor_def=taskiq_executor)
def noops16() -> None:
    for i in range(STEPS):
        noop.alias(f"noop_{i:02d}")()


def start_dev(binary: str, workdir: Path, workers: int, concurrency: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`taskiq-go dev` on a free port, with `workers` workers of `concurrency` slots; its env."""
    env_file = workdir / "dev.env"
    env_file.unlink(missing_ok=True)
    argv = [binary, "dev", "--addr", "127.0.0.1:0", "--env-file", str(env_file), "--log-level", "warn"]
    if workers:
        argv += ["--workers", str(workers), "--concurrency", str(concurrency), "--pass-env", "DAGSTER_*"]
    log = open(workdir / "dev.log", "ab")  # noqa: SIM115 - the process's own log, closed with it
    dev = subprocess.Popen(argv, stdout=log, stderr=log)
    _wait("taskiq-go dev", lambda: env_file.exists() and "TASKIQ_GO_QUEUE_URL" in env_file.read_text())
    return dev, _env_file(env_file)


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_ms": round(statistics.median(s) * 1000, 3), "p90_ms": round(s[int(len(s) * 0.9)] * 1000, 3)}


def timed(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="co-process calls timed (subprocess: a tenth)")
    parser.add_argument("--runs", type=int, default=2, help="16-op runs per mode")
    parser.add_argument("--binary", default=os.environ.get("TASKIQ_GO_BIN") or str(ROOT / "bin" / "taskiq-go"))
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="coproc-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "calls").mkdir()
        dev, env = start_dev(args.binary, workdir / "calls", 0, 1)
        try:
            conn = ConnectionSettings(
                queue_url=env["TASKIQ_GO_QUEUE_URL"], endpoint_url=env["AWS_ENDPOINT_URL"], bucket=env["TASKIQ_GO_BUCKET"]
            )
            # 1. one call at a time.
            for mode, n in (("coprocess", args.calls), ("subprocess", max(20, args.calls // 10))):
                cli = TaskiqCli(binary=args.binary, connection=conn, extra_env=env, mode=mode)
                cli.poll_group("warm-up")
                sub = timed(lambda i: cli.submit({"id": f"{mode}-{i}", "argv": ["true"], "group": f"b-{mode}"}), n)
                pol = timed(lambda i: cli.poll([f"{mode}-{i}"]), n)
                figures[f"{mode}_submit"] = percentiles(sub)
                figures[f"{mode}_poll"] = percentiles(pol)
                if cli.coprocess is not None:
                    # A request refused before any I/O (poll without ids): the protocol's own cost.
                    cp = cli.coprocess
                    figures["coprocess_round_trip"] = percentiles(timed(lambda i: cp.call("poll", {}, 10), n))
                print(f"{mode:<10} submit {figures[f'{mode}_submit']}  poll {figures[f'{mode}_poll']}  ({n} calls)", flush=True)
            close_coprocesses()
        finally:
            dev.terminate()
            dev.wait(timeout=30)
        if args.runs <= 0:
            print(json.dumps(figures, indent=2))
            return 0
        dev, env = start_dev(args.binary, workdir, 2, 1)
        os.environ.update(env)
        try:
            # 2. the 16-op run, through a binary that logs each start.
            count = workdir / "starts"
            wrapper = workdir / "taskiq-go"
            wrapper.write_text(f'#!/bin/sh\necho "$1" >> {count}\nexec {args.binary} "$@"\n')
            wrapper.chmod(0o755)
            home = workdir / "dagster_home"
            home.mkdir()
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            recon = ReconstructableJob.for_file(str(Path(__file__).resolve()), "noops16")
            with DagsterInstance.from_config(str(home)) as instance:
                results: dict[str, list[dict[str, float]]] = {"coprocess": [], "subprocess": []}
                modes = ["coprocess", "subprocess"]
                for i in range(args.runs + 1):  # the first round warms caches and is not counted
                    for mode in modes if i % 2 == 0 else reversed(modes):
                        os.environ["DAGSTER_TASKIQ_CLI"] = mode
                        count.write_text("")
                        cpu0, t0 = cpu_seconds(), time.monotonic()
                        run_config = {
                            "execution": {"config": {"binary": str(wrapper), "health_check_interval": 10}},
                            "loggers": {"console": {"config": {"log_level": "ERROR"}}},
                        }
                        result = execute_job(recon, instance=instance, run_config=run_config, raise_on_error=False)
                        close_coprocesses()  # reaped: its CPU counts now
                        wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
                        starts = count.read_text().split()
                        if not result.success:
                            raise SystemExit(f"run {result.run_id} ({mode}) failed")
                        row = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "processes": len(starts)}
                        print(f"round {i}: {mode:<10} {row} {dict((k, starts.count(k)) for k in sorted(set(starts)))}", flush=True)
                        if i > 0:
                            results[mode].append(row)
                for mode, rows in results.items():
                    figures[f"{mode}_16op"] = {
                        k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s", "processes")
                    }
        finally:
            os.environ.pop("DAGSTER_TASKIQ_CLI", None)
            dev.terminate()
            dev.wait(timeout=30)
    print(json.dumps(figures, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
