#!/usr/bin/env bash
# Runs the AWS CLI golden test (testdata/script/dev_awscli.txtar) with the
# CLI pinned in python/requirements-awscli.txt, the newest on PyPI (v1; v2 is
# not published there, and Debian's 2.9 predates AWS_ENDPOINT_URL_*). It
# carries its own botocore (awscli/botocore), so it cannot fight the boto3
# and botocore pins of the project's venv; it still gets a small venv of its
# own under .cache/awscli-venv, (re)built when the pin changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=.cache/awscli-venv
req=python/requirements-awscli.txt
if ! cmp -s "$req" "$venv/.installed" 2>/dev/null; then
	"${PYTHON:-python3}" -m venv "$venv"
	"$venv/bin/pip" install -q -r "$req"
	cp "$req" "$venv/.installed"
fi
PATH="$PWD/$venv/bin:$PATH" go test -count=1 -run 'TestScripts/dev_awscli$' .
