"""taskiq-go beside taskiq-aio-sqs and Celery, on one moto_server, through one counting proxy.

    bash bench/venv-peers.sh && make build
    nice .venv-peers/bin/python bench/peers.py [--tasks 2000] [--reps 3] [--probes 20]
        [--systems taskiq-go,taskiq-aio-sqs,celery] [--poll-group] [--json out.json]
        [--timeline] [--worker-log-level info] [--profile-moto DIR]

Systems (each with its own queue and bucket on the same moto_server, one
worker at concurrency 16, no-op tasks):

  taskiq-go       `taskiq-go submit --batch` of N `true`, one
                  `taskiq-go work --concurrency 16`, `poll --wait` of all ids
                  (`--poll-group`: the tasks in one group, `poll --wait --group`)
  taskiq-aio-sqs  taskiq-aio-sqs 2.1.1 with its S3 result backend: N `noop.kiq()`
                  (sent in batches of ten), one `taskiq worker --workers 1
                  --max-async-tasks 16`, `wait_result()` of each
  celery          Celery 5.7, SQS transport, S3 result backend: N
                  `noop.apply_async()`, one `celery worker --concurrency 16`
                  (prefork), `AsyncResult.get()` of each

Per system and repetition (the order rotates each repetition):

  start     the worker, then one probe task: once it has run, the worker is idle
            and long-polling
  latency   PROBES single tasks, one at a time, each timed from just before its
            submit to the time the task's own first line writes (a file);
            taskiq-go submits them through one `serve --stdio` co-process (as
            the Dagster integration does; the peers call in-process), and as
            many again, alternating, with a `taskiq-go submit` process each
  tasks/s   N tasks from the first submit to the last result seen by the client
  requests  every AWS request of the throughput phase (client and worker), by
            service and operation, through bench/requests's counting proxy, per task
  RSS       the worker's whole process tree (its children included), sampled
            from /proc every 100 ms while it lives; the peak
  depth     the messages moto holds in the queue the burst's tasks wait in,
            every 2 s (moto walks all of them on each send and receive)

With --profile-moto DIR, py-spy samples moto_server during each burst into
DIR/SYSTEM-REP.txt; bench/motoprofile.py says where its CPU went.

Results are waited for with each system's default polling interval (taskiq-go
0.5 s, taskiq 0.2 s, Celery 0.5 s), one task after another in submit order.
moto_server, the proxy and the workers are started here on free loopback ports
and stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import re
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
ACCOUNT = "123456789012"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
PAGE = os.sysconf("SC_PAGE_SIZE")
TASK_ID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, ok: Callable[[], bool], timeout: float, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise SystemExit(f"peers: timed out waiting for {what}")
        time.sleep(step)


class Procs:
    """Background processes, each in its own session, stopped (whole group) on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of its group is left
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


