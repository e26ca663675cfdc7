#!/usr/bin/env bash
# Runs the benchmarks against a fresh `taskiq-go dev` endpoint:
#   bench/run.sh            cold start and worker throughput
#   bench/run.sh coldstart  only cold start
#   bench/run.sh throughput only throughput
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p bin .cache
make -s build
go build -trimpath -ldflags "-s -w" -o bin/floor ./bench/floor
go build -o bin/bench-coldstart ./bench/coldstart
go build -o bin/bench-throughput ./bench/throughput
what="${1:-all}"

start_dev() { # $1: workers
	rm -f .cache/bench.env
	bin/taskiq-go dev --addr 127.0.0.1:0 --env-file .cache/bench.env --workers "$1" --log-level warn >/dev/null 2>.cache/bench-dev.log &
	dev=$!
	for _ in $(seq 100); do [ -f .cache/bench.env ] && break; sleep 0.05; done
	# shellcheck disable=SC1091
	. .cache/bench.env
}
stop_dev() { kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; }
trap stop_dev EXIT

if [ "$what" = all ] || [ "$what" = coldstart ]; then
	echo "== cold start (median of 50 runs, ratio to floor)"
	start_dev 1
	bin/bench-coldstart -bin bin/taskiq-go -floor bin/floor -n 50
	stop_dev
fi
if [ "$what" = all ] || [ "$what" = throughput ]; then
	echo "== worker throughput (2000 x /bin/true, one worker)"
	start_dev 0
	bin/bench-throughput -bin bin/taskiq-go -tasks "${TASKS:-2000}"
	stop_dev
fi
