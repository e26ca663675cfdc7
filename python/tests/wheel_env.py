"""Builds the platform wheel of this machine and installs it into a fresh virtualenv.

Shared by test_wheel.py and test_shared_nothing.py (built once per session).
Building needs Go; the venv and everything the tests run from it get a PATH
with neither Go nor the source tree on it: what a user of
`pip install dagster-taskiq` has.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from harness import REPO_ROOT, TESTS_DIR

#: What a machine without Go or this repository has on PATH.
BARE_PATH = "/usr/bin:/bin"

ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class WheelVenv:
    """A fresh virtualenv with the built wheel and the pinned packages installed."""

    wheel: Path
    root: Path
    user_code: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    @property
    def taskiq_go(self) -> str:
        return str(self.bin / "taskiq-go")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process of this install: its bin/, no Go, no source tree."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("TASKIQ_GO", "PYTHON", "VIRTUAL_ENV", "AWS_"))}
        keep.pop("DAGSTER_HOME", None)
        return {**keep, "PATH": f"{self.bin}:{BARE_PATH}", **extra}


_built: dict[Path, WheelVenv] = {}


def in_dir(workdir: Path, argv: list[str]) -> list[str]:
    """argv run with workdir as its working directory (exec'd: the pid stays the program's)."""
    return ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(workdir), *argv]


def host_platform() -> str:
    system = {"linux": "linux", "darwin": "darwin"}[sys.platform]
    return f"{system}/{ARCH[platform.machine().lower()]}"


def build_wheel(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "wheels.py"), "--platform", host_platform(), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=900,
    )
    wheels = sorted(out.glob("dagster_taskiq-*-py3-none-*.whl"))
    assert len(wheels) == 1, f"expected one platform wheel in {out}: {wheels}"
    return wheels[0]


def wheel_venv(base: Path) -> WheelVenv:
    """Builds (once per base) the wheel and a fresh venv holding it and the pinned packages."""
    if base in _built:
        return _built[base]
    # For working on these tests: reuse a venv built before (its wheel, not a new one).
    reuse = os.environ.get("DAGSTER_TASKIQ_TEST_WHEEL_DIR")
    if reuse:
        base = Path(reuse)
        wheel = next((base / "dist").glob("dagster_taskiq-*-py3-none-*.whl"))
        return _finish(base, wheel, base / "venv")
    wheel = build_wheel(base / "dist")
    root = base / "venv"
    venv.create(root, with_pip=True, clear=True)
    env = {**os.environ, "PATH": f"{root / 'bin'}:{BARE_PATH}", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    lock = REPO_ROOT / "python" / "requirements.lock"
    subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(lock), str(wheel)],
        check=True,
        env=env,
        timeout=1200,
    )
    subprocess.run([str(root / "bin" / "python"), "-m", "pip", "check"], check=True, env=env, timeout=120)
    return _finish(base, wheel, root)


def _finish(base: Path, wheel: Path, root: Path) -> WheelVenv:
    user_code = base / "user_code"
    user_code.mkdir(exist_ok=True)
    for name in ("deployed_jobs.py", "deployed_driver.py"):
        shutil.copy2(TESTS_DIR / name, user_code / name)
    _built[base] = WheelVenv(wheel=wheel, root=root, user_code=user_code)
    return _built[base]
