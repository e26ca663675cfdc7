"""`pip install dagster-taskiq` brings the binary: the platform wheel of this machine is built,
installed into a fresh virtualenv whose processes have no Go and no source tree on PATH, and a
fan-out job runs on `taskiq-go dev` workers started from that virtualenv's bundled binary."""

from __future__ import annotations

import json
import struct
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_taskiq.worker_cli import STEP_PASS_ENV
from dagster_taskiq import WIRE_VERSION
from harness import Proc, parse_env_file, read_if_exists, wait_for
from wheel_env import BARE_PATH, WheelVenv, in_dir, wheel_venv

PT_INTERP = 3

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
    with zipfile.ZipFile(installed.wheel) as whl:
        scripts = [n for n in whl.namelist() if n.endswith(".data/scripts/taskiq-go")]
        assert len(scripts) == 1, whl.namelist()
        meta = whl.read(next(n for n in whl.namelist() if n.endswith(".dist-info/WHEEL"))).decode()
        binary = whl.read(scripts[0])
    assert "Root-Is-Purelib: false" in meta
    if "manylinux" in name:
        assert "musllinux" in name, "a static binary runs on musl too"
        assert not elf_interpreter(binary), "the bundled taskiq-go is dynamically linked"


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


def test_fan_out_job_runs_on_workers_from_the_wheel(installed: WheelVenv, dev_stack: dict[str, str]) -> None:
    config = {"execution": {"config": {"queue_url": dev_stack["TASKIQ_GO_QUEUE_URL"],
                                       "endpoint_url": dev_stack["AWS_ENDPOINT_URL"],
                                       "health_check_interval": 2}}}
    out = subprocess.run(
        [installed.python, str(installed.user_code / "deployed_driver.py"), "execute",
         str(installed.user_code / "deployed_jobs.py"), "fan_out_fs", json.dumps(config)],
        env=dev_stack, cwd=installed.user_code, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-6000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "SUCCESS", out.stderr[-6000:]
    assert result["total"] == 0 + 1 + 4 + 9
    workers = result["workers"]
    assert set(workers) == {"source", "square[0]", "square[1]", "square[2]", "square[3]", "total"}, workers
    assert {w for ids in workers.values() for w in ids} <= {"wheel-a", "wheel-b"}
