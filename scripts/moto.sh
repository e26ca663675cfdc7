#!/usr/bin/env bash
# Runs moto_server (PyPI "moto", server mode) on 127.0.0.1: the second AWS
# emulator (SQS + S3) that the integration tests are run against.
#
#   scripts/moto.sh start     ensure the venv has the pinned moto[server], start
#                             moto_server on a free port, wait until it answers,
#                             print its endpoint (http://127.0.0.1:PORT) on stdout.
#                             If one started by this script is already running,
#                             just print its endpoint.
#   scripts/moto.sh stop      stop it (no error if it is not running).
#   scripts/moto.sh status    print the endpoint and exit 0 if running, else exit 1.
#
# Typical use:  MOTO_ENDPOINT="$(scripts/moto.sh start)"; ...; scripts/moto.sh stop
#
# Environment (relative paths are relative to the repository root):
#   VENV                 virtualenv to use/create            (default .venv)
#   MOTO_STATE           pid, endpoint and log files         (default .cache/moto)
#   PYTHON               interpreter used to create the venv (default python3, >= 3.10)
#   MOTO_START_TIMEOUT   seconds to wait for the server      (default 30)
#
# The pinned version lives in python/requirements-moto.txt; it is (re)installed
# only when the venv lacks it or that file changed. Server output goes to
# $MOTO_STATE/log. Only stdout of `start`/`status` carries the endpoint; all
# messages go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

REQ="python/requirements-moto.txt"
VENV="${VENV:-.venv}"
STATE="${MOTO_STATE:-.cache/moto}"
PYTHON="${PYTHON:-python3}"
TIMEOUT="${MOTO_START_TIMEOUT:-30}"
PIDFILE="$STATE/pid"
EPFILE="$STATE/endpoint"
LOG="$STATE/log"

msg() { echo "moto.sh: $*" >&2; }
die() { msg "error: $*"; exit 1; }

pinned_version() {
	local v
	v="$(sed -n 's/^[[:space:]]*moto\[server\][[:space:]]*==[[:space:]]*\([^[:space:];#]*\).*/\1/p' "$REQ" | head -n1)"
	[[ -n "$v" ]] || die "no 'moto[server]==VERSION' line in $REQ"
	echo "$v"
}

# True if $1 is a live (non-zombie) moto_server process.
is_moto() {
	local pid="$1" state cmd
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	if [[ -r "/proc/$pid/stat" ]]; then
		state="$(sed 's/^.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
		[[ "$state" != Z && "$state" != X ]] || return 1
		cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
		[[ "$cmd" == *moto_server* || "$cmd" == *moto.server* ]]
	else
		kill -0 "$pid" 2>/dev/null
	fi
}

# Poll $1 until it answers HTTP, pid $2 dies, or TIMEOUT passes.
# Exit status: 0 ready, 1 timeout, 2 process died.
wait_ready() {
	"$VENV/bin/python" - "$1" "$2" "$TIMEOUT" <<'PY'
import os, sys, time, urllib.request, urllib.error
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    if not alive():
        sys.exit(2)
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=2) as r:
            r.read(1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answered
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
}

running_endpoint() {
	local pid ep
	pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
	ep="$(cat "$EPFILE" 2>/dev/null)" || return 1
	is_moto "$pid" || return 1
	[[ -n "$ep" ]] || return 1
	echo "$ep"
}

ensure_venv() {
	local pin="$1" want have_ver
	if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
		command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=...)"
		"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
			die "$PYTHON is older than 3.10, which moto $pin needs (set PYTHON=...)"
		msg "creating virtualenv $VENV"
		"$PYTHON" -m venv --clear "$VENV" >&2 </dev/null ||
			die "'$PYTHON -m venv $VENV' failed (on Debian: apt-get install python3-venv)"
	fi
	want="$(sha256sum "$REQ" | cut -d' ' -f1)"
	have_ver="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
	if [[ "$have_ver" == "$pin" && -x "$VENV/bin/moto_server" &&
		"$(cat "$VENV/.moto-requirements.sha256" 2>/dev/null)" == "$want" ]] &&
		"$VENV/bin/python" -c 'import flask, flask_cors' >/dev/null 2>&1; then
		return 0
	fi
	msg "installing moto[server]==$pin into $VENV (have: ${have_ver:-none})"
	PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
		"$VENV/bin/python" -m pip install --quiet -r "$REQ" </dev/null >&2 ||
		die "pip install -r $REQ failed"
	echo "$want" >"$VENV/.moto-requirements.sha256"
}

free_port() {
	"$VENV/bin/python" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cmd_start() {
	local pin ep port pid rc attempt
	mkdir -p "$STATE"
	exec 9>"$STATE/lock"
	command -v flock >/dev/null 2>&1 && flock 9

	if ep="$(running_endpoint)"; then
		msg "already running (pid $(cat "$PIDFILE")) at $ep"
		echo "$ep"
		return 0
	fi
	rm -f "$PIDFILE" "$EPFILE"

	pin="$(pinned_version)"
	ensure_venv "$pin"

	for attempt in 1 2 3; do
		port="$(free_port)"
		ep="http://127.0.0.1:$port"
		echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) moto_server $pin on $ep (attempt $attempt)" >>"$LOG"
		nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >>"$LOG" 2>&1 9>&- &
		pid=$!
		echo "$pid" >"$PIDFILE"
		rc=0
		wait_ready "$ep" "$pid" || rc=$?
		if [[ $rc -eq 0 ]]; then
			echo "$ep" >"$EPFILE"
			msg "moto_server $pin running (pid $pid) at $ep; log: $STATE/log"
			echo "$ep"
			return 0
		fi
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		rm -f "$PIDFILE"
		if [[ $rc -eq 1 ]]; then
			msg "moto_server did not answer at $ep within ${TIMEOUT}s; last log lines:"
			tail -n 20 "$LOG" >&2 || true
			exit 1
		fi
		msg "moto_server exited during startup (attempt $attempt); retrying on another port"
	done
	msg "moto_server failed to start; last log lines:"
	tail -n 20 "$LOG" >&2 || true
	exit 1
}

cmd_stop() {
	local pid i
	mkdir -p "$STATE"
	exec 9>"$STATE/lock"
	command -v flock >/dev/null 2>&1 && flock 9

	pid="$(cat "$PIDFILE" 2>/dev/null || true)"
	if [[ -n "$pid" ]] && is_moto "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			is_moto "$pid" || break
			sleep 0.1
		done
		if is_moto "$pid"; then
			msg "pid $pid ignored SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		msg "stopped moto_server (pid $pid)"
	else
		msg "moto_server is not running"
	fi
	rm -f "$PIDFILE" "$EPFILE"
}

cmd_status() {
	local ep
	if ep="$(running_endpoint)"; then
		echo "$ep"
	else
		msg "moto_server is not running"
		return 1
	fi
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
