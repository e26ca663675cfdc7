#!/usr/bin/env bash
# Creates or refreshes the project's Python virtualenv: ${VENV:-.venv} at the repo root,
# with the pinned packages of python/requirements.lock (and python/requirements-moto.txt
# when present) and dagster-taskiq installed editable with its test extra.
# Idempotent: a stamp holding a hash of the pin files makes a second run a fast no-op.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"

pins=(python/requirements.lock python/pyproject.toml)
[[ -f python/requirements-moto.txt ]] && pins+=(python/requirements-moto.txt)

want="$("$python" -c 'import sys; print(sys.version)' | head -1)"
want="$want $(cat "${pins[@]}" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.taskiq-stamp"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
	echo "venv.sh: creating $venv" >&2
	"$python" -m venv "$venv"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
pip=("$venv/bin/python" -m pip --quiet)
req=(-r python/requirements.lock)
[[ -f python/requirements-moto.txt ]] && req+=(-r python/requirements-moto.txt)

echo "venv.sh: installing pinned packages into $venv" >&2
"${pip[@]}" install "${req[@]}"
"${pip[@]}" install --no-deps -e 'python[test]'
"${pip[@]}" check >&2 || { echo "venv.sh: installed packages conflict (pip check)" >&2; exit 1; }

printf '%s\n' "$want" >"$stamp"
echo "venv.sh: $venv is ready" >&2
