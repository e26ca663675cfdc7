"""Dagster tags that steer taskiq-go tasks, and how task ids are formed."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping

#: Step tag: the logical queue the step's task goes to.
QUEUE_TAG = "dagster-taskiq/queue"
#: Step tag: the step's task priority (higher runs first).
PRIORITY_TAG = "dagster-taskiq/priority"
#: Run tag: added to the priority of every task of the run.
RUN_PRIORITY_TAG = "dagster-taskiq/run_priority"
#: Run tag written by the run launcher: the id of the task that runs the run.
TASK_ID_TAG = "dagster-taskiq/task_id"

MIN_PRIORITY, MAX_PRIORITY = -1000, 1000

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")


def _int_tag(tags: Mapping[str, str], name: str) -> int:
    value = tags.get(name)
    if value is None or str(value).strip() == "":
        return 0
    try:
        return int(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"tag {name} must be an integer, got {value!r}") from exc


def task_priority(step_tags: Mapping[str, str], run_tags: Mapping[str, str], default: int) -> int:
    """Step priority (or the configured default) plus the run's priority, clamped to taskiq-go's range."""
    base = _int_tag(step_tags, PRIORITY_TAG) if PRIORITY_TAG in step_tags else default
    total = base + _int_tag(run_tags, RUN_PRIORITY_TAG)
    return max(MIN_PRIORITY, min(MAX_PRIORITY, total))


def task_queue(tags: Mapping[str, str], default: str | None) -> str | None:
    """The queue named by the tag, else the configured default (None: taskiq-go's default)."""
    value = tags.get(QUEUE_TAG)
    return value.strip() if value and value.strip() else default


def step_task_prefix(run_id: str, step_key: str, attempt: int) -> str:
    """The stable part of a step attempt's task id: run, readable step key, hash, attempt.

    Step keys may hold characters taskiq-go does not allow in ids (``[`` in
    dynamic outputs), so a slug is kept for reading and a hash for uniqueness.
    """
    slug = _UNSAFE.sub("_", step_key).strip("._:-")[:80] or "step"
    digest = hashlib.sha256(f"{run_id}\0{step_key}".encode()).hexdigest()[:8]
    return f"{_safe(run_id)}.{slug}.{digest}.a{attempt}"


def new_step_task_id(run_id: str, step_key: str, attempt: int) -> str:
    """A fresh id for one launch of a step attempt; sorts after earlier launches of it."""
    return f"{step_task_prefix(run_id, step_key, attempt)}.{time.time_ns() // 1000:x}"


def run_task_id(run_id: str, resume_attempt: int | None = None) -> str:
    """The id of the task that runs (or resumes) a whole run.

    Launching is idempotent per run; each resume gets its own id (numbered by
    Dagster's resume attempt, else by time) so it is not mistaken for a resubmit.
    """
    if resume_attempt is None:
        return f"{_safe(run_id)}.run"
    return f"{_safe(run_id)}.resume{resume_attempt or f'-{time.time_ns() // 1000:x}'}"


def _safe(value: str) -> str:
    return _UNSAFE.sub("_", value)[:100] or "x"
