#!/usr/bin/env bash
# Group operations at scale, on the embedded dev endpoint: for each size N,
# submit N tasks in one group, then time and count (through the counting
# proxy of bench/requests) `cancel --group` of the N queued tasks, `poll
# --group` of the N cancelled ones, and `poll --group` of N tasks a worker
# ended (they name a command the worker does not allow, so that they end by
# the worker's own final write without N processes).
#
#   SIZES="100 1000 5000" bash bench/groups.sh
#   BIN=/path/to/other/taskiq-go bash bench/groups.sh   # the same with another build
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sizes="${SIZES:-100 1000 5000}"
if [ -z "${BIN:-}" ]; then
	make -s build
	BIN=bin/taskiq-go
fi
work="$(mktemp -d)"
go build -o "$work/countproxy" ./bench/requests
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
"$BIN" dev --addr 127.0.0.1:0 --env-file "$work/dev.env" --log-level warn >/dev/null 2>"$work/dev.log" &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/dev.env" ] && break; sleep 0.05; done
# shellcheck disable=SC1091
. "$work/dev.env"
direct="$AWS_ENDPOINT_URL"
"$work/countproxy" -target "$direct" -env-file "$work/proxy.env" 2>"$work/proxy.log" &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/proxy.env" ] && break; sleep 0.05; done
proxy="$(sed -n 's/^export AWS_ENDPOINT_URL=//p' "$work/proxy.env")"

now() { date +%s.%N; }
# measure LABEL N CMD...: run CMD through the proxy, print its time and
# requests.
measure() {
	local label=$1 n=$2 t0 t1 reqs
	shift 2
	curl -fsS "$proxy/__counts/reset" >/dev/null
	t0=$(now)
	AWS_ENDPOINT_URL=$proxy AWS_ENDPOINT_URL_SQS=$proxy AWS_ENDPOINT_URL_S3=$proxy "$@" >"$work/out" || true
	t1=$(now)
	reqs=$(curl -fsS "$proxy/__counts/report" | awk '$1 == "all" {print $3}')
	printf '%-34s %6d %8.2f s %8d requests\n' "$label" "$n" "$(echo "$t1 - $t0" | bc)" "$reqs"
}

batch() { # N PREFIX GROUP ARGV0
	for i in $(seq -f '%05g' "$1"); do printf '{"id":"%s-%s","group":"%s","argv":["%s"]}\n' "$2" "$i" "$3" "$4"; done
}

echo "== group operations on the dev endpoint ($("$BIN" version 2>/dev/null | head -1))"
printf '%-34s %6s %10s %17s\n' operation tasks time requests
for n in $sizes; do
	batch "$n" "c$n" "gc-$n" true | "$BIN" submit --batch - >/dev/null
	measure "cancel --group (queued)" "$n" "$BIN" cancel --group "gc-$n"
	grep -c $'\tcancelled$' "$work/out" >/dev/null || echo "  (cancel did not report them cancelled)"
	measure "poll --group (cancelled)" "$n" "$BIN" poll --group "gc-$n"

	batch "$n" "p$n" "gp-$n" touchfile | "$BIN" submit --batch - >/dev/null
	"$BIN" work --concurrency 32 --wait-time 1s --allow true --log-level warn 2>"$work/work.log" &
	wpid=$!
	"$BIN" poll --wait --timeout 600s --group "gp-$n" >/dev/null || true
	kill -INT "$wpid"
	wait "$wpid" || true
	measure "poll --group (ended by a worker)" "$n" "$BIN" poll --group "gp-$n"
	measure "poll --wait --group (ended)" "$n" "$BIN" poll --wait --group "gp-$n"
done
