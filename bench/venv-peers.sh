#!/usr/bin/env bash
# Creates .venv-peers for bench/peers.py: taskiq-aio-sqs, Celery with its SQS
# transport and S3 result backend, and moto_server, from PyPI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${PEERS_VENV:-.venv-peers}"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$venv/bin/python" -m pip install --quiet -r bench/requirements-peers.txt
echo "peers venv ready: $venv" >&2
