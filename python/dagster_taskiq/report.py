"""Reading back which taskiq-go worker ran each step of a run."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DagsterEventType, DagsterInstance

#: Metadata keys of the engine event the executor writes when a step attempt starts on a worker.
WORKER_HOST_KEY = "taskiq worker host"
WORKER_ID_KEY = "taskiq worker id"
WORKER_PID_KEY = "taskiq worker pid"
TASK_ID_KEY = "taskiq task id"
#: Metadata key of the run event that reports several step attempts at once:
#: a JSON list of {step_key, worker_id, host, pid, task_id, attempt}.
STEP_WORKERS_KEY = "taskiq step workers"


@dataclass(frozen=True)
class StepWorker:
    """One step attempt and the worker that ran it."""

    step_key: str
    worker_id: str
    host: str
    task_id: str


def step_workers(instance: DagsterInstance, run_id: str) -> dict[str, list[StepWorker]]:
    """Step key -> the workers its attempts ran on, in order, from the run's event log.

    The executor writes a step's own engine event when it finds one step
    started, and one run event listing them all when it finds several.
    """
    found: dict[str, list[StepWorker]] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None:
            continue
        metadata = event.engine_event_data.metadata or {}
        if not event.step_key:
            listed = metadata.get(STEP_WORKERS_KEY)
            rows = listed.value if listed is not None else None
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict) and row.get("step_key") and row.get("worker_id"):
                    key = str(row["step_key"])
                    found.setdefault(key, []).append(
                        StepWorker(key, str(row["worker_id"]), str(row.get("host") or ""), str(row.get("task_id") or ""))
                    )
            continue
        if WORKER_ID_KEY not in metadata:
            continue
        text = {key: str(value.value) for key, value in metadata.items()}
        found.setdefault(event.step_key, []).append(
            StepWorker(event.step_key, text[WORKER_ID_KEY], text.get(WORKER_HOST_KEY, ""), text.get(TASK_ID_KEY, ""))
        )
    return found
