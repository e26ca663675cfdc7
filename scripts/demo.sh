#!/usr/bin/env bash
# make demo: the example Dagster job (examples/demo_job.py) executed step by
# step by taskiq-go workers on the embedded dev endpoint. Starts a warm fork
# server (Dagster and the job imported once; each step is a fork of it) and
# the endpoint with two in-process workers, runs the job, prints the outcome
# and which worker ran each step, and stops both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${VENV:-.venv}"
mkdir -p .cache
rm -f .cache/dev.env
export DAGSTER_HOME="$PWD/.cache/dagster_home"
mkdir -p "$DAGSTER_HOME"
# The workers run `dagster api execute_step`, so the virtualenv goes first
# on their PATH; the step code is imported from examples/.
export PATH="$PWD/$venv/bin:$PATH"
export PYTHONPATH="$PWD/examples${PYTHONPATH:+:$PYTHONPATH}"
# Steps run by `dagster-taskiq-step` are handed to the fork server named here.
export DAGSTER_TASKIQ_FORKSERVER="$PWD/.cache/forkserver.sock"
"$venv/bin/python" -m dagster_taskiq.forkserver --socket "$DAGSTER_TASKIQ_FORKSERVER" \
	--preload examples/demo_job.py 2>.cache/forkserver.log &
fs=$!
# Tasks get a clean environment: pass on what a Dagster step needs (the
# instance, the code, the fork server's socket).
bin/taskiq-go dev --addr 127.0.0.1:0 --workers 2 --concurrency 2 --env-file .cache/dev.env \
	--pass-env 'DAGSTER_*' --pass-env PYTHONPATH --pass-env VIRTUAL_ENV \
	--log-level warn >/dev/null 2>.cache/dev.log &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null || true; kill $fs 2>/dev/null; wait $fs 2>/dev/null || true' EXIT
for _ in $(seq 300); do [ -S "$DAGSTER_TASKIQ_FORKSERVER" ] && break; sleep 0.1; done
[ -S "$DAGSTER_TASKIQ_FORKSERVER" ] || echo "demo: no fork server (see .cache/forkserver.log): steps start cold" >&2
for _ in $(seq 100); do [ -f .cache/dev.env ] && break; sleep 0.1; done
[ -f .cache/dev.env ] || { echo "demo: taskiq-go dev did not start; see .cache/dev.log" >&2; exit 1; }
# shellcheck disable=SC1091
. .cache/dev.env
echo "demo: taskiq-go dev at $AWS_ENDPOINT_URL with workers dev-1 and dev-2, steps forked warm" >&2
"$venv/bin/python" examples/run_demo.py
