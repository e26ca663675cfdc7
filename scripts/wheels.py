#!/usr/bin/env python3
"""Builds the release artifacts of one version (scripts/version.sh) into dist/:

* taskiq-go for linux and darwin on amd64 and arm64, with every small
  binary under cmd/ (taskiq-go-step, the native Dagster step client alone,
  and the others) beside it: static (CGO_ENABLED=0), cross-compiled,
  -trimpath, stamped with the version; also as tar.gz archives with a
  checksums.txt, for installs without pip;
* the dagster-taskiq sdist, holding the Go source under go/ so that a wheel
  built from it where Go is present carries the binary (python/setup.py);
* one platform wheel per target: the package plus that target's binaries in
  ``<name>.data/scripts/``, which pip installs into the environment's bin/,
  where taskiq-go finds the others beside itself.
  A static binary needs no libc, so each Linux wheel is tagged for both
  glibc (manylinux2014) and musl (musllinux_1_1); macOS wheels need 12.0,
  the oldest macOS Go 1.26 supports.

Usage: scripts/wheels.py [--platform GOOS/GOARCH]... [--sdist-only] [--out DIR]
(without --platform: all four). Needs Go and Python; nothing else is
downloaded than the pinned build backend (python/requirements-build.txt)
into .cache/wheel-build.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = "github.com/taskiq-go/taskiq-go"
DIST_NAME = "dagster_taskiq"

#: GOOS/GOARCH -> the wheel's platform tag (compressed tag set).
PLATFORMS = {
    "linux/amd64": "manylinux_2_17_x86_64.manylinux2014_x86_64.musllinux_1_1_x86_64",
    "linux/arm64": "manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64",
    "darwin/amd64": "macosx_12_0_x86_64",
    "darwin/arm64": "macosx_12_0_arm64",
}


def run(argv: list[str], **kwargs: object) -> None:
    print("+", " ".join(argv), file=sys.stderr)
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def project_version() -> str:
    out = subprocess.run(["bash", str(ROOT / "scripts" / "version.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip()


#: The packages built: taskiq-go (the module's root) and every command under cmd/.
PACKAGES = [".", "./cmd/..."]


def command_names() -> list[str]:
    """The binaries of cmd/ (each directory holding Go files is one command)."""
    return sorted(d.name for d in (ROOT / "cmd").iterdir() if d.is_dir() and any(d.glob("*.go")))


def build_binaries(target: str, version: str, out_dir: Path) -> list[Path]:
    """taskiq-go and the binaries of cmd/ for target, in one directory: taskiq-go first."""
    goos, goarch = target.split("/")
    out = out_dir / f"{goos}_{goarch}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOOS": goos, "GOARCH": goarch}
    # -X of a package a command does not link is ignored: one set of flags for all.
    ldflags = f"-s -w -X {MODULE}/commands.Version={version}"
    run([os.environ.get("GO", "go"), "build", "-trimpath", "-ldflags", ldflags, "-o", f"{out}{os.sep}", *PACKAGES],
        cwd=ROOT, env=env)
    names = ["taskiq-go", *command_names()]
    missing = [n for n in names if not (out / n).is_file()]
    if missing:
        raise SystemExit(f"wheels.py: go build made no {', '.join(missing)} in {out}")
    return [out / n for n in names]


def archive_binaries(binaries: list[Path], target: str, version: str, out_dir: Path) -> Path:
    goos, goarch = target.split("/")
    path = out_dir / f"taskiq-go_{version}_{goos}_{goarch}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for binary in binaries:
            tar.add(binary, arcname=binary.name)
        tar.add(ROOT / "README.md", arcname="README.md")
    return path


def go_source_files() -> list[str]:
    """What `go build . ./cmd/...` needs: the module's non-test .go files as git knows them, and what they embed."""
    out = subprocess.run(["git", "ls-files", "go.mod", "go.sum", "*.go"], cwd=ROOT, capture_output=True, text=True)
    files = [f for f in out.stdout.split() if not f.endswith("_test.go") and not f.startswith(("python/", "testdata/"))]
    if "go.mod" not in files:
        raise SystemExit("wheels.py: go.mod not tracked by git; run from a git checkout")
    # Files the packages embed (the dashboard's static/, schemas): `go build`
    # fails without them. Every GOOS's .go files are in already.
    listed = subprocess.run(
        [os.environ.get("GO", "go"), "list", "-deps", "-f",
         "{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .EmbedFiles}}{{$d}}/{{.}}\n{{end}}{{end}}{{end}}", *PACKAGES],
        cwd=ROOT, capture_output=True, text=True, check=True)
    for path in listed.stdout.split():
        rel = Path(path).relative_to(ROOT).as_posix()
        if rel not in files:
            files.append(rel)
    return files


