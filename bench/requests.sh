#!/usr/bin/env bash
# Requests per task, end to end: submit a batch of N tasks, run one worker,
# and `poll --wait` all the ids, every AWS request going through a counting
# proxy (bench/requests) that names each by service and operation. Runs on
# the embedded dev endpoint and on moto_server (bench/requests.sh dev|moto;
# default both). Setup (queues, bucket) is not counted.
#
#   TASKS=200 bash bench/requests.sh [dev|moto]...
#
# ARGV (JSON, default ["true"]) is each task's command, e.g. '["sleep","30"]'
# with TASKS=8 for long tasks (what heartbeats cost); WORK_FLAGS are added to
# the worker's flags. IDS=explicit gives every task an id in the batch
# (rq-0001...), as Dagster does; by default submit generates them and the
# script reads them from its --json output. IDLE=SECONDS runs no task: one worker idles that long
# and the counts are an idle worker's (per minute: divide by SECONDS/60).
#
# moto needs its venv: VENV=/path/to/.venv (see scripts/moto.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tasks="${TASKS:-200}"
emulators=("$@")
[ ${#emulators[@]} -gt 0 ] || emulators=(dev moto)
make -s build
work="$(mktemp -d)"
go build -o "$work/countproxy" ./bench/requests
cleanup() {
	# Every endpoint, proxy and worker a run started, also when it failed.
	for f in "$work"/*/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	jobs -p | xargs -r kill 2>/dev/null || true
	wait 2>/dev/null || true
	if [ -n "${moto_started:-}" ]; then bash scripts/moto.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

run() { # EMULATOR
	local em=$1 dir="$work/$1"
	if [ "$em" = moto ]; then moto_started=1; fi
	mkdir -p "$dir"
	(
		export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
		if [ "$em" = dev ]; then
			bin/taskiq-go dev --addr 127.0.0.1:0 --env-file "$dir/dev.env" --log-level warn >/dev/null 2>"$dir/dev.log" &
			echo $! >"$dir/endpoint.pid"
			for _ in $(seq 200); do [ -s "$dir/dev.env" ] && break; sleep 0.05; done
			# shellcheck disable=SC1091
			. "$dir/dev.env"
		else
			endpoint="$(bash scripts/moto.sh start)"
			export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
			name="rq$RANDOM$RANDOM"
			export TASKIQ_GO_QUEUE_URL="$endpoint/123456789012/$name" TASKIQ_GO_BUCKET="$name"
			bin/taskiq-go init --expire-days 0 >/dev/null
		fi
		"$work/countproxy" -target "$AWS_ENDPOINT_URL" -env-file "$dir/proxy.env" 2>"$dir/proxy.log" &
		echo $! >"$dir/proxy.pid"
		for _ in $(seq 200); do [ -s "$dir/proxy.env" ] && break; sleep 0.05; done
		# shellcheck disable=SC1091
		. "$dir/proxy.env"
		curl -fsS "$AWS_ENDPOINT_URL/__counts/reset" >/dev/null
		if [ -n "${IDLE:-}" ]; then
			# shellcheck disable=SC2086
			bin/taskiq-go work --concurrency 4 --idle-exit "${IDLE}s" --log-level warn ${WORK_FLAGS:-} 2>"$dir/work.log"
			echo "== $em: one idle worker for ${IDLE}s"
			curl -fsS "$AWS_ENDPOINT_URL/__counts/report"
			kill "$(cat "$dir/proxy.pid")" 2>/dev/null || true
			if [ -f "$dir/endpoint.pid" ]; then kill "$(cat "$dir/endpoint.pid")" 2>/dev/null || true; fi
			exit 0
		fi
		ids=()
		if [ "${IDS:-generated}" = explicit ]; then
			for i in $(seq -f '%04g' "$tasks"); do ids+=("rq-$i"); done
			printf '{"id":"%s","argv":'"${ARGV:-[\"true\"]}"'}\n' "${ids[@]}" | bin/taskiq-go submit --batch - >/dev/null
		else
			# The ids submit generates, as it prints them.
			mapfile -t ids < <(for _ in $(seq "$tasks"); do echo '{"argv":'"${ARGV:-[\"true\"]}"'}'; done |
				bin/taskiq-go submit --batch - --json | sed 's/.*"id":"\([^"]*\)".*/\1/')
			[ "${#ids[@]}" = "$tasks" ] || { echo "requests.sh: submit printed ${#ids[@]} ids of $tasks" >&2; exit 1; }
		fi
		# shellcheck disable=SC2086
		bin/taskiq-go work --concurrency "${CONCURRENCY:-4}" --max-tasks "$tasks" --log-level warn ${WORK_FLAGS:-} 2>"$dir/work.log" &
		wpid=$!
		echo "$wpid" >"$dir/work.pid"
		bin/taskiq-go poll --wait --timeout "${POLL_TIMEOUT:-900s}" "${ids[@]}" >"$dir/poll.out"
		wait "$wpid"
		echo "== $em: $tasks tasks of ${ARGV:-[\"true\"]}, ${IDS:-generated} ids (batch submit, one worker at concurrency ${CONCURRENCY:-4}, poll --wait of all ids)"
		curl -fsS "$AWS_ENDPOINT_URL/__counts/report?tasks=$tasks"
		kill "$(cat "$dir/proxy.pid")" 2>/dev/null || true
		if [ -f "$dir/endpoint.pid" ]; then kill "$(cat "$dir/endpoint.pid")" 2>/dev/null || true; fi
	)
}
for em in "${emulators[@]}"; do run "$em"; done