class RSSSampler:
    """Peak resident memory of a process and all its descendants, from /proc."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every, self.peak, self.root_peak = pid, every, 0, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _tree_rss(self) -> int:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        total, todo = 0, [self.pid]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/statm") as f:
                    rss = int(f.read().split()[1]) * PAGE
                total += rss
                if pid == self.pid:
                    self.root_peak = max(self.root_peak, rss)
            except (OSError, IndexError, ValueError):
                pass
            todo.extend(children.get(pid, []))
        return total

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self.stopped.wait(self.every)

    def stop(self) -> int:
        self.stopped.set()
        self.thread.join()
        return self.peak


class DepthSampler:
    """The messages moto holds in a system's backlog queue (visible, in flight
    and delayed: what moto walks on each send and receive), every two seconds
    while a burst runs, asked of moto directly (not counted). One
    GetQueueAttributes of All costs moto one walk of the queue."""

    def __init__(self, sqs: Any, url: str, every: float = 2.0) -> None:
        self.sqs, self.url, self.every = sqs, url, every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                a = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])["Attributes"]
            except Exception:  # a sample lost is no reason to stop the bench
                continue
            self.samples.append(sum(int(a.get(k, 0)) for k in (
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed")))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._t.join(timeout=30)
        if not self.samples:
            return {"depth_mean": 0.0, "depth_max": 0.0}
        return {"depth_mean": statistics.mean(self.samples), "depth_max": float(max(self.samples))}


class Bench:
    """One moto_server, one counting proxy in front of it, and the processes of a run."""

    def __init__(self, workdir: Path, taskiq_go: Path, poll_group: bool = False, poll_interval: str = "",
                 timeline: bool = False, worker_log_level: str = "warn") -> None:
        self.workdir = workdir
        self.worker_log_level = worker_log_level
        self.taskiq_go_before: Path | None = None
        self.profile_dir: Path | None = None
        # every phase's start and end (unix seconds), for a timeline beside requests.log
        self.marks: list[tuple[float, str]] = []
        self.taskiq_go = taskiq_go
        self.poll_group = poll_group
        self.poll_interval = poll_interval
        self.procs = Procs(workdir)
        port = free_port()
        self.moto = f"http://127.0.0.1:{port}"
        moto_bin = shutil.which("moto_server", path=str(VENV_BIN)) or "moto_server"
        self.moto_proc = self.procs.start("moto", [moto_bin, "-H", "127.0.0.1", "-p", str(port)],
                                          {**os.environ, **AWS_ENV})
        wait_for("moto_server", lambda: self._answers(self.moto + "/moto-api/"), 60)
        proxy_bin = workdir / "countproxy"
        subprocess.run(["go", "build", "-o", str(proxy_bin), "./bench/requests"], cwd=ROOT, check=True)
        env_file = workdir / "proxy.env"
        log = ["-log", str(workdir / "requests.log")] if timeline else []
        self.procs.start("proxy", [str(proxy_bin), "-target", self.moto, "-env-file", str(env_file), *log],
                         dict(os.environ))
        wait_for("the counting proxy", lambda: env_file.exists() and env_file.stat().st_size > 0, 30)
        # its first line: export AWS_ENDPOINT_URL=http://ADDR (the _SQS and _S3 ones follow)
        self.endpoint = env_file.read_text().splitlines()[0].split("=", 1)[1]
        import boto3  # the peers' venv has it

        self.sqs = boto3.client("sqs", endpoint_url=self.moto, region_name="us-east-1")
        self.s3 = boto3.client("s3", endpoint_url=self.moto, region_name="us-east-1")

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                r.read(1)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def moto_cpu(self) -> float:
        """CPU seconds moto_server has used so far (user and system)."""
        with open(f"/proc/{self.moto_proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def profile_moto(self, name: str) -> subprocess.Popen[bytes] | None:
        """With --profile-moto, py-spy sampling moto_server into DIR/NAME.txt
        (collapsed stacks, bench/motoprofile.py reads them) until it is sent SIGINT."""
        if self.profile_dir is None:
            return None
        spy = shutil.which("py-spy", path=str(VENV_BIN)) or "py-spy"
        out = self.profile_dir / f"{name}.txt"
        proc = subprocess.Popen([spy, "record", "--pid", str(self.moto_proc.pid), "--nonblocking", "--gil", "--rate", "100",
                                 "--format", "raw", "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=open(self.workdir / f"py-spy-{name}.log", "wb"))
        time.sleep(0.5)  # attached before the burst begins
        return proc

    def mark(self, what: str) -> None:
        self.marks.append((time.time(), what))

    def reset_counts(self) -> None:
        urllib.request.urlopen(self.endpoint + "/__counts/reset", timeout=10).read()

    def counts(self) -> dict[str, int]:
        """The proxy's counts since the last reset, by "svc operation"."""
        text = urllib.request.urlopen(self.endpoint + "/__counts/report", timeout=10).read().decode()
        out: dict[str, int] = {}
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3 and parts[-1].isdigit() and parts[1] != "(all)":
                # The peers' keys carry their task ids: count them by kind.
                op = TASK_ID.sub("*", f"{parts[0]} {' '.join(parts[1:-1])}")
                out[op] = out.get(op, 0) + int(parts[-1])
        return out

    def queue_and_bucket(self, prefix: str) -> tuple[str, str]:
        """A new queue and bucket for a peer, made directly on moto (not counted)."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.sqs.create_queue(QueueName=name)
        self.s3.create_bucket(Bucket=name)
        return name, name


def wait_stamp(path: Path, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text().strip()
            if text:
                return float(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    raise SystemExit(f"peers: probe {path} never ran")


class System:
    """A system under test: a worker to start and stop, probes and a burst to run."""

    name = ""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.worker: subprocess.Popen[bytes] | None = None

    def run(self, rep: int, tasks: int, probes: int) -> dict[str, Any]:
        b = self.bench
        self.rep = rep
        probe_dir = b.workdir / f"{self.name}-{rep}-probes"
        probe_dir.mkdir()
        self.setup(rep)
        self.worker = self.start_worker(rep)
        rss = RSSSampler(self.worker.pid)
        try:
            out = self.drive(tasks, probes, probe_dir)
        finally:
            out_rss = rss.stop()
            b.procs.stop(self.worker)
        out["rss_mib"] = out_rss / 2**20
        out["root_rss_mib"] = rss.root_peak / 2**20
        return out

    def measure(self, probe: Callable[[Path], float], burst: Callable[[], None], tasks: int, probes: int,
                probe_dir: Path, alt_probe: Callable[[Path], float] | None = None) -> dict[str, Any]:
        """The same sequence for every system, with its own submit and wait.

        alt_probe, when given, is a second way to submit a probe (taskiq-go: a
        process per submit beside the co-process); its probes alternate with
        the others, so that both see the same load.
        """
        self.submit_s: list[float] = []
        self.alt_submit_s: list[float] = []
        probe(probe_dir / "warmup")  # the worker is up and has run a task
        lat, alt = [], []
        for i in range(probes):
            time.sleep(0.3)  # idle, back in its long poll
            lat.append(probe(probe_dir / f"p{i}"))
            if alt_probe is not None:
                time.sleep(0.3)
                alt.append(alt_probe(probe_dir / f"a{i}"))
        self.bench.reset_counts()
        spy = self.bench.profile_moto(f"{self.name}-{self.rep}")
        depth = DepthSampler(self.bench.sqs, self.backlog_url())
        cpu0 = self.bench.moto_cpu()
        t0 = time.time()
        self.bench.mark(f"{self.name} burst begins")
        burst()
        secs = time.time() - t0
        self.bench.mark(f"{self.name} burst ends")
        depths = depth.stop()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        moto_cpu = self.bench.moto_cpu() - cpu0
        counts = self.bench.counts()
        out = {
            "tasks_per_s": tasks / secs,
            "secs": secs,
            "latency_ms": statistics.median(lat) * 1000,
            "latency_all_ms": [round(x * 1000, 1) for x in lat],
            # of which the submit call itself (a co-process request for taskiq-go, a call for the peers)
            "submit_ms": statistics.median(self.submit_s[1:]) * 1000,
            "requests_per_task": sum(counts.values()) / tasks,
            # what the burst cost the emulator: the bound when it is the bottleneck
            "moto_cpu_ms_per_task": moto_cpu * 1000 / tasks,
            "moto_cpu_share": moto_cpu / secs,
            **depths,
            "requests": counts,
        }
        if alt:
            out["alt_latency_ms"] = statistics.median(alt) * 1000
            out["alt_latency_all_ms"] = [round(x * 1000, 1) for x in alt]
            out["alt_submit_ms"] = statistics.median(self.alt_submit_s) * 1000
        return out

    def setup(self, rep: int) -> None:
        raise NotImplementedError

    def backlog_url(self) -> str:
        """The queue the burst's tasks wait in."""
        return f"{self.bench.moto}/{ACCOUNT}/{self.queue_name}"

    def start_worker(self, rep: int) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def drive(self, tasks: int, probes: int, probe_dir: Path) -> dict[str, Any]:
        raise NotImplementedError


