"""Checks of deploy/ that no off-the-shelf validator does (run by scripts/deploy-check.sh).

* The ECS task definition against botocore's own model of ECS
  RegisterTaskDefinition (the parameter validation boto3 runs before a call).
* One drain budget everywhere: --shutdown-grace + --kill-grace + margin equals
  the systemd TimeoutStopSec, the pod's terminationGracePeriodSeconds and the
  ECS container's stopTimeout, and every recipe passes the same worker flags.
* The KEDA ScaledObject, beyond its schema (deploy/check_crds.py): it targets the
  Deployment, has one aws-sqs-queue trigger per priority band of the queue
  (the names `taskiq-go init` creates) and a formula that sums them all.
* Every recipe installs the small binaries of cmd/ (taskiq-go-step, ...) in
  the directory of the taskiq-go it runs, where taskiq-go and dagster-taskiq
  look for them: the images build ./cmd/... into the same directory as
  taskiq-go and copy that directory whole; the systemd unit runs the
  taskiq-go that the wheel installed into its virtualenv's bin/.
* Every recipe passes --pass-env for dagster_taskiq.worker_cli.STEP_PASS_ENV:
  tasks get a clean environment, and Dagster steps need the instance, the AWS
  role and (run workers) the connection.
* Every deploy/ path that deploy/ and the READMEs name exists.
* deploy/iam/worker-policy.json is what `taskiq-go init --print-iam-policy
  --role work` prints for the recipes' queue and bucket, and keda-policy.json
  covers the same band queues.

Usage: python deploy/check.py TASKIQ_GO_BINARY
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from dagster_taskiq.worker_cli import STEP_PASS_ENV

DEPLOY = Path(__file__).resolve().parent
QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/taskiq"
BUCKET = "my-taskiq-results"
REGION = "eu-west-1"
#: Seconds allowed for releasing leases after the last task was stopped.
MARGIN = 15

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def seconds(value: str) -> int:
    m = re.fullmatch(r"(\d+)s", value)
    if not m:
        raise SystemExit(f"check.py: expected a duration in whole seconds, got {value!r}")
    return int(m.group(1))


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def band_queue_urls(url: str) -> list[str]:
    """The queues `taskiq-go init` creates for a logical queue (plan.Bands): the
    inbox, then one per priority level, 10 down to 0, then the one below 0."""
    return [url] + [f"{url}-p{p}" for p in range(10, -1, -1)] + [url + "-n"]


def ecs_valid(task_def: dict[str, Any]) -> str:
    """botocore's report of what RegisterTaskDefinition would refuse before sending; empty when valid."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(task_def, shape)
    return report.generate_report() if report.has_errors() else ""


