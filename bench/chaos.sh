#!/usr/bin/env bash
# Chaos run: TASKS tasks (default 300) of 1 to 3 s on three workers, one of
# them SIGKILLed every KILL_EVERY seconds (default 2) for KILL_FOR seconds
# (default 60), in turn, and restarted at once. Each task logs its own start
# and end with its pid, and at its start an "overlap" line for any earlier
# copy of itself still alive. Checks, and exits non-zero unless all hold:
#   - every task ends with one final result;
#   - no two copies of a task ever ran at the same time (no overlap line,
#     and no copy started before an earlier one ended or was gone);
#   - every `succeeded` result belongs to an attempt whose command
#     completed (the pid the worker logged for that attempt logged its end).
# Bounded: gives up after CHAOS_TIMEOUT seconds (default 300).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tasks="${TASKS:-300}"
limit="${CHAOS_TIMEOUT:-300}"
every="${KILL_EVERY:-2}"
kill_for="${KILL_FOR:-60}"
make -s build
work="$(mktemp -d)"
pids=()
wpid=(0 0 0)
cleanup() {
	kill "${pids[@]}" "${wpid[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT
echo "work dir: $work"

bin/taskiq-go dev --addr 127.0.0.1:0 --env-file "$work/dev.env" --log-level warn >/dev/null 2>"$work/dev.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/dev.env" ] && break; sleep 0.05; done
# shellcheck disable=SC1091
. "$work/dev.env"
mkdir -p "$work/runs"
cat >"$work/task.sh" <<'TASK'
# task.sh FILE SECONDS: one copy of a chaos task.
f=$1
now() { date +%s%N; }
if [ -f "$f" ]; then
	for p in $(awk '$1 == "start" { print $2 }' "$f"); do
		grep -q "^end $p " "$f" && continue
		kill -0 "$p" 2>/dev/null && echo "overlap $$ $p $(now)" >>"$f"
	done
fi
echo "start $$ $(now)" >>"$f"
sleep "$2"
echo "end $$ $(now)" >>"$f"
TASK
wflags=(--concurrency 4 --visibility-timeout 4s --heartbeat 1s --wait-time 1s --kill-grace 1s --log-level info --log-format json)

for i in $(seq -f '%04g' "$tasks"); do
	printf '{"id":"chaos-%s","group":"chaos","argv":["sh","%s/task.sh","%s/runs/chaos-%s","%d.%d"]}\n' \
		"$i" "$work" "$work" "$i" $((1 + RANDOM % 2)) $((RANDOM % 10))
done | bin/taskiq-go submit --batch - >/dev/null
echo "submitted $tasks tasks"

start_worker() { # SLOT
	bin/taskiq-go work "${wflags[@]}" --worker-id "w$1-$(date +%s%N)" 2>>"$work/w$1.log" &
	wpid[$1]=$!
}
for s in 0 1 2; do start_worker "$s"; done
start=$(date +%s)
kills=0
while [ $(($(date +%s) - start)) -lt "$kill_for" ]; do
	sleep "$every"
	s=$((kills % 3))
	kill -KILL "${wpid[$s]}" 2>/dev/null || true
	wait "${wpid[$s]}" 2>/dev/null || true
	kills=$((kills + 1))
	start_worker "$s"
done
echo "killed a worker $kills times in ${kill_for}s; waiting for the rest"
bin/taskiq-go poll --group chaos --wait --timeout "$((limit - kill_for))s" >/dev/null 2>&1 || true
elapsed=$(($(date +%s) - start))
bin/taskiq-go poll --group chaos --json >"$work/states.jsonl" || true
for s in 0 1 2; do kill -TERM "${wpid[$s]}" 2>/dev/null || true; done

final=$(grep -cE '"state":"(succeeded|failed|cancelled|timed_out)"' "$work/states.jsonl" || true)
succeeded=$(grep -c '"state":"succeeded"' "$work/states.jsonl" || true)
lost=$(grep -c '"state":"lost"' "$work/states.jsonl" || true)
copies=$(cat "$work"/runs/* | grep -c '^start' || true)
completed=$(cat "$work"/runs/* | grep -c '^end' || true)
overlaps=$(cat "$work"/runs/* | grep -c '^overlap' || true)
reran=0
for f in "$work"/runs/*; do
	[ "$(grep -c '^start' "$f")" -gt 1 ] && reran=$((reran + 1))
done
# A copy must not start before the one before it has ended or died: a copy
# that logged no end was stopped, and the overlap check at the next start
# found it gone.
# Each succeeded result's attempt: the pid its worker logged at "task
# started" must have logged its end.
cat "$work"/w*.log | grep '"message":"task started"' |
	sed -E 's/.*"task_id":"([^"]+)".*"attempt":([0-9]+).*"pid":([0-9]+).*/\1 \2 \3/' >"$work/started.txt"
unfinished=0
while read -r line; do
	grep -q '"state":"succeeded"' <<<"$line" || continue
	id=$(sed -E 's/^\{"id":"([^"]+)".*/\1/' <<<"$line")
	attempt=$(sed -E 's/.*"attempt":([0-9]+).*/\1/' <<<"$line")
	pid=$(awk -v id="$id" -v a="$attempt" '$1 == id && $2 == a { print $3 }' "$work/started.txt" | tail -1)
	if [ -z "$pid" ] || ! grep -q "^end $pid " "$work/runs/$id"; then
		unfinished=$((unfinished + 1))
		echo "succeeded without a completed command: $id attempt $attempt (pid ${pid:-?})"
	fi
done <"$work/states.jsonl"
echo "run took ${elapsed}s with $kills SIGKILLs"
echo "tasks submitted:                         $tasks"
echo "final results:                           $final (succeeded: $succeeded, lost: $lost)"
echo "copies started / completed:              $copies / $completed"
echo "tasks whose command ran more than once:  $reran"
echo "overlapping copies:                      $overlaps"
echo "succeeded without a completed command:   $unfinished"
[ "$final" -eq "$tasks" ] && [ "$overlaps" -eq 0 ] && [ "$unfinished" -eq 0 ]