class TaskiqGo(System):
    name = "taskiq-go"

    def binary(self) -> Path:
        return self.bench.taskiq_go

    def setup(self, rep: int) -> None:
        b = self.bench
        name = f"tg-{uuid.uuid4().hex[:10]}"
        self.queue_name = name + "-p0"  # a batch at priority 0 goes straight into its level
        self.env = {
            **os.environ,
            **AWS_ENV,
            "AWS_ENDPOINT_URL": b.endpoint,
            "TASKIQ_GO_QUEUE_URL": f"{b.moto}/{ACCOUNT}/{name}",
            "TASKIQ_GO_BUCKET": name,
        }
        init_env = {**self.env, "AWS_ENDPOINT_URL": b.moto}
        subprocess.run([str(self.binary()), "init", "--expire-days", "0"], env=init_env, check=True,
                       stdout=subprocess.DEVNULL)

    def start_worker(self, rep: int) -> subprocess.Popen[bytes]:
        argv = [str(self.binary()), "work", "--concurrency", "16", "--log-level", self.bench.worker_log_level]
        return self.bench.procs.start(f"{self.name}-worker-{rep}", argv, self.env)

    def drive(self, tasks: int, probes: int, probe_dir: Path) -> dict[str, Any]:
        bin_ = str(self.binary())

        def argv(path: Path) -> list[str]:
            return ["bash", "-c", f"echo $EPOCHREALTIME > {path}"]

        def proc_probe(path: Path) -> float:
            # A process per submit, as a shell script calls it.
            t0 = time.time()
            subprocess.run([bin_, "submit", "--", *argv(path)], env=self.env, check=True, stdout=subprocess.DEVNULL)
            self.alt_submit_s.append(time.time() - t0)
            return wait_stamp(path) - t0

        # One long-lived `serve --stdio`, as the Dagster integration calls it:
        # the counterpart of the peers' in-process clients on a warm connection.
        serve = subprocess.Popen([bin_, "serve", "--stdio"], env=self.env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert serve.stdin is not None and serve.stdout is not None
        n = 0

        def coproc_probe(path: Path) -> float:
            nonlocal n
            n += 1
            line = json.dumps({"id": n, "op": "submit", "args": {"spec": {"argv": argv(path)}}}) + "\n"
            t0 = time.time()
            serve.stdin.write(line.encode())
            serve.stdin.flush()
            answer = json.loads(serve.stdout.readline())
            self.submit_s.append(time.time() - t0)
            if answer.get("id") != n or "error" in answer:
                raise SystemExit(f"peers: serve --stdio answered {answer}")
            return wait_stamp(path) - t0

        group = f"g-{uuid.uuid4().hex[:8]}"
        # The tasks are in a group only with --poll-group, which waits on
        # the group instead of naming every id: a group costs two PUTs a
        # task (its index key at submit, its end key at the end), which
        # the peers, with no groups, do not pay. Their ids are generated by
        # submit, as the peers' are (an id given to submit costs a task.json
        # PUT, the record that refuses a different task under the same id).
        extra = {"group": group} if self.bench.poll_group else {}
        batch = "".join(json.dumps({"argv": ["true"], **extra}) + "\n" for _ in range(tasks))

        def burst() -> None:
            sub = subprocess.run([bin_, "submit", "--batch", "-"], input=batch.encode(), env=self.env, check=True,
                                 stdout=subprocess.PIPE)
            self.bench.mark(f"{self.name} submit ends")
            ids = sub.stdout.decode().split()
            if len(ids) != tasks:
                raise SystemExit(f"peers: submit --batch printed {len(ids)} ids for {tasks} tasks")
            waiting = ["--group", group] if self.bench.poll_group else ids
            if self.bench.poll_interval:
                waiting = ["--interval", self.bench.poll_interval, *waiting]
            subprocess.run([bin_, "poll", "--wait", "--timeout", "900s", *waiting], env=self.env, check=True,
                           stdout=subprocess.DEVNULL)

        try:
            return self.measure(coproc_probe, burst, tasks, probes, probe_dir, alt_probe=proc_probe)
        finally:
            serve.stdin.close()
            serve.wait(timeout=30)


class TaskiqGoBefore(TaskiqGo):
    """taskiq-go built from another tree (--bin-before), for a before/after in the same run."""

    name = "taskiq-go-before"

    def binary(self) -> Path:
        if self.bench.taskiq_go_before is None:
            raise SystemExit("peers: taskiq-go-before needs --bin-before")
        return self.bench.taskiq_go_before


def peer_env(bench: Bench, name: str) -> dict[str, str]:
    return {
        **os.environ,
        **AWS_ENV,
        "PEERS_ENDPOINT": bench.endpoint,
        "PEERS_QUEUE": name,
        "PEERS_BUCKET": name,
        "PYTHONPATH": str(BENCH),
    }


def load_app(module: str, env: dict[str, str]) -> ModuleType:
    """The app module, built anew for this repetition's queue and bucket."""
    for k in ("PEERS_ENDPOINT", "PEERS_QUEUE", "PEERS_BUCKET"):
        os.environ[k] = env[k]
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    mod = importlib.import_module(module)
    return importlib.reload(mod)


class TaskiqAioSqs(System):
    name = "taskiq-aio-sqs"

    def setup(self, rep: int) -> None:
        name, _ = self.bench.queue_and_bucket("tq")
        self.queue_name = name
        self.env = peer_env(self.bench, name)

    def start_worker(self, rep: int) -> subprocess.Popen[bytes]:
        argv = [str(VENV_BIN / "taskiq"), "worker", "--workers", "1", "--max-async-tasks", "16",
                "--log-level", "WARNING", "peers_apps.taskiq_app:broker"]
        return self.bench.procs.start(f"taskiq-aio-sqs-worker-{rep}", argv, self.env, cwd=BENCH)

    def drive(self, tasks: int, probes: int, probe_dir: Path) -> dict[str, Any]:
        app = load_app("peers_apps.taskiq_app", self.env)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(app.broker.startup())
        try:
            async def aprobe(path: Path) -> float:
                t0 = time.time()
                await app.stamp.kicker().with_labels(skip_batching=True).kiq(str(path))
                self.submit_s.append(time.time() - t0)
                return wait_stamp(path, 120) - t0

            async def aburst() -> None:
                sent = [await app.noop.kiq() for _ in range(tasks)]
                for t in sent:
                    await t.wait_result(timeout=900)

            return self.measure(lambda p: loop.run_until_complete(aprobe(p)),
                                lambda: loop.run_until_complete(aburst()), tasks, probes, probe_dir)
        finally:
            loop.run_until_complete(app.broker.shutdown())
            loop.close()


class CelerySQS(System):
    name = "celery"

    def setup(self, rep: int) -> None:
        name, _ = self.bench.queue_and_bucket("cq")
        self.queue_name = name
        self.env = peer_env(self.bench, name)

    def start_worker(self, rep: int) -> subprocess.Popen[bytes]:
        argv = [str(VENV_BIN / "celery"), "-A", "peers_apps.celery_app", "worker", "--concurrency", "16",
                "--pool", "prefork", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-n", f"peers-{uuid.uuid4().hex[:6]}@%h"]
        return self.bench.procs.start(f"celery-worker-{self.name}-{time.time_ns()}", argv, self.env, cwd=BENCH)

    def drive(self, tasks: int, probes: int, probe_dir: Path) -> dict[str, Any]:
        app = load_app("peers_apps.celery_app", self.env)

        def probe(path: Path) -> float:
            t0 = time.time()
            app.stamp.apply_async((str(path),))
            self.submit_s.append(time.time() - t0)
            return wait_stamp(path, 120) - t0

        def burst() -> None:
            sent = [app.noop.apply_async() for _ in range(tasks)]
            for r in sent:
                r.get(timeout=900)

        try:
            return self.measure(probe, burst, tasks, probes, probe_dir)
        finally:
            app.app.close()


SYSTEMS: dict[str, type[System]] = {"taskiq-go": TaskiqGo, "taskiq-go-before": TaskiqGoBefore,
                                    "taskiq-aio-sqs": TaskiqAioSqs, "celery": CelerySQS}


def table(results: dict[str, list[dict[str, Any]]], tasks: int, reps: int) -> str:
    med = {
        name: {k: statistics.median(r[k] for r in runs) for k in ("tasks_per_s", "latency_ms", "requests_per_task",
                                                                   "rss_mib", "moto_cpu_ms_per_task")}
        for name, runs in results.items() if runs
    }
    lines = [f"{tasks} no-op tasks, one worker at concurrency 16, {reps} repetition(s), median over repetitions",
             "", "| | tasks/s | submit-to-start (ms, median of probes) | requests/task | worker peak RSS (MiB) "
             "| moto_server CPU ms/task |",
             "|---|---|---|---|---|---|"]
    for name, m in med.items():
        lines.append(f"| {name} | {m['tasks_per_s']:.0f} | {m['latency_ms']:.0f} | {m['requests_per_task']:.1f} "
                     f"| {m['rss_mib']:.0f} | {m['moto_cpu_ms_per_task']:.0f} |")
    go = med.get("taskiq-go")
    if go:
        for name, m in med.items():
            if name == "taskiq-go":
                continue
            lines.append(f"| taskiq-go / {name} | {go['tasks_per_s'] / m['tasks_per_s']:.2f}x "
                         f"| {go['latency_ms'] / m['latency_ms']:.2f}x | "
                         f"{go['requests_per_task'] / m['requests_per_task']:.2f}x | "
                         f"{go['rss_mib'] / m['rss_mib']:.2f}x | "
                         f"{go['moto_cpu_ms_per_task'] / m['moto_cpu_ms_per_task']:.2f}x |")
    lines.append("")
    for name, runs in results.items():
        alt = [r for r in runs if "alt_latency_ms" in r]
        if alt:
            lines.append(f"{name}: submit-to-start {statistics.median(r['latency_ms'] for r in alt):.0f} ms through "
                         f"`serve --stdio` (submit {statistics.median(r['submit_ms'] for r in alt):.0f} ms), "
                         f"{statistics.median(r['alt_latency_ms'] for r in alt):.0f} ms with a process per submit "
                         f"(submit {statistics.median(r['alt_submit_ms'] for r in alt):.0f} ms)")
    for name, runs in results.items():
        for i, r in enumerate(runs):
            top = sorted(r["requests"].items(), key=lambda kv: -kv[1])
            ops = ", ".join(f"{k} {v / tasks:.2f}" for k, v in top[:8])
            lines.append(f"{name} rep {i}: {r['tasks_per_s']:.0f}/s in {r['secs']:.1f}s; backlog depth mean "
                         f"{r.get('depth_mean', 0):.0f}, max {r.get('depth_max', 0):.0f}; moto_server busy "
                         f"{r['moto_cpu_share']:.0%} of it; submit call "
                         f"{r['submit_ms']:.0f} ms; probes ms {r['latency_all_ms']}; worker process alone "
                         f"{r['root_rss_mib']:.0f} MiB; per task: {ops}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--probes", type=int, default=20)
    p.add_argument("--systems", default="taskiq-go,taskiq-aio-sqs,celery")
    p.add_argument("--bin", default=str(ROOT / "bin" / "taskiq-go"))
    p.add_argument("--bin-before", help="another taskiq-go binary, run as the system taskiq-go-before")
    p.add_argument("--poll-group", action="store_true",
                   help="taskiq-go waits with `poll --wait --group` instead of `poll --wait ID...`")
    p.add_argument("--poll-interval", default="", help="taskiq-go's `poll --wait --interval` (default: its own)")
    p.add_argument("--timeline", action="store_true",
                   help="log every request (WORKDIR/requests.log) and each phase (marks.txt); keeps the work directory")
    p.add_argument("--worker-log-level", default="warn", help="taskiq-go's worker --log-level (its log is kept with --keep)")
    p.add_argument("--profile-moto", metavar="DIR",
                   help="sample moto_server with py-spy during each burst into DIR/SYSTEM-REP.txt "
                        "(py-spy on PATH or in this venv; summarise with bench/motoprofile.py)")
    p.add_argument("--json", help="write every measurement to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args()
    names = args.systems.split(",")
    for n in names:
        if n not in SYSTEMS:
            raise SystemExit(f"peers: unknown system {n!r} (have {', '.join(SYSTEMS)})")
    os.environ.update(AWS_ENV)
    workdir = Path(tempfile.mkdtemp(prefix="peers-"))
    print(f"peers: work directory {workdir}", file=sys.stderr)
    if args.timeline:
        args.keep = True
    bench = Bench(workdir, Path(args.bin), args.poll_group, args.poll_interval, args.timeline, args.worker_log_level)
    if args.bin_before:
        bench.taskiq_go_before = Path(args.bin_before)
    if args.profile_moto:
        bench.profile_dir = Path(args.profile_moto).resolve()
        bench.profile_dir.mkdir(parents=True, exist_ok=True)
    def stop(*_: object) -> None:
        raise KeyboardInterrupt  # so that the finally below stops every process

    signal.signal(signal.SIGTERM, stop)
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        systems = [SYSTEMS[n](bench) for n in names]
        for rep in range(args.reps):
            order = systems[rep % len(systems):] + systems[:rep % len(systems)]
            for s in order:
                print(f"peers: rep {rep}: {s.name}", file=sys.stderr)
                r = s.run(rep, args.tasks, args.probes)
                print(f"peers: rep {rep}: {s.name}: {r['tasks_per_s']:.0f} tasks/s, {r['latency_ms']:.0f} ms, "
                      f"{r['requests_per_task']:.1f} req/task, {r['rss_mib']:.0f} MiB", file=sys.stderr)
                results[s.name].append(r)
    finally:
        bench.procs.stop_all()
        if args.timeline:
            (workdir / "marks.txt").write_text("".join(f"{t:.3f} {what}\n" for t, what in bench.marks))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(results, args.tasks, args.reps))


if __name__ == "__main__":
    main()
