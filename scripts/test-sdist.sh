#!/usr/bin/env bash
# Tests the sdist's build-from-source path, as a user with Go and no wheel for
# their platform meets it: `pip install` of the dagster-taskiq sdist into a
# fresh virtualenv, with Go on PATH and the source tree out of reach, builds a
# platform wheel carrying taskiq-go built from the Go source inside the sdist;
# the binary lands in the venv's bin/, is static, and prints the same version
# as the installed package; every small binary of cmd/ (taskiq-go-step, ...)
# lands beside it, static too. The same sdist installed without Go on PATH
# gives a pure wheel and no binary: the binaries come from that build, nowhere
# else.
# Only dagster-taskiq itself is installed (--no-deps): its dependencies are
# test_wheel.py's business.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
go="$(command -v "${GO:-go}")" || { echo "test-sdist: go not found" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "test-sdist: FAIL: $*" >&2; exit 1; }

"$python" scripts/wheels.py --sdist-only --out "$work/dist" >/dev/null
sdist="$(ls "$work"/dist/dagster_taskiq-*.tar.gz)"
echo "test-sdist: $(basename "$sdist")"

# install NAME PATH: a fresh venv, pip install of the sdist with PATH, from a
# directory outside the source tree.
install() {
	"$python" -m venv "$work/$1"
	(cd "$work" && env -i HOME="$HOME" PATH="$2" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
		GOCACHE="$("$go" env GOCACHE)" GOMODCACHE="$("$go" env GOMODCACHE)" GOTOOLCHAIN=local \
		"$work/$1/bin/python" -m pip install --quiet --no-deps "$sdist")
}

install with-go "$work/with-go/bin:$(dirname "$go"):/usr/bin:/bin"
bin="$work/with-go/bin/taskiq-go"
[[ -x "$bin" ]] || fail "no taskiq-go in the venv's bin/ after installing the sdist with Go"
out="$(env -i "$bin" version)" || fail "taskiq-go version failed: $out"
pkg="$("$work/with-go/bin/python" -c 'import importlib.metadata as m; print(m.version("dagster-taskiq"))')"
[[ "$out" == "taskiq-go $pkg" ]] || fail "the binary says '$out', the package $pkg"
file_info="$(od -An -c -N4 "$bin" | tr -d ' ')"
[[ "$file_info" == *ELF* ]] || [[ "$(uname)" != Linux ]] || fail "not an ELF binary"
if command -v ldd >/dev/null && ldd "$bin" 2>&1 | grep -q '=>'; then fail "taskiq-go is linked dynamically"; fi
commands=()
for dir in cmd/*/; do
	ls "$dir"*.go >/dev/null 2>&1 && commands+=("$(basename "$dir")")
done
[[ " ${commands[*]} " == *" taskiq-go-step "* ]] || fail "no cmd/taskiq-go-step in the source tree"
for name in "${commands[@]}"; do
	small="$work/with-go/bin/$name"
	[[ -x "$small" ]] || fail "no $name beside taskiq-go in the venv's bin/"
	if command -v ldd >/dev/null && ldd "$small" 2>&1 | grep -q '=>'; then fail "$name is linked dynamically"; fi
done
probe="$(env -i "$work/with-go/bin/taskiq-go-step" --taskiq-go-native-step-client)" || fail "taskiq-go-step failed its probe"
[[ "$probe" == "taskiq-go native step client" ]] || fail "taskiq-go-step answers '$probe'"
echo "test-sdist: beside taskiq-go: ${commands[*]}"
wheel_meta="$(cat "$work"/with-go/lib/python*/site-packages/dagster_taskiq-*.dist-info/WHEEL)"
grep -q '^Root-Is-Purelib: false' <<<"$wheel_meta" || fail "the wheel built from the sdist is not a platform wheel"
echo "test-sdist: with Go on PATH: $out, platform wheel ($(grep '^Tag:' <<<"$wheel_meta" | head -1))"

install without-go "$work/without-go/bin:/usr/bin:/bin"
[[ ! -e "$work/without-go/bin/taskiq-go" ]] || fail "a taskiq-go appeared without Go on PATH"
for name in "${commands[@]}"; do
	[[ ! -e "$work/without-go/bin/$name" ]] || fail "a $name appeared without Go on PATH"
done
echo "test-sdist: without Go on PATH: a pure wheel, no binary"
echo "test-sdist: ok"
