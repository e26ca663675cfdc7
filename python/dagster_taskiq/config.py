"""Configuration shared by the executor and the run launcher.

The names follow what Celery/SQS users already know (``queue_url``,
``region_name``, ``endpoint_url``); the environment variables
``DAGSTER_TASKIQ_SQS_QUEUE_URL``, ``DAGSTER_TASKIQ_SQS_ENDPOINT_URL``,
``DAGSTER_TASKIQ_S3_BUCKET`` and ``DAGSTER_TASKIQ_S3_PREFIX`` (beside
taskiq-go's own ``TASKIQ_GO_*``) are honoured as fallbacks, so that the
environment alone can configure a deployment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import Permissive, Array, Field, IntSource, Noneable, StringSource
from dagster._core.utils import parse_env_var

from dagster_taskiq.cli import ConnectionSettings, TaskiqCli, TaskiqError
from dagster_taskiq.tags import task_queue

QUEUE_URL_ENV_VARS = ("TASKIQ_GO_QUEUE_URL", "DAGSTER_TASKIQ_SQS_QUEUE_URL")
ENDPOINT_URL_ENV_VARS = ("AWS_ENDPOINT_URL", "DAGSTER_TASKIQ_SQS_ENDPOINT_URL")
BUCKET_ENV_VARS = ("TASKIQ_GO_BUCKET", "DAGSTER_TASKIQ_S3_BUCKET")
PREFIX_ENV_VARS = ("TASKIQ_GO_PREFIX", "DAGSTER_TASKIQ_S3_PREFIX")


class TaskiqConfigError(TaskiqError):
    """The dagster-taskiq configuration is missing something or is inconsistent."""


def _optional_string(description: str) -> Field:
    """A string setting that may be left out (None), or taken from the environment."""
    return Field(Noneable(StringSource), is_required=False, default_value=None, description=description)


def connection_config_schema() -> dict[str, Field]:
    """Config fields for reaching taskiq-go's queue and store, and for its tasks."""
    return {
        "queue_url": _optional_string(
            "SQS queue URL. Defaults to $TASKIQ_GO_QUEUE_URL or $DAGSTER_TASKIQ_SQS_QUEUE_URL.",
        ),
        "region_name": _optional_string("AWS region."),
        "endpoint_url": _optional_string(
            "SQS/S3 endpoint URL (e.g. the one `taskiq-go dev` prints). Defaults "
            "to $AWS_ENDPOINT_URL or $DAGSTER_TASKIQ_SQS_ENDPOINT_URL.",
        ),
        "bucket": _optional_string(
            "S3 bucket for results. Defaults to $TASKIQ_GO_BUCKET or $DAGSTER_TASKIQ_S3_BUCKET.",
        ),
        "prefix": _optional_string(
            "Key prefix in the bucket. Defaults to $TASKIQ_GO_PREFIX or $DAGSTER_TASKIQ_S3_PREFIX, "
            "else taskiq-go's default (taskiq).",
        ),
        "config_file": _optional_string(
            "taskiq-go YAML config file (its keys: queue_url, bucket, prefix, region, "
            "profile, endpoint_url...). Defaults to $TASKIQ_GO_CONFIG.",
        ),
        "binary": _optional_string(
            "Path of the taskiq-go binary. Defaults to $TASKIQ_GO_BIN, then PATH.",
        ),
        "queue": _optional_string(
            "Logical queue tasks go to unless the tag dagster-taskiq/queue says otherwise.",
        ),
        "priority": Field(
            IntSource,
            is_required=False,
            default_value=0,
            description="Task priority (higher runs first) unless the tag dagster-taskiq/priority "
            "says otherwise; the run tag dagster-taskiq/run_priority is added to it.",
        ),
        "env_vars": Field(
            Array(str),
            is_required=False,
            default_value=[],
            description="Environment variables for the task: NAME (copied from this process) or NAME=value.",
        ),
        "secrets": Field(
            Permissive(),
            is_required=False,
            default_value={},
            description="Secret environment variables by reference, NAME: REF with REF env:VAR, "
            "ssm:/path or secretsmanager:ID: the worker resolves each when the task starts, and "
            "only the reference travels and is stored.",
        ),
        "working_directory": _optional_string(
            "Working directory of the task on the worker; the worker's own by default.",
        ),
        "task_timeout": _optional_string(
            "Longest one task may run, as a duration such as 2h or 90s; no limit by default.",
        ),
        "call_timeout": Field(
            float,
            is_required=False,
            default_value=60.0,
            description="Seconds one call of the taskiq-go binary may take.",
        ),
    }


