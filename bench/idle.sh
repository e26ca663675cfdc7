#!/usr/bin/env bash
# What an idle worker costs: the AWS requests one `taskiq-go work` makes in a
# minute with nothing to do, serving the default queue (its inbox and all
# twelve priority levels), counted through the counting proxy
# (bench/requests) on the embedded dev endpoint. The worker's start (its
# redrive limits, the first sweep of the levels) is not counted: counting
# starts START seconds after it is up. Then one task is submitted to each of
# a few levels and the time from submit to its start is printed.
#
#   SECONDS_IDLE=60 START=5 bash bench/idle.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
idle="${SECONDS_IDLE:-60}"
start="${START:-5}"
make -s build
work="$(mktemp -d)"
go build -o "$work/countproxy" ./bench/requests
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
bin/taskiq-go dev --addr 127.0.0.1:0 --env-file "$work/dev.env" --log-level warn >/dev/null 2>"$work/dev.log" &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/dev.env" ] && break; sleep 0.05; done
# shellcheck disable=SC1091
. "$work/dev.env"
"$work/countproxy" -target "$AWS_ENDPOINT_URL" -env-file "$work/proxy.env" 2>"$work/proxy.log" &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/proxy.env" ] && break; sleep 0.05; done
# shellcheck disable=SC1091
. "$work/proxy.env"
bin/taskiq-go work --concurrency 4 --log-level warn 2>"$work/work.log" &
pids+=($!)
sleep "$start"
curl -fsS "$AWS_ENDPOINT_URL/__counts/reset" >/dev/null
sleep "$idle"
echo "== an idle worker (default queue: inbox and 12 levels, concurrency 4), ${idle}s"
report="$(curl -fsS "$AWS_ENDPOINT_URL/__counts/report?tasks=0")"
echo "$report"
total="$(awk '$1 == "all" { print $3 }' <<<"$report")"
awk -v n="$total" -v s="$idle" 'BEGIN { printf "requests a minute: %.1f\n", n * 60 / s }'
echo "== submit to start on the idle worker"
for p in 10 7 3 0 -4; do
	t0="$(date +%s%N)"
	id="$(bin/taskiq-go submit --priority "$p" -- true)"
	bin/taskiq-go poll --wait --timeout 30s --json "$id" >"$work/poll.json"
	started="$(bin/taskiq-go result --json "$id" | sed -n 's/.*"started_at":"\([^"]*\)".*/\1/p')"
	s_ns="$(date -d "$started" +%s%N)"
	echo "priority $p: started $(( (s_ns - t0) / 1000000 )) ms after submit began"
done
