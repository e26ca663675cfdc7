"""Summarise a py-spy profile of moto_server (bench/peers.py --profile-moto).

    python3 bench/motoprofile.py [--tasks N] [--rate 100] [--top 15] DIR/SYSTEM-REP.txt ...

Each file holds collapsed stacks (`py-spy record --format raw`): one line per
stack, frames joined by ';', the sample count last. For each file it prints
moto's CPU by the request kind the samples fall in (the moto handler on the
stack: moto/sqs/responses.py's receive_message, moto/s3/responses.py's
_key_response_put ...), then the functions that take it, inclusive (the
function or what it calls) and self, with py-spy's sampling rate turning
samples into CPU milliseconds per task when --tasks is given. Only samples
of threads that were running are in the file (py-spy leaves idle ones out),
so the total is moto's busy time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def short(path: str) -> str:
    """A frame's file from its package on: moto/sqs/models.py, werkzeug/serving.py."""
    i = path.rfind("site-packages/")
    return path[i + len("site-packages/"):] if i >= 0 else path


def parse(line: str) -> tuple[list[tuple[str, str]], int] | None:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames = []
    for f in stack.split(";"):
        m = FRAME.match(f.strip())
        if m:
            frames.append((m["func"], short(m["file"])))
    return frames, int(count)


def kind(frames: list[tuple[str, str]]) -> str:
    """The request kind of a stack: the moto handler on it (SQSResponse.receive_message,
    S3Response.key_dispatch ...), a thread waiting (a long poll), or moto's server
    and routing around every request."""
    for func, _ in frames:
        if func.startswith(("SQSResponse.", "S3Response.")):
            return func
    if any(func == "Condition.wait" for func, _ in frames):
        return "(waiting: long polls)"
    return "(every request: server, routing, request log)"


def summarise(path: Path, tasks: int, rate: float, top: int) -> str:
    by_kind: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        p = parse(line)
        if p is None:
            continue
        frames, n = p
        total += n
        by_kind[kind(frames)] += n
        names = [f"{file}:{func}" for func, file in frames]
        for name in set(names):
            incl[name] += n
        if names:
            self_[names[-1]] += n

    def ms(n: int) -> str:
        if tasks:
            return f"{n / rate * 1000 / tasks:7.2f} ms/task"
        return f"{n / rate:7.2f} s"

    out = [f"== {path.name}: {total} samples, {total / rate:.1f} s of moto busy" +
           (f", {total / rate * 1000 / tasks:.1f} ms a task" if tasks else "")]
    out.append("-- by request kind")
    for k, n in by_kind.most_common(top):
        out.append(f"  {n / total:6.1%} {ms(n)}  {k}")
    out.append("-- inclusive, moto's own functions")
    for k, n in incl.most_common(top * 3):
        if not k.startswith("moto/") or "/core/" in k or "moto_server" in k:
            continue  # the server's frames are in every stack
        out.append(f"  {n / total:6.1%} {ms(n)}  {k}")
    out.append("-- self")
    for k, n in self_.most_common(top):
        out.append(f"  {n / total:6.1%} {ms(n)}  {k}")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--tasks", type=int, default=0, help="tasks of the burst, for milliseconds per task")
    p.add_argument("--rate", type=float, default=100, help="py-spy's samples a second (peers.py: 100)")
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()
    for f in args.files:
        print(summarise(f, args.tasks, args.rate, args.top))


if __name__ == "__main__":
    main()
