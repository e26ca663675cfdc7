#!/usr/bin/env bash
# Chaos run: 500 short tasks on 3 workers while one of them is killed with
# SIGKILL and restarted every few seconds. Reports tasks submitted, results
# present, tasks with more than one final result (must be 0), and tasks whose
# command ran more than once (only attempts whose worker died may re-run).
# Bounded: gives up after CHAOS_TIMEOUT seconds (default 300).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tasks="${TASKS:-500}"
limit="${CHAOS_TIMEOUT:-300}"
every="${KILL_EVERY:-3}"
make -s build
work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
echo "work dir: $work"

bin/taskiq-go dev --addr 127.0.0.1:0 --env-file "$work/dev.env" --log-level warn >/dev/null 2>"$work/dev.log" &
pids+=($!)
for _ in $(seq 100); do [ -f "$work/dev.env" ] && break; sleep 0.05; done
# shellcheck disable=SC1091
. "$work/dev.env"
mkdir -p "$work/runs"
wflags=(--concurrency 4 --visibility-timeout 4s --heartbeat 1s --wait-time 1s --kill-grace 1s --log-level warn)

for i in $(seq "$tasks"); do
	printf '{"id":"chaos-%04d","group":"chaos","argv":["sh","-c","echo $$ >> %s/runs/chaos-%04d; sleep 0.%d"]}\n' "$i" "$work" "$i" $((RANDOM % 5))
done | bin/taskiq-go submit --batch - >/dev/null
echo "submitted $tasks tasks"

bin/taskiq-go work "${wflags[@]}" --worker-id steady-1 2>>"$work/w1.log" &
pids+=($!)
bin/taskiq-go work "${wflags[@]}" --worker-id steady-2 2>>"$work/w2.log" &
pids+=($!)
# The victim logs at info level: its log names every task it started.
victim() { bin/taskiq-go work "${wflags[@]}" --log-level info --log-format json --worker-id "victim-$1" 2>>"$work/victim.log" & vpid=$!; }
kills=0
victim 0
start=$(date +%s)
while ! bin/taskiq-go poll --group chaos --wait --timeout "${every}s" >/dev/null 2>&1; do
	if [ $(($(date +%s) - start)) -gt "$limit" ]; then echo "gave up after ${limit}s"; break; fi
	kill -KILL "$vpid" 2>/dev/null || true
	wait "$vpid" 2>/dev/null || true
	kills=$((kills + 1))
	victim "$kills"
done
kill -KILL "$vpid" 2>/dev/null || true
elapsed=$(($(date +%s) - start))

bin/taskiq-go poll --group chaos --json >"$work/states.jsonl" || true
results=$(grep -c '"state":"succeeded"' "$work/states.jsonl" || true)
final=$(grep -cE '"state":"(succeeded|failed|cancelled|timed_out)"' "$work/states.jsonl" || true)
reran=0
for f in "$work"/runs/*; do
	[ "$(wc -l <"$f")" -gt 1 ] && reran=$((reran + 1))
done
# A re-run is legitimate only when the attempt before it was on a killed
# worker: every task whose result has attempt > 1 must owe it to a victim.
bad=0
while read -r line; do
	id=$(grep -oE '"id":"chaos-[0-9]+"' <<<"$line" | cut -d\" -f4)
	attempt=$(sed -E 's/.*"attempt":([0-9]+).*/\1/' <<<"$line")
	if [ "$attempt" -gt 1 ]; then
		grep -q "\"task_id\":\"$id\"" "$work/victim.log" || { bad=$((bad + 1)); echo "unexplained re-run: $id (attempt $attempt)"; }
	fi
done <"$work/states.jsonl"
echo "run took ${elapsed}s with $kills SIGKILLs of the victim worker"
echo "tasks submitted:                    $tasks"
echo "results present (final):            $final (succeeded: $results)"
echo "tasks with more than one result:    $(($final > $tasks ? $final - $tasks : 0))"
echo "tasks whose command ran >1 time:    $reran"
echo "re-runs not explained by a kill:    $bad"
[ "$final" -eq "$tasks" ] && [ "$bad" -eq 0 ]
