"""Workers that share nothing but the services: a real PostgreSQL (the Dagster instance,
dagster-postgres), the dev endpoint's SQS and S3 (tasks, step outputs through dagster-aws's
S3 pickle IO manager, compute logs through its S3 compute log manager). The orchestrating
process and two workers each have their own working directory and their own DAGSTER_HOME
holding only a dagster.yaml; all run from the installed wheel with no Go and no source tree
on PATH. Proves: a fan-out job passes data between steps on different workers; a run launched
through TaskiqRunLauncher executes entirely on a worker; such a run can be terminated mid-step."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg2
import pytest
import yaml
from dagster_taskiq.worker_cli import STEP_PASS_ENV
from dagster import DagsterInstance, DagsterRunStatus

from dagster_taskiq import TASK_ID_TAG
from harness import Proc, parse_env_file, pid_alive, read_if_exists, wait_for
from wheel_env import WheelVenv, in_dir, wheel_venv

IO_BUCKET = "dagster-io"

#: The first test also builds the wheel and installs a virtualenv (minutes on a busy machine).
pytestmark = pytest.mark.timeout(1800)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql): initdb not found", pytrace=False)
    return versions[-1].parent


@dataclass
class Postgres:
    """A PostgreSQL server as a plain process on a loopback port, in a temporary directory."""

    proc: subprocess.Popen[bytes]
    port: int
    root: Path
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> Postgres:
    bindir = pg_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="taskiq-pg-"))
    # PostgreSQL refuses to run as root: run it as the postgres (or nobody) user.
    user = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                user = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        assert user is not None, "no postgres or nobody user to run PostgreSQL as"
        os.chown(root, user.pw_uid, user.pw_gid)
    as_user: dict[str, Any] = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    data = root / "data"
    log = root / "postgres.log"
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, cwd=root, timeout=300, **as_user,
    )
    port = free_port()
    log_file = open(log, "wb")
    proc = subprocess.Popen(
        [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root, **as_user,
    )
    log_file.close()
    pg = Postgres(proc, port, root, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"postgres exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres", connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    try:
        wait_for("postgres to accept connections", ready, timeout=60, interval=0.2)
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
    except BaseException:
        pg.stop()
        raise
    return pg


def instance_yaml(pg: Postgres, env: dict[str, str]) -> dict[str, Any]:
    """What every DAGSTER_HOME here holds: the same services, nothing local."""
    return {
        "telemetry": {"enabled": False},
        "storage": {
            "postgres": {
                "postgres_db": {
                    "hostname": "127.0.0.1", "port": pg.port, "username": "dagster", "password": "trust",
                    "db_name": "dagster",
                    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; dagster-postgres brings psycopg2.
                    "scheme": "postgresql+psycopg2",
                }
            }
        },
        "compute_logs": {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": {"bucket": IO_BUCKET, "prefix": "compute-logs", "endpoint_url": env["AWS_ENDPOINT_URL"],
                       "region": "us-east-1", "skip_empty_files": True},
        },
        "run_launcher": {
            "module": "dagster_taskiq",
            "class": "TaskiqRunLauncher",
            "config": {"queue_url": env["TASKIQ_GO_QUEUE_URL"], "endpoint_url": env["AWS_ENDPOINT_URL"]},
        },
        # Resuming is off by default (0 attempts): the lost run is resumed, not failed.
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 1, "max_resume_run_attempts": 3},
    }


@dataclass
class Cluster:
    installed: WheelVenv
    pg: Postgres
    dev_env: dict[str, str]
    orchestrator_home: Path
    workers: dict[str, Proc]
    worker_dirs: dict[str, Path]
    instance: DagsterInstance

    def orchestrator_env(self) -> dict[str, str]:
        return self.installed.env(**self.dev_env, DAGSTER_HOME=str(self.orchestrator_home))

    def driver(self, *args: str, timeout: float = 600) -> dict[str, Any]:
        out = subprocess.run(
            [self.installed.python, str(self.installed.user_code / "deployed_driver.py"), *args],
            env=self.orchestrator_env(), cwd=self.orchestrator_home.parent, capture_output=True, text=True,
            timeout=timeout,
        )
        assert out.returncode == 0, f"driver {args[0]} failed:\n{out.stderr[-6000:]}\n{self.logs()}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    def driver_async(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as f:
            return subprocess.Popen(
                [self.installed.python, str(self.installed.user_code / "deployed_driver.py"), *args],
                env=self.orchestrator_env(), cwd=self.orchestrator_home.parent, stdout=f, stderr=subprocess.STDOUT,
            )

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{p.log()[-3000:]}" for name, p in self.workers.items())

    def job_file(self) -> str:
        return str(self.installed.user_code / "deployed_jobs.py")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    installed = wheel_venv(tmp_path_factory.getbasetemp() / "wheel")
    root = tmp_path_factory.mktemp("shared-nothing")
    pg = start_postgres()
    procs: list[Proc] = []
    saved = dict(os.environ)
    try:
        env_file = root / "dev.env"
        dev = Proc("dev", [installed.taskiq_go, "dev", "--addr", "127.0.0.1:0", "--env-file", str(env_file)],
                   installed.env(), root)
        procs.append(dev)
        text = wait_for("taskiq-go dev to write its env file",
                        lambda: (t := read_if_exists(env_file)) and "TASKIQ_GO_QUEUE_URL" in t and t, 60)
        dev_env = parse_env_file(str(text))
        dev_env.setdefault("AWS_ACCESS_KEY_ID", "test")
        dev_env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        dev_env.setdefault("AWS_REGION", "us-east-1")
        s3 = boto3.client("s3", endpoint_url=dev_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id=dev_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=dev_env["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket=IO_BUCKET)
        settings = yaml.safe_dump(instance_yaml(pg, dev_env))

        homes: dict[str, Path] = {}
        for name in ("orchestrator", "worker-a", "worker-b"):
            home = root / name / "dagster_home"
            home.mkdir(parents=True)
            (home / "dagster.yaml").write_text(settings)
            homes[name] = home
        workers: dict[str, Proc] = {}
        worker_dirs: dict[str, Path] = {}
        for wid in ("worker-a", "worker-b"):
            workdir = homes[wid].parent
            env = installed.env(**dev_env, DAGSTER_HOME=str(homes[wid]))
            argv = [installed.taskiq_go, "work", "--worker-id", wid, "--concurrency", "1", "--heartbeat", "1s"]
            argv += [arg for name in STEP_PASS_ENV for arg in ("--pass-env", name)]
            workers[wid] = Proc(wid, in_dir(workdir, argv), env, workdir)
            worker_dirs[wid] = workdir
            procs.append(workers[wid])
        # The test reads the same instance (Postgres) to watch runs.
        os.environ.update(dev_env)
        os.environ["DAGSTER_HOME"] = str(homes["orchestrator"])
        with DagsterInstance.from_config(str(homes["orchestrator"])) as instance:
            yield Cluster(installed, pg, dev_env, homes["orchestrator"], workers, worker_dirs, instance)
    finally:
        for proc in reversed(procs):
            proc.stop()
        pg.stop()
        os.environ.clear()
        os.environ.update(saved)


def wait_status(instance: DagsterInstance, run_id: str, statuses: set[DagsterRunStatus], timeout: float) -> Any:
    def done() -> Any:
        run = instance.get_run_by_id(run_id)
        return run if run is not None and run.status in statuses else None

    return wait_for(f"run {run_id} to reach {sorted(s.value for s in statuses)}", done, timeout, 0.25)


def test_every_home_holds_only_its_dagster_yaml(cluster: Cluster) -> None:
    for home in [cluster.orchestrator_home, *[d / "dagster_home" for d in cluster.worker_dirs.values()]]:
        assert sorted(p.name for p in home.iterdir()) == ["dagster.yaml"], home
    assert "postgres" in (cluster.orchestrator_home / "dagster.yaml").read_text()


def test_fan_out_passes_data_between_steps_on_different_workers(cluster: Cluster, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = {
        "execution": {"config": {"health_check_interval": 2}},
        "ops": {"square": {"config": {"gate": str(gate)}}},
    }
    proc = cluster.driver_async("execute", cluster.job_file(), "fan_out_s3", json.dumps(config), log=tmp_path / "d.log")
    try:
        # Each worker runs one task at a time: two squares running at once run on both workers.
        wait_for("two square steps to run at once",
                 lambda: len(list(tmp_path.glob("gate.started-*"))) >= 2 or (proc.poll() is not None and
                                                                            pytest.fail((tmp_path / "d.log").read_text()[-5000:])),
                 timeout=300, interval=0.2)
        gate.write_text("go")
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "d.log").read_text()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "SUCCESS", out[-6000:]
    assert result["total"] == 0 + 1 + 4 + 9
    workers = result["workers"]
    squares = {w for key, ids in workers.items() if key.startswith("square[") for w in ids}
    assert squares == {"worker-a", "worker-b"}, workers
    # Each step ran in its worker's own directory, not a shared one.
    started = [p.read_text() for p in tmp_path.glob("gate.started-*")]
    dirs = {str(d) for d in cluster.worker_dirs.values()}
    assert {s.rsplit(":", 1)[1] for s in started} <= dirs, started
    # The outputs went through S3, and so did the compute logs.
    s3 = boto3.client("s3", endpoint_url=cluster.dev_env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=IO_BUCKET).get("Contents", [])]
    run_id = result["run_id"]
    assert any(k.startswith(f"io/{run_id}/square[") or (k.startswith("io/") and run_id in k) for k in keys), keys
    assert any(k.startswith("compute-logs/") for k in keys), keys


def test_launched_run_executes_entirely_on_a_worker(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    config = {"ops": {"wait_for_marker": {"config": {"marker": str(marker)}}}}
    run_id = cluster.driver("launch", cluster.job_file(), "in_process_s3", json.dumps(config))["run_id"]
    where = wait_for("the run's first step to start", lambda: read_if_exists(marker), timeout=300)
    host, pid, cwd = where.rsplit(":", 2)
    assert cwd in {str(d) for d in cluster.worker_dirs.values()}, where
    Path(str(marker) + ".go").write_text("go")
    run = wait_status(cluster.instance, run_id, {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}, timeout=300)
    assert run.status == DagsterRunStatus.SUCCESS, cluster.logs()
    task_id = run.tags[TASK_ID_TAG]
    ran_on = [w for w, p in cluster.workers.items() if task_id in p.log()]
    assert len(ran_on) == 1, f"task {task_id} should appear in exactly one worker's log: {ran_on}"
    assert cwd == str(cluster.worker_dirs[ran_on[0]])


def test_launched_run_is_terminated_mid_step(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    config = {"ops": {"wait_for_marker": {"config": {"marker": str(marker)}}}}
    run_id = cluster.driver("launch", cluster.job_file(), "in_process_s3", json.dumps(config))["run_id"]
    where = wait_for("the step to start", lambda: read_if_exists(marker), timeout=300)
    pid = int(where.rsplit(":", 2)[1])
    assert pid_alive(pid)
    started = time.monotonic()
    assert cluster.driver("terminate", run_id)["terminated"] is True
    wait_status(cluster.instance, run_id, {DagsterRunStatus.CANCELED}, timeout=120)
    wait_for("the step's process to end", lambda: not pid_alive(pid), timeout=60)
    assert time.monotonic() - started < 120
    assert not Path(str(marker) + ".go").exists()


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_run_whose_worker_was_killed_is_resumed_by_run_monitoring(cluster: Cluster, tmp_path: Path) -> None:
    """Last in the module: it leaves one worker. The orchestrator's dagster-daemon watches runs."""
    daemon = Proc("daemon", [str(cluster.installed.bin / "dagster-daemon"), "run", "-f", cluster.job_file()],
                  cluster.orchestrator_env(), tmp_path)
    try:
        marker = tmp_path / "marker"
        config = {"ops": {"wait_for_marker": {"config": {"marker": str(marker)}}}}
        run_id = cluster.driver("launch", cluster.job_file(), "in_process_s3", json.dumps(config))["run_id"]
        first = wait_for("the run's step to start", lambda: read_if_exists(marker), timeout=300)
        run_pid = int(first.rsplit(":", 2)[1])
        # The run runs under its task's supervisor, a child of the worker.
        ancestors = [parent_pid(run_pid)]
        while ancestors[-1] > 1 and len(ancestors) < 8:
            ancestors.append(parent_pid(ancestors[-1]))
        victim = next(name for name, p in cluster.workers.items() if p.pid in ancestors)
        survivor = next(name for name in cluster.workers if name != victim)
        first_task = cluster.instance.get_run_by_id(run_id).tags[TASK_ID_TAG]  # type: ignore[union-attr]
        # The machine dies: the worker and the run it ran, at once.
        marker.unlink()
        cluster.workers[victim].kill()
        try:
            os.killpg(run_pid, signal.SIGKILL)  # its supervisor may have stopped it already
        except ProcessLookupError:
            pass
        again = wait_for("the resumed run to start the step again", lambda: read_if_exists(marker), timeout=300)
        assert again.rsplit(":", 1)[1] == str(cluster.worker_dirs[survivor]), again
        Path(str(marker) + ".go").write_text("go")
        run = wait_status(cluster.instance, run_id, {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}, 300)
        assert run.status == DagsterRunStatus.SUCCESS, daemon.log()[-4000:] + cluster.logs()
        assert run.tags[TASK_ID_TAG] != first_task and ".resume" in run.tags[TASK_ID_TAG], run.tags
    finally:
        daemon.stop()
