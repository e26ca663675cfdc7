#!/usr/bin/env python3
"""Checks a built image (an OCI archive) against the Dockerfile it was built from.

Usage: deploy/check_image.py IMAGE.tar DOCKERFILE CONTEXT VERSION

The image's config must say what the Dockerfile says (ENTRYPOINT, CMD, USER,
LABEL, ENV, EXPOSE, STOPSIGNAL, with ARG VERSION replaced), and its layers must
hold every COPY's files, byte for byte as in CONTEXT and with the --chmod mode;
the binary taken out of the image must run and print VERSION, and every binary
of the repository's cmd/ must be beside it. Only the standard
library: it runs wherever the image is built (scripts/image.sh).
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def instructions(dockerfile: Path, args: dict[str, str]) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) with continuations joined, comments dropped, ${ARG} expanded."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        for k, v in args.items():
            rest = rest.replace("${" + k + "}", v).replace("$" + k, v)
        out.append((word.upper(), rest.strip()))
    return out


def pairs(rest: str) -> dict[str, str]:
    """k=v pairs of LABEL and ENV, values possibly quoted."""
    result = {}
    for item in shlex.split(rest):
        k, _, v = item.partition("=")
        result[k] = v
    return result


def read_image(archive: Path) -> tuple[dict, dict[str, tuple[tarfile.TarInfo, bytes | None]]]:
    """The image config and the files of its layers (applied in order)."""
    with tarfile.open(archive) as tar:
        def blob(digest: str) -> bytes:
            f = tar.extractfile("blobs/" + digest.replace(":", "/"))
            assert f is not None
            return f.read()

        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        files: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as lt:
                for m in lt.getmembers():
                    data = lt.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
                    files["/" + m.name.lstrip("./").rstrip("/")] = (m, data)
    return config, files


def main() -> None:
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    archive, dockerfile, context, version = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    config, files = read_image(archive)
    cfg = config.get("config", {})
    print(f"== {archive.name} against {dockerfile}")
    check(config.get("os") == "linux", f"os linux (is {config.get('os')})")

    labels: dict[str, str] = {}
    env: dict[str, str] = {}
    for word, rest in instructions(dockerfile, {"VERSION": version}):
        if word == "FROM":
            check(rest == "scratch", "FROM scratch: nothing in the image but what the Dockerfile copies")
        elif word == "ENTRYPOINT":
            check(cfg.get("Entrypoint") == json.loads(rest), f"ENTRYPOINT {rest}")
        elif word == "CMD":
            check(cfg.get("Cmd") == json.loads(rest), f"CMD {rest}")
        elif word == "USER":
            check(cfg.get("User") == rest, f"USER {rest} (not root)")
            check(not rest.startswith(("0", "root")), "the user is not root")
        elif word == "LABEL":
            labels.update(pairs(rest))
        elif word == "ENV":
            env.update(pairs(rest))
        elif word == "EXPOSE":
            for port in rest.split():
                check(f"{port}/tcp" in (cfg.get("ExposedPorts") or {}), f"EXPOSE {port}")
        elif word == "STOPSIGNAL":
            check(cfg.get("StopSignal") == rest, f"STOPSIGNAL {rest}")
        elif word == "COPY":
            parts = rest.split()
            mode = next((int(p.split("=", 1)[1], 8) for p in parts if p.startswith("--chmod=")), None)
            src, dest = [p for p in parts if not p.startswith("--")]
            source = context / src
            if source.is_dir():
                # Its contents, with their own modes (COPY keeps them).
                for path in sorted(source.rglob("*")):
                    rel = path.relative_to(source).as_posix()
                    target = "/" + (dest.strip("/") + "/" + rel).strip("/")
                    got = files.get(target)
                    if path.is_dir():
                        want = path.stat().st_mode & 0o7777
                        check(got is not None and got[0].isdir() and got[0].mode & 0o7777 == want,
                              f"COPY {src} {dest}: {target}/ mode {want:o}")
                    else:
                        check(got is not None and got[1] == path.read_bytes(), f"COPY {src} {dest}: {target}, the same bytes")
                        if got is not None and mode is not None:
                            check(got[0].mode & 0o7777 == mode, f"  mode {mode:o} (is {got[0].mode & 0o7777:o})")
                continue
            got = files.get(dest)
            check(got is not None and got[1] == source.read_bytes(), f"COPY {src} {dest}: the same bytes")
            if got is not None and mode is not None:
                check(got[0].mode & 0o7777 == mode, f"  mode {mode:o} (is {got[0].mode & 0o7777:o})")
    for k, v in labels.items():
        check((cfg.get("Labels") or {}).get(k) == v, f"LABEL {k}={v}")
    have_env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    for k, v in env.items():
        check(have_env.get(k) == v, f"ENV {k}={v}")

    # The binary out of the image runs, statically linked, and is the version.
    entry = (cfg.get("Entrypoint") or [""])[0]
    member = files.get(entry)
    if member is None or member[1] is None:
        check(False, f"the entrypoint {entry} is a file in the image")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            exe = Path(tmp) / "taskiq-go"
            exe.write_bytes(member[1])
            exe.chmod(0o755)
            out = subprocess.run([str(exe), "version"], capture_output=True, text=True, env={})
            check(out.returncode == 0 and out.stdout.strip() == f"taskiq-go {version}",
                  f"the entrypoint runs with an empty environment and prints version {version} ({out.stdout.strip()!r})")
    # taskiq-go finds the small binaries of cmd/ (taskiq-go-step, ...) beside itself.
    cmd = Path(__file__).resolve().parents[1] / "cmd"
    for name in sorted(d.name for d in cmd.iterdir() if d.is_dir() and any(d.glob("*.go"))):
        beside = str(Path(entry).parent / name)
        got = files.get(beside)
        check(got is not None and got[1] is not None and got[0].mode & 0o111 != 0,
              f"cmd/{name} is beside the entrypoint: {beside}, executable")
    size = sum(len(d) for _, d in files.values() if d)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:12]
    print(f"   {len(files)} paths, {size >> 20} MiB of files, archive sha256 {digest}")
    if failures:
        raise SystemExit(f"check_image.py: {len(failures)} check(s) failed")
    print("check_image.py: the image is what the Dockerfile says")


if __name__ == "__main__":
    main()
