"""`pip install dagster-taskiq` brings the binary: the platform wheel of this machine is built,
installed into a fresh virtualenv whose processes have no Go and no source tree on PATH, and a
fan-out job runs on `taskiq-go dev` workers started from that virtualenv's bundled binary. The
small binaries of cmd/ (taskiq-go-step, the native Dagster step client alone) come with it,
static, beside taskiq-go, and `dagster-taskiq worker start` from that virtualenv hands its steps
to that native client, under an allowlist that names the Python client's exact path."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_taskiq.worker_cli import STEP_PASS_ENV
from dagster_taskiq import WIRE_VERSION
from harness import REPO_ROOT, Proc, parse_env_file, read_if_exists, wait_for
from wheel_env import BARE_PATH, WheelVenv, in_dir, wheel_venv

PT_INTERP = 3
#: The binaries of cmd/, each shipped beside taskiq-go.
COMMANDS = sorted(d.name for d in (REPO_ROOT / "cmd").iterdir() if d.is_dir() and any(d.glob("*.go")))
#: What a small binary that imports little more than the standard library weighs at most, uncompressed.
SMALL_BINARY_BYTES = 6 << 20

#: The first test also builds the wheel and installs a virtualenv (minutes on a busy machine).
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    return wheel_venv(tmp_path_factory.getbasetemp() / "wheel")


def elf_interpreter(data: bytes) -> bool:
    """Whether an ELF executable asks for a dynamic loader (PT_INTERP): a static one does not."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    assert data[4] == 2, "not a 64-bit ELF file"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == PT_INTERP for i in range(phnum))


def test_wheel_carries_a_static_binary_for_its_platform(installed: WheelVenv) -> None:
    name = installed.wheel.name
    assert "-py3-none-" in name and ("manylinux" in name or "macosx" in name), name
    assert "taskiq-go-step" in COMMANDS, COMMANDS
    with zipfile.ZipFile(installed.wheel) as whl:
        scripts = {n.rsplit("/", 1)[1]: n for n in whl.namelist() if ".data/scripts/" in n}
        assert sorted(scripts) == sorted(["taskiq-go", *COMMANDS]), whl.namelist()
        meta = whl.read(next(n for n in whl.namelist() if n.endswith(".dist-info/WHEEL"))).decode()
        binaries = {name: whl.read(member) for name, member in scripts.items()}
        packed = {name: whl.getinfo(member).compress_size for name, member in scripts.items()}
    assert "Root-Is-Purelib: false" in meta
    if "manylinux" in name:
        assert "musllinux" in name, "a static binary runs on musl too"
        for binary, data in binaries.items():
            assert not elf_interpreter(data), f"the bundled {binary} is dynamically linked"
    for command in COMMANDS:
        assert len(binaries[command]) < SMALL_BINARY_BYTES, (command, len(binaries[command]))
    sizes = ", ".join(f"{n} {len(d) / 1e6:.1f} MB ({packed[n] / 1e6:.1f} packed)" for n, d in sorted(binaries.items()))
    print(f"{name}: {installed.wheel.stat().st_size / 1e6:.1f} MB; {sizes}")