def main() -> None:
    binary = sys.argv[1]

    # -- the worker flags of each recipe ---------------------------------------------
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", dockerfile)  # continuation lines
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", joined, re.M).group(1))  # type: ignore[union-attr]
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "taskiq-go-worker.service")
    service = unit["Service"]
    exec_args = [a for a in service["ExecStart"].split() if a != "\\"][2:]
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "worker.yaml").read_text()))
    by_kind = {d["kind"]: d for d in docs if d["metadata"]["name"] != "dagster-instance"}
    instance = yaml.safe_load(next(d for d in docs if d["metadata"]["name"] == "dagster-instance")["data"]["dagster.yaml"])
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    task_def = json.loads((DEPLOY / "ecs" / "worker-task-definition.json").read_text())
    ecs_container = task_def["containerDefinitions"][0]

    recipes = {"Dockerfile CMD": cmd, "systemd ExecStart": exec_args, "Deployment args": container["args"],
               "ECS command": ecs_container["command"]}
    for name, args in recipes.items():
        check(args == cmd, f"{name} passes the image's worker flags {cmd}")
    # Tasks get a clean environment: without these a Dagster step finds no
    # instance (DAGSTER_HOME), no Postgres password, no AWS role for S3 IO, and a
    # run worker no connection to submit its steps with.
    passed = [args[i + 1] for args in [cmd] for i, a in enumerate(args) if a == "--pass-env"]
    check(passed == list(STEP_PASS_ENV),
          f"the worker flags pass on what Dagster steps need (--pass-env {' '.join(STEP_PASS_ENV)}), got {passed}")
    budget = seconds(flag(cmd, "--shutdown-grace")) + seconds(flag(cmd, "--kill-grace")) + MARGIN
    check(service["KillSignal"] == "SIGTERM", "systemd stops the worker with SIGTERM")
    check(service["KillMode"] == "mixed", "systemd signals the worker alone (KillMode=mixed), not its tasks")
    check(int(service["TimeoutStopSec"]) == budget, f"systemd TimeoutStopSec is the drain budget {budget}s")
    check(pod["terminationGracePeriodSeconds"] == budget, f"terminationGracePeriodSeconds is {budget}s")
    check(ecs_container["stopTimeout"] == budget, f"ECS stopTimeout is {budget}s")
    check(ecs_container["stopTimeout"] <= 120, "ECS stopTimeout is within Fargate's 120 s limit")
    check("STOPSIGNAL SIGTERM" in dockerfile, "the image stops with SIGTERM")
    pip_line = next((ln for ln in joined.splitlines() if "pip install" in ln), "")
    lock = (DEPLOY.parent / "python" / "requirements.lock").read_text()
    pinned = {ln.split("==")[0].lower() for ln in lock.splitlines() if "==" in ln and not ln.startswith("#")}
    needed = ("dagster-postgres", "dagster-aws", "psycopg2-binary")
    check(all(re.search(rf"\s{name}(\s|$)", pip_line) and name in pinned for name in needed)
          and "-c /tmp/dagster-taskiq/requirements.lock" in pip_line and " -r " not in pip_line,
          f"the image installs {', '.join(needed)} at the lock's versions (-c), not the lock's test tools (-r)")
    check(re.search(r"^USER 10001", dockerfile, re.M) is not None, "the image runs as a non-root user")
    check(pod["securityContext"].get("runAsNonRoot") is True, "the pod runs as non-root")
    probe = container["livenessProbe"]["httpGet"]
    check(probe["path"] == "/healthz" and probe["port"] == "metrics", "liveness probes /healthz on the metrics port")
    live = container["livenessProbe"]
    check(live["periodSeconds"] * live["failureThreshold"] > budget,
          "the liveness probe (503 while draining) tolerates longer than the drain")
    metrics_port = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
    config = by_kind["ConfigMap"]["data"]
    check(metrics_port == [9090] and config["TASKIQ_GO_METRICS_ADDR"] == ":9090", "metrics served on :9090")

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    check(mounts.get("dagster-instance") == config["DAGSTER_HOME"], "the instance's dagster.yaml is in DAGSTER_HOME")
    check("postgres" in instance["storage"] and "S3ComputeLogManager" == instance["compute_logs"]["class"],
          "the workers' instance is Postgres with S3 compute logs: nothing on local disk")

    # -- the small binaries beside taskiq-go ---------------------------------------------
    commands = sorted(d.name for d in (DEPLOY.parent / "cmd").iterdir() if d.is_dir() and any(d.glob("*.go")))
    check("taskiq-go-step" in commands, f"cmd/ holds taskiq-go-step ({', '.join(commands)})")
    build = re.search(r"^RUN CGO_ENABLED=0 go build -trimpath .* -o (\S+) (.*)$", joined, re.M)
    check(build is not None and build.group(1).endswith("/") and build.group(2).split() == [".", "./cmd/..."],
          "the Dockerfile builds taskiq-go and every binary of cmd/ (static, -trimpath) into one directory")
    out_dir = build.group(1) if build else "?"
    check(re.search(rf"^COPY --from=build {re.escape(out_dir)} /usr/local/bin/$", dockerfile, re.M) is not None
          and re.search(r'^ENTRYPOINT \[.*"taskiq-go"', dockerfile, re.M) is not None,
          f"the Dockerfile copies {out_dir} whole into /usr/local/bin/, the taskiq-go on its PATH")
    static = (DEPLOY / "docker" / "Dockerfile.static").read_text()
    check(re.search(r"^COPY --chmod=0755 bin/ /usr/local/bin/$", static, re.M) is not None
          and '"/usr/local/bin/taskiq-go"' in static,
          "Dockerfile.static copies the staged bin/ (scripts/image.sh: taskiq-go and cmd/) beside its entrypoint")
    install = re.search(r"python3 -m venv (\S+) && \1/bin/pip install dagster-taskiq", (DEPLOY / "systemd" / "taskiq-go-worker.service").read_text())
    exe = service["ExecStart"].split()[0]
    check(install is not None and exe == f"{install.group(1)}/bin/taskiq-go",
          f"the systemd unit runs the taskiq-go the wheel installed with cmd/'s binaries ({exe})")

    # -- KEDA ---------------------------------------------------------------------------
    scaled = by_kind["ScaledObject"]["spec"]
    check(scaled["scaleTargetRef"]["name"] == by_kind["Deployment"]["metadata"]["name"], "ScaledObject targets it")
    triggers = scaled["triggers"]
    urls = [t["metadata"]["queueURL"] for t in triggers]
    check(all(t["type"] == "aws-sqs-queue" for t in triggers), "every trigger is aws-sqs-queue")
    check(urls == band_queue_urls(config["TASKIQ_GO_QUEUE_URL"]), "one trigger per queue of the logical queue (inbox and levels)")
    names = [t["name"] for t in triggers]
    formula = scaled["advanced"]["scalingModifiers"]["formula"]
    check(sorted(re.findall(r"[a-z]\w*", formula)) == sorted(names), f"the formula {formula!r} sums every trigger")
    check(set(formula.replace(" ", "")) <= set("+" + "".join(names)), "the formula only adds")
    auth = by_kind["TriggerAuthentication"]["metadata"]["name"]
    check(all(t["authenticationRef"]["name"] == auth for t in triggers), "every trigger uses the TriggerAuthentication")

    # -- ECS ----------------------------------------------------------------------------
    problems = ecs_valid(task_def)
    check(not problems, "the ECS task definition validates against botocore's RegisterTaskDefinition model"
          + (f":\n{problems}" if problems else ""))

    # -- IAM ----------------------------------------------------------------------------
    env = {**os.environ, "TASKIQ_GO_QUEUE_URL": QUEUE_URL, "TASKIQ_GO_BUCKET": BUCKET, "TASKIQ_GO_REGION": REGION}
    for name in ("TASKIQ_GO_CONFIG", "TASKIQ_GO_PREFIX", "AWS_ENDPOINT_URL", "TASKIQ_GO_ENDPOINT_URL"):
        env.pop(name, None)
    printed = subprocess.run([binary, "init", "--print-iam-policy", "--role", "work"], env=env,
                             capture_output=True, text=True, check=True).stdout
    stored = (DEPLOY / "iam" / "worker-policy.json").read_text()
    check(json.loads(printed) == json.loads(stored), "iam/worker-policy.json is `taskiq-go init --print-iam-policy --role work`")
    check(config["TASKIQ_GO_QUEUE_URL"] == QUEUE_URL and config["TASKIQ_GO_BUCKET"] == BUCKET, "same queue and bucket")
    arns = [f"arn:aws:sqs:{REGION}:123456789012:{u.rsplit('/', 1)[1]}" for u in band_queue_urls(QUEUE_URL)]
    keda = json.loads((DEPLOY / "iam" / "keda-policy.json").read_text())
    check(keda["Statement"][0]["Resource"] == arns, "iam/keda-policy.json covers the inbox and every level queue")
    for path in sorted((DEPLOY / "iam").glob("*.json")):
        doc = json.loads(path.read_text())
        check(doc.get("Version") == "2012-10-17" and bool(doc.get("Statement")), f"{path.name} is an IAM policy document")

    # -- what the recipes and READMEs name ---------------------------------------------
    root = DEPLOY.parent
    texts = [p for p in DEPLOY.rglob("*") if p.is_file() and "schemas" not in p.parts]
    texts += [root / "README.md", root / "python" / "README.md"]
    named = re.compile(r"deploy/(?:(?:docker|systemd|kubernetes|ecs|iam|schemas)/[\w./*-]*[\w*]|[\w-]+\.(?:py|md))")
    for path in texts:
        for ref in sorted(set(named.findall(path.read_text(errors="replace")))):
            exists = any(root.glob(ref)) if "*" in ref else (root / ref).exists()
            check(exists, f"{ref}, named in {path.relative_to(root)}, exists")

    if failures:
        raise SystemExit(f"deploy/check.py: {len(failures)} check(s) failed")


if __name__ == "__main__":
    main()