@dataclass(frozen=True)
class TaskiqSettings:
    """Resolved configuration: how to call the binary and what every task gets."""

    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    binary: str | None = None
    queue: str | None = None
    priority: int = 0
    env_vars: tuple[str, ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()
    working_directory: str | None = None
    task_timeout: str | None = None
    call_timeout: float = 60.0
    fast_exit: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TaskiqSettings:
        return cls(
            connection=ConnectionSettings(
                queue_url=config.get("queue_url"),
                region_name=config.get("region_name"),
                endpoint_url=config.get("endpoint_url"),
                bucket=config.get("bucket"),
                prefix=config.get("prefix"),
                config_file=config.get("config_file"),
            ),
            binary=config.get("binary"),
            queue=config.get("queue"),
            priority=int(config.get("priority") or 0),
            env_vars=tuple(config.get("env_vars") or ()),
            secrets=tuple(sorted((str(k), str(v)) for k, v in (config.get("secrets") or {}).items())),
            working_directory=config.get("working_directory"),
            task_timeout=config.get("task_timeout"),
            call_timeout=float(config.get("call_timeout") or 60.0),
            fast_exit=bool(config.get("fast_exit", False)),
        )

    def resolved_connection(self) -> ConnectionSettings:
        """Fills queue URL, endpoint, bucket and prefix from the environment; fails naming a missing setting."""
        c = self.connection
        queue_url = c.queue_url or _first_env(QUEUE_URL_ENV_VARS)
        config_file = c.config_file or os.environ.get("TASKIQ_GO_CONFIG")
        if not queue_url and not config_file:
            raise TaskiqConfigError(
                "dagster-taskiq: no SQS queue URL configured: set `queue_url` in the executor or "
                "run launcher config, or the environment variable TASKIQ_GO_QUEUE_URL "
                "(or DAGSTER_TASKIQ_SQS_QUEUE_URL), or name a taskiq-go `config_file` that sets it"
            )
        bucket = c.bucket or _first_env(BUCKET_ENV_VARS)
        if not bucket and not config_file:
            raise TaskiqConfigError(
                "dagster-taskiq: no S3 bucket configured: set `bucket` in the executor or run "
                "launcher config, or the environment variable DAGSTER_TASKIQ_S3_BUCKET (or "
                "TASKIQ_GO_BUCKET), or name a taskiq-go `config_file` that sets it"
            )
        return ConnectionSettings(
            queue_url=queue_url,
            region_name=c.region_name,
            endpoint_url=c.endpoint_url or _first_env(ENDPOINT_URL_ENV_VARS),
            bucket=bucket,
            prefix=c.prefix or _first_env(PREFIX_ENV_VARS),
            config_file=config_file,
        )

    def make_cli(self) -> TaskiqCli:
        """Checks the settings and returns the wrapper that calls the binary."""
        return TaskiqCli(binary=self.binary, connection=self.resolved_connection(), timeout=self.call_timeout)

    def task_spec(
        self,
        task_id: str,
        argv: Sequence[str],
        *,
        group: str,
        env: Mapping[str, str],
        labels: Mapping[str, str],
        priority: int,
        queue_tags: Mapping[str, str],
    ) -> dict[str, object]:
        """A task document with what this config gives every task: its environment,
        queue (the ``dagster-taskiq/queue`` tag of ``queue_tags``, else ``queue``),
        working directory and timeout. Retries belong to Dagster, so one attempt."""
        spec: dict[str, object] = {
            "id": task_id,
            "argv": list(argv),
            "env": self.task_env(env),
            "max_attempts": 1,
            "priority": priority,
            "group": group,
            "labels": dict(labels),
        }
        if self.secrets:
            spec["secrets"] = dict(self.secrets)
        queue = task_queue(queue_tags, self.queue)
        if queue:
            spec["queue"] = queue
        if self.working_directory:
            spec["dir"] = self.working_directory
        if self.task_timeout:
            spec["timeout"] = self.task_timeout
        return spec

    def task_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a task adds to the worker's: ``env_vars`` plus ``extra``."""
        env: dict[str, str] = {}
        for item in self.env_vars:
            if "=" in item:
                name, value = parse_env_var(item)
            else:
                name, value = item, os.environ.get(item, "")
                if item not in os.environ:
                    continue
            env[name] = value
        env.update(extra or {})
        return env


def _first_env(names: Sequence[str]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None