def stage_source(version: str, stage: Path) -> Path:
    """python/ plus _version.txt plus the Go source under go/: what the sdist holds."""
    src = stage / "dagster-taskiq"
    if src.exists():
        shutil.rmtree(src)
    ignore = shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__", ".venv", "go", "_version.txt")
    shutil.copytree(ROOT / "python", src, ignore=ignore)
    (src / "_version.txt").write_text(version + "\n")
    for name in go_source_files():
        dest = src / "go" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest)
    return src


def build_python(version: str) -> Path:
    """A venv with the pinned build backend, reused while the pins are unchanged."""
    home = ROOT / ".cache" / "wheel-build"
    pins = (ROOT / "python" / "requirements-build.txt").read_text()
    stamp = home / ".pins"
    python = home / "bin" / "python"
    if not (python.exists() and stamp.exists() and stamp.read_text() == pins):
        venv.create(home, with_pip=True, clear=True)
        run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
             str(ROOT / "python" / "requirements-build.txt")])
        stamp.write_text(pins)
    return python


def build_sdist_and_pure_wheel(python: Path, src: Path, out_dir: Path, version: str) -> tuple[Path, Path]:
    code = (
        # build_meta rewrites sys.argv: read the arguments first.
        "import sys; out, names = sys.argv[1:3]; from setuptools import build_meta as b; "
        "built = [b.build_sdist(out), b.build_wheel(out)]; "
        "open(names, 'w').write('\\n'.join(built))"
    )
    names = out_dir / "names.txt"
    env = {**os.environ, "DAGSTER_TASKIQ_NO_GO": "1", "TASKIQ_GO_VERSION": version}
    out = subprocess.run([str(python), "-c", code, str(out_dir), str(names)], cwd=src, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"wheels.py: building the sdist and wheel failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    sdist_name, wheel_name = names.read_text().split("\n")
    return out_dir / sdist_name, out_dir / wheel_name


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def platform_wheel(pure: Path, binaries: list[Path], plat: str, out_dir: Path) -> Path:
    """The pure wheel, re-tagged for plat, with the binaries in .data/scripts/."""
    base = pure.name.split("-")
    name, version = base[0], base[1]
    dist_info = f"{name}-{version}.dist-info"
    out = out_dir / f"{name}-{version}-py3-none-{plat}.whl"
    records: list[str] = []
    with zipfile.ZipFile(pure) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in (f"{dist_info}/RECORD", f"{dist_info}/WHEEL"):
                continue
            data = zin.read(info)
            zout.writestr(info, data)
            records.append(record_line(info.filename, data))
        wheel_meta = zin.read(f"{dist_info}/WHEEL").decode()
        lines = [ln for ln in wheel_meta.splitlines() if ln and not ln.startswith(("Tag:", "Root-Is-Purelib:"))]
        lines.append("Root-Is-Purelib: false")
        lines += [f"Tag: py3-none-{p}" for p in plat.split(".")]
        wheel_data = ("\n".join(lines) + "\n").encode()
        for binary in binaries:
            script_name = f"{name}-{version}.data/scripts/{binary.name}"
            script = binary.read_bytes()
            info = zipfile.ZipInfo(script_name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, script)
            records.append(record_line(script_name, script))
        zout.writestr(f"{dist_info}/WHEEL", wheel_data)
        records.append(record_line(f"{dist_info}/WHEEL", wheel_data))
        records.append(f"{dist_info}/RECORD,,")
        zout.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS), help="GOOS/GOARCH (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "dist"), help="output directory (default dist/)")
    parser.add_argument("--sdist-only", action="store_true", help="build the sdist alone (no binaries, no wheels)")
    args = parser.parse_args()
    targets = [] if args.sdist_only else args.platform or list(PLATFORMS)
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    version = project_version()
    print(f"wheels.py: version {version}", file=sys.stderr)

    python = build_python(version)
    stage = out_dir / "stage"
    src = stage_source(version, stage)
    pure_dir = stage / "pure"
    shutil.rmtree(pure_dir, ignore_errors=True)
    pure_dir.mkdir(parents=True)
    sdist, pure = build_sdist_and_pure_wheel(python, src, pure_dir, version)
    shutil.copy2(sdist, out_dir / sdist.name)

    built = [out_dir / sdist.name]
    sums = io.StringIO()
    for target in targets:
        binaries = build_binaries(target, version, stage / "bin")
        tarball = archive_binaries(binaries, target, version, out_dir)
        sums.write(f"{hashlib.sha256(tarball.read_bytes()).hexdigest()}  {tarball.name}\n")
        built += [tarball, platform_wheel(pure, binaries, PLATFORMS[target], out_dir)]
    if targets:
        (out_dir / "checksums.txt").write_text(sums.getvalue())
    for path in built:
        print(path)


if __name__ == "__main__":
    main()
