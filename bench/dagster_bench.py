"""Dagster on taskiq-go beside dagster-celery and multiprocess_executor, same jobs, same machine.

    bash bench/venv-celery.sh && make build
    .venv-bench/bin/python bench/dagster_bench.py [--runs 3] [--jobs fan16,chain10,fan202]
        [--systems taskiq-dev,taskiq-moto,celery,multiprocess] [--fan202-runs 1] [--json out.json]

Systems:
  taskiq-dev    dagster-taskiq on the embedded `taskiq-go dev` endpoint, two warm
                workers (`dagster-taskiq worker start`, fork server with this file
                preloaded)
  taskiq-moto   the same on moto_server (SQS + S3)
  celery        dagster-celery 0.29 with Celery's SQS transport on the same
                moto_server, two Celery workers (`dagster-celery worker start`),
                results in a filesystem backend
  multiprocess  Dagster's multiprocess_executor, max_concurrent = the slots

Jobs: fan16 (16 independent no-op ops) and chain10 (10 no-ops in a chain) on
2 workers x 1 slot; fan202 (one op mapping 200 dynamic no-ops, one collect:
202 steps) on 2 workers x 8 slots. Each job group starts its workers once,
warms every system up with one run, then runs the systems interleaved
(rotating the order) --runs times.

Per run: wall; ready gap (upstream STEP_SUCCESS to the step's STEP_START,
median over steps with an upstream); boot (the step's first event in the log,
its launch, to STEP_START, median); orchestrator CPU (this process and its
children, its live `taskiq-go serve` co-process included) and the processes it started (taskiq-go calls, through a counting
shim; multiprocess's step processes); worker CPU per step (every process of
the workers' trees, /proc), and for taskiq its split per kind of process
(wcpu_*_ms, see tree_split).

dagster-taskiq is imported from this tree (python/), here and in the workers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DynamicOut,
    DynamicOutput,
    execute_job,
    job,
    multiprocess_executor,
    op,
)
from dagster._core.definitions.reconstruct import ReconstructableJob

ROOT = Path(__file__).resolve().parents[1]
# dagster-taskiq from this tree (before any installed copy), here and in the workers
sys.path.insert(0, str(ROOT / "python"))

from dagster_taskiq import taskiq_executor  # noqa: E402

try:
    from dagster_celery import celery_executor
except ImportError:  # the test venv: no celery system
    celery_executor = None

THIS = str(Path(__file__).resolve())
MOTO_REGION = "us-east-1"


# -- jobs ----------------------------------------------------------------------------------


@op
def noop() -> None:
    return None


@op
def link(prev: int | None = None) -> int:
    return 1


@op(out=DynamicOut(int))
def spread():  # type: ignore[no-untyped-def]
    for i in range(200):
        yield DynamicOutput(i, mapping_key=str(i))


@op
def leaf(n: int) -> int:
    return n


@op
def gather(values: list[int]) -> int:
    return len(values)


def _fan16() -> None:
    for i in range(16):
        noop.alias(f"noop_{i:02d}")()


def _chain10() -> None:
    value = link.alias("link_00")()
    for i in range(1, 10):
        value = link.alias(f"link_{i:02d}")(value)


def _fan202() -> None:
    gather(spread().map(leaf).collect())


GRAPHS: dict[str, Callable[[], None]] = {"fan16": _fan16, "chain10": _chain10, "fan202": _fan202}
STEPS = {"fan16": 16, "chain10": 10, "fan202": 202}
SLOTS = {"fan16": 1, "chain10": 1, "fan202": 8}
EXECUTORS: dict[str, Any] = {"taskiq": taskiq_executor, "mp": multiprocess_executor}
if celery_executor is not None:
    EXECUTORS["celery"] = celery_executor
for _graph_name, _graph in GRAPHS.items():
    for _kind, _executor in EXECUTORS.items():
        globals()[f"{_graph_name}_{_kind}"] = job(name=f"{_graph_name}_{_kind}", executor_def=_executor)(_graph)


# -- processes -------------------------------------------------------------------------------


def _wait(what: str, fn: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"dagster_bench: timed out waiting for {what}")
        time.sleep(0.05)


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export ") :].split("=", 1)
            values[name] = value.strip("'\"")
    return values


class Procs:
    """Background processes, each in its own session, stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
        proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


#: The kinds of process of a worker's tree, for the split of its CPU.
KINDS = ("work", "task", "fs_master", "fs_parent", "step", "other")


