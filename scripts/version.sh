#!/usr/bin/env bash
# Prints the one version that both the taskiq-go binary and the dagster-taskiq
# package carry, as a PEP 440 string derived from the git tag:
#   HEAD tagged v1.2.3              -> 1.2.3
#   3 commits after v1.2.3          -> 1.2.4.dev3+g<sha>
#   no tag at all                   -> 0.0.0.dev<commits>+g<sha>
#   uncommitted changes             -> local part gains ".dirty"
#   no git (an unpacked sdist)      -> $TASKIQ_GO_VERSION, else 0.0.0.dev0
# $TASKIQ_GO_VERSION, when set, wins over everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -n "${TASKIQ_GO_VERSION:-}" ]]; then
	echo "$TASKIQ_GO_VERSION"
	exit 0
fi
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "0.0.0.dev0"
	exit 0
fi

sha="$(git rev-parse --short=8 HEAD)"
dirty=""
git diff --quiet HEAD -- 2>/dev/null || dirty=".dirty"

if tag="$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null)"; then
	base="${tag#v}"
	ahead="$(git rev-list --count "$tag"..HEAD)"
	if [[ "$ahead" == 0 && -z "$dirty" ]]; then
		echo "$base"
		exit 0
	fi
	if [[ "$ahead" == 0 ]]; then
		echo "$base+g$sha$dirty"
		exit 0
	fi
	# The next patch release, as setuptools-scm would call it.
	IFS=. read -r major minor patch <<<"${base%%[-+]*}"
	echo "$major.${minor:-0}.$(( ${patch:-0} + 1 )).dev$ahead+g$sha$dirty"
	exit 0
fi
echo "0.0.0.dev$(git rev-list --count HEAD)+g$sha$dirty"
