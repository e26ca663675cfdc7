#!/usr/bin/env bash
# Creates .venv-bench for bench/dagster_bench.py: dagster-celery with Celery's
# SQS transport, moto_server, and dagster-taskiq (editable) on the same Dagster.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${BENCH_VENV:-.venv-bench}"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$venv/bin/python" -m pip install --quiet -r bench/requirements-celery.txt -r python/requirements-moto.txt
"$venv/bin/python" -m pip install --quiet --no-deps -e python
echo "bench venv ready: $venv" >&2
