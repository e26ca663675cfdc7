"""Reading back which taskiq-go worker ran each step of a run."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DagsterEventType, DagsterInstance

#: Metadata keys of the engine event the executor writes when a step attempt starts on a worker.
WORKER_HOST_KEY = "taskiq worker host"
WORKER_ID_KEY = "taskiq worker id"
WORKER_PID_KEY = "taskiq worker pid"
TASK_ID_KEY = "taskiq task id"


@dataclass(frozen=True)
class StepWorker:
    """One step attempt and the worker that ran it."""

    step_key: str
    worker_id: str
    host: str
    task_id: str


def step_workers(instance: DagsterInstance, run_id: str) -> dict[str, list[StepWorker]]:
    """Step key -> the workers its attempts ran on, in order, from the run's event log."""
    found: dict[str, list[StepWorker]] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        metadata = event.engine_event_data.metadata or {}
        if WORKER_ID_KEY not in metadata:
            continue
        text = {key: str(value.value) for key, value in metadata.items()}
        found.setdefault(event.step_key, []).append(
            StepWorker(event.step_key, text[WORKER_ID_KEY], text.get(WORKER_HOST_KEY, ""), text.get(TASK_ID_KEY, ""))
        )
    return found
