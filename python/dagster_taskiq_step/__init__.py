"""``dagster-taskiq-step``: run one Dagster step, warm when a fork server is there.

The command of every step task. When ``$DAGSTER_TASKIQ_FORKSERVER`` names the
socket of a reachable fork server (:mod:`dagster_taskiq.forkserver`, started
by ``dagster-taskiq worker start``), this process hands its argv, environment,
working directory and its stdin/stdout/stderr (as file descriptors) to the
server, which forks a child out of a process that has Dagster and the user's
code imported already. The child joins this process's process group, so that
taskiq-go's cancel, timeout and lost-lease kills of the task's group reach it;
this process waits for the child's exit status and leaves with it. SIGTERM,
SIGINT and SIGHUP are forwarded when the child could not join the group. If
this process dies, the server kills the child; if the server dies, this
process kills the child and fails.

Otherwise (no variable, no server, or a server that cannot run this code warm)
it runs the step cold, in this interpreter, through
:mod:`dagster_taskiq.step_entry`, after one line on stderr that says why.

This package is kept apart from ``dagster_taskiq`` so that importing it does
not import Dagster: the warm path costs an interpreter start and a few
standard modules, nothing more. It imports the C modules ``_socket`` and
``_signal`` rather than ``socket`` and ``signal``, whose enum classes of
constants took 30 of the 50 ms this process needed to start (``-X
importtime``), and no ``typing``.
"""

from __future__ import annotations

import _signal
import _socket
import array
import json
import os
import struct
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator
    from typing import Any

#: Environment variable naming the fork server's socket.
FORKSERVER_ENV_VAR = "DAGSTER_TASKIQ_FORKSERVER"
#: Environment variable naming the Python (with dagster-taskiq) that taskiq-go's
#: native client (Go package forkclient) runs a cold step with.
PYTHON_ENV_VAR = "DAGSTER_TASKIQ_PYTHON"
#: Exit code when the fork server went away while the step ran.
EXIT_SERVER_LOST = 70
_HEADER = struct.Struct("!I")
_FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)


def send_request(sock: socket.socket | _socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """Sends one length-prefixed JSON request, with ``fds`` attached to its first byte."""
    body = json.dumps(request, separators=(",", ":")).encode()
    data = _HEADER.pack(len(body)) + body
    sent = sock.sendmsg([data[:4096]], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", fds))])
    sock.sendall(data[sent:])


def recv_request(sock: socket.socket, max_fds: int = 3) -> tuple[dict[str, Any], list[int]]:
    """Receives what :func:`send_request` sent: the request and the file descriptors."""
    fds = array.array("i")
    msg, ancdata, _flags, _addr = sock.recvmsg(4096, _socket.CMSG_SPACE(max_fds * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    buf = bytearray(msg)
    while len(buf) < _HEADER.size:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("request cut short")
        buf += chunk
    (size,) = _HEADER.unpack_from(buf)
    while len(buf) < _HEADER.size + size:
        chunk = sock.recv(max(65536, size))
        if not chunk:
            raise EOFError("request cut short")
        buf += chunk
    return json.loads(bytes(buf[_HEADER.size : _HEADER.size + size])), list(fds)


def _say(message: str) -> None:
    try:
        os.write(2, f"dagster-taskiq-step: {message}\n".encode())
    except OSError:
        pass


def _cold(reason: str) -> None:
    if reason:
        _say(f"{reason}: starting the step cold")
    from dagster_taskiq.step_entry import main as cold_main

    cold_main()


def _exit_like(reply: dict[str, Any]) -> None:
    sig = reply.get("signal")
    if sig:
        for s in _FORWARDED:
            _signal.signal(s, _signal.SIG_DFL)
        os.kill(os.getpid(), int(sig))
    os._exit(int(reply.get("exit", 1)))


def _lines(sock: _socket.socket) -> Iterator[bytes]:
    """The newline-ended lines the server sends, until it closes."""
    buf = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except InterruptedError:
            continue
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line


def _connect(path: str) -> _socket.socket | str:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        return f"fork server {path} unreachable ({exc.strerror or exc})"
    return sock


def main() -> None:
    """Runs the step warm through the fork server, or cold; never returns."""
    path = os.environ.get(FORKSERVER_ENV_VAR, "")
    if not path:
        _cold("")
        return
    sock = _connect(path)
    if isinstance(sock, str):
        _cold(sock)
        return
    child = {"pid": 0, "grouped": True}

    def forward(signum: int, _frame: object) -> None:
        # In the child's group it got the signal too; else pass it on.
        if child["pid"] and not child["grouped"]:
            try:
                os.kill(child["pid"], signum)
            except OSError:
                pass

    for s in _FORWARDED:
        _signal.signal(s, forward)
    request = {"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd(), "pgid": os.getpgrp()}
    try:
        send_request(sock, request, [0, 1, 2])
    except OSError as exc:
        sock.close()
        _cold(f"fork server {path} refused the step ({exc.strerror or exc})")
        return
    for line in _lines(sock):
        reply = json.loads(line)
        if "cold" in reply:
            sock.close()
            _cold(f"fork server cannot run this step warm ({reply['cold']})")
            return
        if "pid" in reply:
            child["pid"], child["grouped"] = int(reply["pid"]), bool(reply.get("grouped"))
            continue
        if "exit" in reply or "signal" in reply:
            _exit_like(reply)
    # The server went away before the child ended: do not leave the child behind.
    if child["pid"]:
        try:
            os.kill(child["pid"], _signal.SIGKILL)
        except OSError:
            pass
    _say(f"fork server {path} went away while the step ran (child {child['pid'] or 'not started'})")
    os._exit(EXIT_SERVER_LOST)


if __name__ == "__main__":
    main()
