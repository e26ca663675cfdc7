#!/usr/bin/env bash
# Builds the container image of deploy/docker/Dockerfile.static without a
# container daemon: buildah (Debian's package; vfs storage under .cache/image,
# chroot isolation, no registry since the base is scratch) from a context of
# the static binaries (taskiq-go and, from beside it, every binary of cmd/)
# and the host's CA bundle, exported as an OCI archive to
# dist/taskiq-go-image.tar; then deploy/check_image.py checks the archive's
# config and layers against the Dockerfile. Load it elsewhere with
# `podman load -i` or `skopeo copy oci-archive:... docker-daemon:...`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${TASKIQ_GO_BIN:-$root/bin/taskiq-go}"
# The image is labelled with the version of the binary it carries.
version="$("$bin" version)"
version="${version#taskiq-go }"
command -v buildah >/dev/null || { echo "image.sh: buildah not found (apt-get install buildah)" >&2; exit 1; }
state="$root/.cache/image"
ctx="$state/context"
rm -rf "$ctx"
mkdir -p "$ctx/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/etc/ssl/certs" dist
chmod 1777 "$ctx/rootfs/tmp"
cp "$bin" "$ctx/bin/taskiq-go"
for dir in cmd/*/; do
	ls "$dir"*.go >/dev/null 2>&1 || continue
	name="$(basename "$dir")"
	[[ -x "$(dirname "$bin")/$name" ]] || { echo "image.sh: no $name beside $bin (make build builds it)" >&2; exit 1; }
	cp "$(dirname "$bin")/$name" "$ctx/bin/$name"
done
cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
b=(buildah --storage-driver vfs --root "$state/storage" --runroot "$state/run")
tag="localhost/taskiq-go:${version//+/_}"
"${b[@]}" bud --quiet --isolation chroot --layers=false -f deploy/docker/Dockerfile.static \
	--build-arg VERSION="$version" -t "$tag" "$ctx" >/dev/null
rm -f dist/taskiq-go-image.tar
"${b[@]}" push --quiet "$tag" "oci-archive:dist/taskiq-go-image.tar:$tag"
"${b[@]}" rmi --all --force >/dev/null
python3 deploy/check_image.py dist/taskiq-go-image.tar deploy/docker/Dockerfile.static "$ctx" "$version"