def test_small_binaries_are_installed_beside_taskiq_go(installed: WheelVenv) -> None:
    for command in COMMANDS:
        path = installed.bin / command
        assert path.is_file() and os.access(path, os.X_OK), path
    # the native step client answers the probe dagster-taskiq links it by
    out = subprocess.run([str(installed.bin / "taskiq-go-step"), "--taskiq-go-native-step-client"],
                         env={}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "taskiq-go native step client", out


def test_installed_binary_and_package_agree_on_the_version(installed: WheelVenv) -> None:
    env = installed.env()
    assert subprocess.run(["sh", "-c", "command -v go"], env=env, capture_output=True).returncode != 0
    out = subprocess.run([installed.taskiq_go, "version", "--json"], env=env, capture_output=True, text=True, check=True)
    binary = json.loads(out.stdout)
    code = (
        "import dagster_taskiq, dagster_taskiq.cli as c, json; "
        "print(json.dumps({'version': dagster_taskiq.__version__, 'found': c.find_binary()}))"
    )
    # From another directory, with PATH holding neither the venv nor Go: the bundled binary is found
    # beside the interpreter.
    py = subprocess.run(
        [installed.python, "-c", code], env={**env, "PATH": BARE_PATH}, cwd="/", capture_output=True, text=True, check=True
    )
    package = json.loads(py.stdout)
    assert binary["version"] == package["version"], (binary, package)
    assert binary["version"] not in ("", "dev")
    assert binary["wire_version"] == WIRE_VERSION
    assert Path(package["found"]).resolve() == Path(installed.taskiq_go).resolve()


@pytest.fixture(scope="module")
def dev_stack(installed: WheelVenv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A dev endpoint and two workers, all run from the venv's bundled binary, each in its own directory."""
    root = tmp_path_factory.mktemp("wheel-stack")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env_file = root / "dev.env"
    dev = Proc("dev", [installed.taskiq_go, "dev", "--addr", "127.0.0.1:0", "--env-file", str(env_file)],
               installed.env(), root)
    procs = [dev]
    try:
        text = wait_for("taskiq-go dev to write its env file",
                        lambda: (t := read_if_exists(env_file)) and "TASKIQ_GO_QUEUE_URL" in t and t, 60)
        env = installed.env(**parse_env_file(str(text)), DAGSTER_HOME=str(dagster_home))
        for wid in ("wheel-a", "wheel-b"):
            workdir = root / wid
            workdir.mkdir()
            argv = [installed.taskiq_go, "work", "--worker-id", wid, "--concurrency", "2", "--heartbeat", "1s"]
            argv += [arg for name in STEP_PASS_ENV for arg in ("--pass-env", name)]
            procs.append(Proc(wid, in_dir(workdir, argv), env, workdir))
        yield env
    finally:
        for proc in reversed(procs):
            proc.stop()


def run_fan_out(installed: WheelVenv, env: dict[str, str]) -> dict[str, list[str]]:
    """fan_out_fs run from the venv on the endpoint of env; the workers that ran each step."""
    config = {"execution": {"config": {"queue_url": env["TASKIQ_GO_QUEUE_URL"],
                                       "endpoint_url": env["AWS_ENDPOINT_URL"],
                                       "health_check_interval": 2}}}
    out = subprocess.run(
        [installed.python, str(installed.user_code / "deployed_driver.py"), "execute",
         str(installed.user_code / "deployed_jobs.py"), "fan_out_fs", json.dumps(config)],
        env=env, cwd=installed.user_code, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-6000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "SUCCESS", out.stderr[-6000:]
    assert result["total"] == 0 + 1 + 4 + 9
    workers: dict[str, list[str]] = result["workers"]
    assert set(workers) == {"source", "square[0]", "square[1]", "square[2]", "square[3]", "total"}, workers
    return workers


def test_fan_out_job_runs_on_workers_from_the_wheel(installed: WheelVenv, dev_stack: dict[str, str]) -> None:
    workers = run_fan_out(installed, dev_stack)
    assert {w for ids in workers.values() for w in ids} <= {"wheel-a", "wheel-b"}


def test_worker_start_from_the_wheel_links_the_native_client(
    installed: WheelVenv, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Its own endpoint, so that no other worker takes the steps.
    root = tmp_path_factory.mktemp("wheel-warm")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env_file = root / "dev.env"
    dev = Proc("dev", [installed.taskiq_go, "dev", "--addr", "127.0.0.1:0", "--env-file", str(env_file)],
               installed.env(), root)
    procs = [dev]
    try:
        text = wait_for("taskiq-go dev to write its env file",
                        lambda: (t := read_if_exists(env_file)) and "TASKIQ_GO_QUEUE_URL" in t and t, 60)
        env = installed.env(**parse_env_file(str(text)), DAGSTER_HOME=str(dagster_home))
        python_client = str(installed.bin / "dagster-taskiq-step")
        argv = [str(installed.bin / "dagster-taskiq"), "worker", "start", "-n", "wheel-warm", "-c", "2",
                "--preload", str(installed.user_code / "deployed_jobs.py"),
                "--", "--heartbeat", "1s", "--allow", python_client]
        worker = Proc("wheel-warm", in_dir(root, argv), env, root)
        procs.append(worker)
        said = "steps start through taskiq-go's native client "
        line = wait_for("worker start to say which client it links",
                        lambda: next((ln for ln in worker.log().splitlines() if "steps start through" in ln), None), 120)
        assert said + os.path.realpath(installed.bin / "taskiq-go-step") in line, line
        workers = run_fan_out(installed, env)
        assert {w for ids in workers.values() for w in ids} == {"wheel-warm"}, workers
    finally:
        for proc in reversed(procs):
            proc.stop()