def _kind(cmdline: str, parent_kind: str) -> str:
    """What a process of a worker's tree is, from its command line and its parent's kind."""
    if parent_kind in ("task", "step"):
        return parent_kind  # a supervisor's client, a step's tails
    if parent_kind == "fs_parent":
        return "step"  # a fork of the warm parent
    if "dagster_taskiq.forkserver" in cmdline:
        return "fs_parent" if parent_kind == "fs_master" else "fs_master"
    if "__taskiq_go_supervise" in cmdline:
        return "task"
    if " work " in f" {cmdline} ":
        return "work"
    return "other"


#: Whose CPU the reaped children of a process of each kind were.
_REAPED = {"work": "task", "task": "task", "fs_master": "fs_parent", "fs_parent": "step", "step": "step"}


def tree_split(root_pids: list[int]) -> dict[str, float]:
    """CPU seconds of these processes and all their descendants, live and reaped,
    per kind of process: ``work`` (taskiq-go work itself), ``task`` (the per-task
    supervisors and the step commands they start, the thin clients),
    ``fs_master`` and ``fs_parent`` (the fork server's master and warm parents,
    the fork itself included: its page-table copy is the parent's), ``step``
    (the forked step children and their tails), ``other``."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    out = dict.fromkeys(KINDS, 0.0)
    todo = [(pid, "") for pid in root_pids]
    while todo:
        pid, parent_kind = todo.pop()
        f = stats.get(pid)
        if f is None:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = ""
        kind = _kind(cmdline, parent_kind)
        out[kind] += (int(f[11]) + int(f[12])) / tick  # utime stime
        out[_REAPED.get(kind, "other")] += (int(f[13]) + int(f[14])) / tick  # cutime cstime
        todo.extend((c, kind) for c in children.get(pid, []))
    return out


def tree_cpu(root_pids: list[int]) -> float:
    """CPU seconds of these processes and all their descendants, live and reaped."""
    return sum(tree_split(root_pids).values())


# -- systems ---------------------------------------------------------------------------------


class System:
    """One way of running the jobs: its endpoint, workers and executor config."""

    name = ""
    kind = ""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_workers(self, slots: int) -> None:  # noqa: B027 - multiprocess has none
        pass

    def stop_workers(self) -> None:
        for w in self.workers:
            self.bench.procs.stop(w)
        self.workers = []

    def executor_config(self, slots: int) -> dict[str, Any]:
        raise NotImplementedError

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers]


class TaskiqSystem(System):
    kind = "taskiq"

    def __init__(self, bench: Bench, name: str, env: dict[str, str]) -> None:
        super().__init__(bench)
        self.name = name
        self.env = env

    def start_workers(self, slots: int) -> None:
        env = {**self.bench.worker_env, **self.env}
        for i in range(2):
            argv = [sys.executable, "-m", "dagster_taskiq.worker_cli", "worker", "start", "--binary", self.bench.binary]
            argv += ["-n", f"{self.name}-{i}", "-c", str(slots), "--preload", THIS, "--", "--heartbeat", "2s"]
            self.workers.append(self.bench.procs.start(f"{self.name}-worker-{i}", argv, env))
        cli = [self.bench.binary, "workers", "--json"]
        _wait(
            f"{self.name} workers",
            lambda: subprocess.run(cli, env=env, capture_output=True, text=True).stdout.count('"worker"') >= 2,
        )

    def executor_config(self, slots: int) -> dict[str, Any]:
        config = {
            "binary": self.bench.shim,
            "poll_interval": self.bench.args.poll_interval,
            "queue_url": self.env["TASKIQ_GO_QUEUE_URL"],
            "endpoint_url": self.env["AWS_ENDPOINT_URL"],
        }
        if self.env.get("TASKIQ_GO_BUCKET"):
            config["bucket"] = self.env["TASKIQ_GO_BUCKET"]
        if self.env.get("AWS_REGION"):
            config["region_name"] = self.env["AWS_REGION"]
        return config


class CelerySystem(System):
    name = kind = "celery"

    def __init__(self, bench: Bench, moto_endpoint: str) -> None:
        super().__init__(bench)
        host = moto_endpoint.split("://", 1)[1]
        results = bench.workdir / "celery-results"
        results.mkdir(exist_ok=True)
        self.config = {
            "broker": f"sqs://testing:testing@{host}",
            "backend": f"file://{results}",
            "config_source": {
                "broker_transport_options": {"region": MOTO_REGION, "is_secure": False},
                "worker_hijack_root_logger": False,
            },
        }
        self.yaml = bench.workdir / "celery.yaml"
        self.yaml.write_text(yaml.safe_dump({"execution": {"config": self.config}}))

    def start_workers(self, slots: int) -> None:
        celery_bin = str(Path(sys.executable).parent / "dagster-celery")
        for i in range(2):
            argv = [celery_bin, "worker", "start", "-A", "dagster_celery.app", "-y", str(self.yaml)]
            argv += ["-n", f"celery-{i}", "-q", "dagster", "-l", "INFO", "--", "-c", str(slots)]
            self.workers.append(self.bench.procs.start(f"celery-worker-{i}", argv, self.bench.worker_env))
        # a Celery worker is ready once it has said so on its log
        for i in range(2):
            log = self.bench.workdir / f"celery-worker-{i}.log"
            _wait("celery workers", lambda log=log: log.exists() and b"ready" in log.read_bytes(), timeout=120)

    def executor_config(self, slots: int) -> dict[str, Any]:
        return dict(self.config)


class MultiprocessSystem(System):
    name = "multiprocess"
    kind = "mp"

    def executor_config(self, slots: int) -> dict[str, Any]:
        return {"max_concurrent": 2 * slots}


# -- measuring -------------------------------------------------------------------------------


def _upstreams(job_name: str, step_keys: list[str]) -> dict[str, list[str]]:
    if job_name == "chain10":
        return {f"link_{i:02d}": [f"link_{i - 1:02d}"] for i in range(1, 10)}
    if job_name == "fan202":
        leaves = [k for k in step_keys if k.startswith("leaf[")]
        return {**{k: ["spread"] for k in leaves}, "gather": leaves}
    return {}


def timings(instance: DagsterInstance, run_id: str, job_name: str) -> dict[str, list[float]]:
    """Per step of a run, in seconds: ``gap`` (upstream STEP_SUCCESS to STEP_START),
    ``boot`` (first event to STEP_START), and the ready gap's three parts: ``react``
    (upstream STEP_SUCCESS to the step's first event, the orchestrator noticing
    and launching it), ``pickup`` (first event to the step process's first
    event, STEP_WORKER_STARTED where the system emits one: queue, worker, process
    start) and ``init`` (that event to STEP_START: the step process loading the
    run and the job)."""
    first: dict[str, float] = {}
    started: dict[str, float] = {}
    start: dict[str, float] = {}
    success: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is None or not ev.step_key:
            continue
        first.setdefault(ev.step_key, entry.timestamp)
        if ev.event_type == DagsterEventType.STEP_WORKER_STARTED:
            started.setdefault(ev.step_key, entry.timestamp)
        elif ev.event_type == DagsterEventType.STEP_START:
            start.setdefault(ev.step_key, entry.timestamp)
        elif ev.event_type == DagsterEventType.STEP_SUCCESS:
            success.setdefault(ev.step_key, entry.timestamp)
    out: dict[str, list[float]] = {"gap": [], "boot": [], "react": [], "pickup": [], "init": []}
    for k, ups in _upstreams(job_name, list(start)).items():
        if k not in start or not all(u in success for u in ups):
            continue
        ready = max(success[u] for u in ups)
        out["gap"].append(start[k] - ready)
        out["react"].append(first[k] - ready)
        if k in started:
            out["pickup"].append(started[k] - first[k])
            out["init"].append(start[k] - started[k])
    out["boot"] = [start[k] - first[k] for k in start]
    return out


def _median_ms(values: list[float]) -> float | None:
    return round(statistics.median(values) * 1000, 1) if values else None


def _self_cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _coprocess_cpu() -> float:
    """CPU seconds of this process's live `taskiq-go serve` co-processes: children that
    are reaped only at exit, so that RUSAGE_CHILDREN never counts them in a run."""
    me, total = str(os.getpid()), 0
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[1] == me and b"serve\0--stdio" in (entry / "cmdline").read_bytes():
                total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


class RunFailed(Exception):
    """A run of a job did not succeed."""


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.binary = args.binary
        self.procs = Procs(workdir)
        self.calls = workdir / "calls"
        self.shim = str(workdir / "taskiq-go")
        Path(self.shim).write_text(f'#!/bin/sh\nprintf x >> {self.calls}\nexec {self.binary} "$@"\n')
        os.chmod(self.shim, 0o755)
        self.home = workdir / "dagster_home"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = str(self.home)
        with DagsterInstance.get() as instance:  # its SQLite files, before workers race to create them
            instance.get_runs(limit=1)
        venv_bin = str(Path(sys.executable).parent)
        self.worker_env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "bench"), str(ROOT / "python"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }

    def start_dev(self) -> dict[str, str]:
        env_file = self.workdir / "dev.env"
        self.procs.start(
            "dev",
            [self.binary, "dev", "--addr", "127.0.0.1:0", "--env-file", str(env_file), "--log-level", "warn"],
            self.worker_env,
        )
        _wait("taskiq-go dev", lambda: env_file.exists() and "TASKIQ_GO_QUEUE_URL" in env_file.read_text())
        return _env_file(env_file)

    def start_moto(self) -> str:
        port = _free_port()
        self.procs.start("moto", [str(Path(sys.executable).parent / "moto_server"), "-p", str(port)], self.worker_env)
        endpoint = f"http://127.0.0.1:{port}"
        _wait("moto_server", lambda: _answers(endpoint), timeout=60)
        return endpoint

    def moto_taskiq_env(self, endpoint: str) -> dict[str, str]:
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": MOTO_REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "TASKIQ_GO_QUEUE_URL": f"{endpoint}/123456789012/taskiq-bench",
            "TASKIQ_GO_BUCKET": "taskiq-bench",
        }
        subprocess.run(
            [self.binary, "init", "--expire-days", "0"],
            env={**self.worker_env, **env},
            check=True,
            capture_output=True,
        )
        return env

    def run_once(self, system: System, job_name: str) -> dict[str, Any]:
        name = f"{job_name}_{system.kind}"
        recon = ReconstructableJob.for_file(THIS, name)
        slots = SLOTS[job_name]
        run_config = {
            "execution": {"config": system.executor_config(slots)},
            "loggers": {"console": {"config": {"log_level": "ERROR"}}},
        }
        self.calls.write_text("")
        saved = dict(os.environ)
        os.environ.update(getattr(system, "env", {}))  # the endpoint's credentials, for the executor's calls
        try:
            try:
                return self._measure(system, job_name, recon, run_config)
            except RunFailed as exc:
                if system.kind != "celery":
                    raise SystemExit(f"dagster_bench: {exc}") from None
                # Celery's file result backend writes a result in place: a poll that reads it half
                # written fails the run (kombu DecodeError). Once more, so the figures are of a run.
                for attempt in (1, 2):
                    print(f"dagster_bench: {exc}; running it again", file=sys.stderr, flush=True)
                    self.calls.write_text("")
                    try:
                        return self._measure(system, job_name, recon, run_config)
                    except RunFailed as again:
                        exc = again
                raise SystemExit(f"dagster_bench: {exc}") from None
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def _measure(self, system: System, job_name: str, recon: ReconstructableJob, run_config: dict[str, Any]) -> dict[str, Any]:
        # The bench's own scans of /proc first, so that their CPU is not counted as the orchestrator's.
        split0, co0 = tree_split(system.worker_pids()), _coprocess_cpu()
        cpu0 = _self_cpu()
        started = time.monotonic()
        with DagsterInstance.get() as instance:
            result = execute_job(recon, instance=instance, run_config=run_config, raise_on_error=False)
            wall = time.monotonic() - started
            cpu = _self_cpu() - cpu0  # before the scans below
            split1 = tree_split(system.worker_pids())
            split = {k: split1[k] - split0[k] for k in KINDS}
            wcpu = sum(split.values())
            coprocess = max(0.0, _coprocess_cpu() - co0)  # one started in this run counts whole
            cpu += coprocess
            if not result.success:
                raise RunFailed(f"{system.name} {job_name} run {result.run_id} failed")
            parts = timings(instance, result.run_id, job_name)
        procs = len(self.calls.read_text()) if system.kind == "taskiq" else (STEPS[job_name] if system.kind == "mp" else 0)
        if system.kind == "mp":
            wcpu = cpu  # the steps are the orchestrator's children
        return {
            "wall_s": round(wall, 3),
            "ready_gap_ms": _median_ms(parts["gap"]),
            "react_ms": _median_ms(parts["react"]),
            "pickup_ms": _median_ms(parts["pickup"]),
            "init_ms": _median_ms(parts["init"]),
            "boot_ms": _median_ms(parts["boot"]),
            "orchestrator_cpu_s": round(cpu, 3),
            "coprocess_cpu_s": round(coprocess, 3),
            "orchestrator_procs": procs,
            "worker_cpu_per_step_s": round(wcpu / STEPS[job_name], 3),
            **({f"wcpu_{k}_ms": round(split[k] * 1000 / STEPS[job_name], 1) for k in KINDS} if system.kind == "taskiq" else {}),
        }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(endpoint: str) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
        return True
    except Exception:  # noqa: BLE001
        return False


@contextmanager
def systems(bench: Bench, names: list[str]) -> Iterator[list[System]]:
    out: list[System] = []
    try:
        moto = bench.start_moto() if {"taskiq-moto", "celery"} & set(names) else ""
        for name in names:
            if name == "taskiq-dev":
                out.append(TaskiqSystem(bench, name, bench.start_dev()))
            elif name == "taskiq-moto":
                out.append(TaskiqSystem(bench, name, bench.moto_taskiq_env(moto)))
            elif name == "celery":
                if celery_executor is None:
                    raise SystemExit("dagster_bench: dagster-celery is not installed (bash bench/venv-celery.sh)")
                out.append(CelerySystem(bench, moto))
            elif name == "multiprocess":
                out.append(MultiprocessSystem(bench))
            else:
                raise SystemExit(f"dagster_bench: unknown system {name}")
        yield out
    finally:
        bench.procs.stop_all()


def summarize(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for job_name, by_system in results.items():
        summary[job_name] = {}
        for system, runs in by_system.items():
            row: dict[str, Any] = {}
            for key in runs[0]:
                values = [r[key] for r in runs if r[key] is not None]
                row[key] = round(statistics.median(values), 3) if values else None
            summary[job_name][system] = row
        celery = summary[job_name].get("celery")
        for row in summary[job_name].values():
            if celery and celery["wall_s"]:
                row["wall_vs_celery"] = round(row["wall_s"] / celery["wall_s"], 2)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--poll-interval", type=float, default=0.1, help="the taskiq executor's poll_interval (its default: 0.1)"
    )
    parser.add_argument("--fan202-runs", type=int, help="--runs for fan202 alone (it takes minutes a run)")
    parser.add_argument("--jobs", default="fan16,chain10,fan202")
    parser.add_argument("--systems", default="taskiq-dev,taskiq-moto,celery,multiprocess")
    parser.add_argument("--binary", default=os.environ.get("TASKIQ_GO_BIN") or str(ROOT / "bin" / "taskiq-go"))
    parser.add_argument("--json", dest="json_out", help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the workers are stopped
    jobs = args.jobs.split(",")
    names = args.systems.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="dagster-bench-"))
    bench = Bench(args, workdir)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        with ExitStack() as stack:
            all_systems = stack.enter_context(systems(bench, names))
            for slots in sorted({SLOTS[j] for j in jobs}):
                group = [j for j in jobs if SLOTS[j] == slots]
                for system in all_systems:
                    system.start_workers(slots)
                try:
                    for job_name in group:
                        results[job_name] = {s.name: [] for s in all_systems}
                        for system in all_systems:  # warm-up: caches, sqlite files, Celery's queues
                            bench.run_once(system, job_name)
                        runs = args.fan202_runs if job_name == "fan202" and args.fan202_runs is not None else args.runs
                        for i in range(runs):
                            k = i % len(all_systems)
                            for system in all_systems[k:] + all_systems[:k]:
                                figures = bench.run_once(system, job_name)
                                results[job_name][system.name].append(figures)
                                print(f"{job_name:<8} run {i + 1} {system.name:<13} {json.dumps(figures)}", flush=True)
                finally:
                    for system in all_systems:
                        system.stop_workers()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work directory: {workdir}", file=sys.stderr)
    summary = summarize(results)
    print("\nmedians")
    cols = ["wall_s", "wall_vs_celery", "ready_gap_ms", "react_ms", "pickup_ms", "init_ms", "boot_ms"]
    cols += ["orchestrator_cpu_s", "orchestrator_procs", "worker_cpu_per_step_s"]
    cols += [f"wcpu_{k}_ms" for k in KINDS]
    print(f"{'job':<8} {'system':<13} " + " ".join(f"{c:>14}" for c in cols))
    for job_name, rows in summary.items():
        for system, row in rows.items():
            print(f"{job_name:<8} {system:<13} " + " ".join(f"{str(row.get(c)):>14}" for c in cols))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"runs": results, "medians": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
