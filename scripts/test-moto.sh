#!/usr/bin/env bash
# Runs the golden tests against moto_server, a second SQS+S3 implementation
# independent of the embedded one, so that the scripts prove behaviour of
# the real protocols and not of one emulator's quirks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
endpoint="$(bash scripts/moto.sh start)"
trap 'bash scripts/moto.sh stop >/dev/null 2>&1 || true' EXIT
echo "test-moto: moto_server at $endpoint" >&2
TASKIQ_GO_TEST_ENDPOINT="$endpoint" go test -count=1 -timeout 30m -run 'TestScripts' .
# The embedded endpoint's own SQS and S3 tests, as conformance tests: where
# moto and the embedded endpoint differ, the test says which is right.
TASKIQ_GO_TEST_ENDPOINT="$endpoint" go test -count=1 -run 'TestSQS|TestS3$' ./devserver
