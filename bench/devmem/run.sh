#!/usr/bin/env bash
# Samples the RSS of `taskiq-go dev --data-dir` (the endpoint alone, the
# worker runs in its own process) over a run of N tasks (default 10,000),
# to show that the endpoint's memory stays flat: messages and objects live
# in the data dir, not in the process.
#
#   bench/devmem/run.sh [N] [CONCURRENCY]
#
# Prints the RSS idle, at its peak, after the run and after a restart on the
# same data dir, the run's rate and the samples' CSV path
# (.cache/devmem/rss.csv: seconds since start, RSS and RssAnon in KiB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
n="${1:-10000}"
conc="${2:-16}"
out=.cache/devmem
rm -rf "$out" && mkdir -p "$out"
go build -o "$out/taskiq-go" .
bin="$out/taskiq-go"

dev="" work="" sampler=""
cleanup() {
	for p in $sampler $work $dev; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

start_dev() {
	"$bin" dev --listen 127.0.0.1:0 --data-dir "$out/data" --env-file "$out/dev.env" --log-level warn >/dev/null 2>>"$out/dev.log" &
	dev=$!
	for _ in $(seq 200); do [ -f "$out/dev.env" ] && break; sleep 0.05; done
	[ -f "$out/dev.env" ] || { echo "devmem: dev did not start (see $out/dev.log)" >&2; exit 1; }
	# shellcheck disable=SC1091
	. "$out/dev.env"
}
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# RssAnon leaves out the pages of the bolt file the kernel maps in (and can
# drop): the process's own memory.
anon() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }

start_dev
sleep 1
idle=$(rss "$dev") idle_anon=$(anon "$dev")

# One sample a second: time, RSS, RssAnon.
(
	t0=$(date +%s)
	while kill -0 "$dev" 2>/dev/null; do
		echo "$(($(date +%s) - t0)),$(rss "$dev"),$(anon "$dev")" >>"$out/rss.csv"
		sleep 1
	done
) &
sampler=$!

for i in $(seq "$n"); do printf '{"argv":["true"],"group":"devmem","id":"t%05d"}\n' "$i"; done >"$out/tasks.jsonl"
t0=$(date +%s.%N)
"$bin" submit --batch "$out/tasks.jsonl" >/dev/null
t1=$(date +%s.%N)
"$bin" work --concurrency "$conc" --wait-time 1s --idle-exit 3s --log-level warn 2>>"$out/work.log" &
work=$!
wait "$work"
work=""
t2=$(date +%s.%N)
after=$(rss "$dev") after_anon=$(anon "$dev")
peak=$(cut -d, -f2 "$out/rss.csv" | sort -n | tail -1)
peak_anon=$(cut -d, -f3 "$out/rss.csv" | sort -n | tail -1)
done_n=$("$bin" poll --group devmem | grep -c $'\tsucceeded\t' || true)
kill "$sampler" 2>/dev/null || true
sampler=""

kill -INT "$dev"; wait "$dev" || true
du_data=$(du -sh "$out/data" | cut -f1)
start_dev
sleep 1
restarted=$(rss "$dev")

printf 'tasks %d (succeeded %d), worker concurrency %d\n' "$n" "$done_n" "$conc"
printf 'submit %.1fs, run %.1fs (%.0f tasks/s)\n' "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "$n / ($t2 - $t1)" | bc -l)"
printf 'endpoint RSS: idle %d KiB, peak %d KiB, after the run %d KiB, after a restart %d KiB\n' "$idle" "$peak" "$after" "$restarted"
printf 'endpoint RssAnon: idle %d KiB, peak %d KiB, after the run %d KiB\n' "$idle_anon" "$peak_anon" "$after_anon"
printf 'data dir %s; samples in %s/rss.csv\n' "$du_data" "$out"
