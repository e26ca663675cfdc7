"""Build hooks that pyproject.toml cannot express.

* The version is the project's one version (scripts/version.sh: from the git
  tag), the same string the taskiq-go binary prints; an sdist carries it in
  ``_version.txt``.
* A wheel built from the sdist, when ``go`` is on PATH, carries the taskiq-go
  binary and the small ones of ``cmd/`` (taskiq-go-step, ...) built from the
  Go source the sdist holds under ``go/``, installed into the environment's
  scripts directory (its ``bin/``), where taskiq-go finds them beside itself,
  and is tagged for this platform. ``make wheels`` builds the published platform wheels
  without this path (scripts/wheels.py adds the cross-compiled binaries).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel

# setuptools' own distutils (setuptools is imported first); it has no
# build_scripts of its own.
from distutils.command.build_scripts import build_scripts  # noqa: E402

HERE = Path(__file__).resolve().parent
GO_SOURCE = HERE / "go"
VERSION_FILE = HERE / "_version.txt"

def project_version() -> str:
    if os.environ.get("TASKIQ_GO_VERSION"):
        return os.environ["TASKIQ_GO_VERSION"]
    if VERSION_FILE.is_file():
        return VERSION_FILE.read_text().strip()
    script = HERE.parent / "scripts" / "version.sh"
    if script.is_file():
        try:
            return subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return "0.0.0.dev0"

VERSION = project_version()

def go_tool() -> str | None:
    """`go`, when the Go source is here to build and building it is not switched off."""
    if os.environ.get("DAGSTER_TASKIQ_NO_GO") or not (GO_SOURCE / "go.mod").is_file():
        return None
    return shutil.which("go")

class BdistWheel(bdist_wheel):  # type: ignore[misc]
    """A platform wheel with the binary built from source, when Go is present."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self._go = go_tool()
        if self._go:
            self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        python, abi, plat = super().get_tag()
        if self._go:
            return "py3", "none", plat
        return python, abi, plat

    def run(self) -> None:
        if self._go:
            out = Path(self.bdist_dir or "build").resolve().parent / "taskiq-go-bin"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            module = "github.com/taskiq-go/taskiq-go"
            # -X of a package a command does not link is ignored: one set of flags for all.
            ldflags = f"-s -w -X {module}/commands.Version={VERSION}"
            env = {**os.environ, "CGO_ENABLED": "0"}
            packages = ["."] + (["./cmd/..."] if (GO_SOURCE / "cmd").is_dir() else [])
            subprocess.run(
                [self._go, "build", "-trimpath", "-ldflags", ldflags, "-o", f"{out}{os.sep}", *packages],
                cwd=GO_SOURCE,
                env=env,
                check=True,
            )
            self.distribution.scripts = sorted(str(p) for p in out.iterdir())
        super().run()


class BuildScripts(build_scripts):  # type: ignore[misc]
    """Copies the scripts as they are: they are the taskiq-go binaries, which
    setuptools would otherwise read as Python to rewrite their first line."""

    def run(self) -> None:
        self.mkpath(self.build_dir)
        for script in self.scripts or []:
            dest = os.path.join(self.build_dir, os.path.basename(script))
            self.copy_file(script, dest)
            os.chmod(dest, 0o755)


setup(version=VERSION, cmdclass={"bdist_wheel": BdistWheel, "build_scripts": BuildScripts})

