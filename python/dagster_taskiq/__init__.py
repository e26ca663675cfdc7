"""dagster-taskiq: run Dagster steps and runs on taskiq-go workers fed by AWS SQS.

``taskiq_executor`` runs each step as a taskiq-go task; ``TaskiqRunLauncher``
runs each whole run as one. Both reach the queue and the result store only by
calling the ``taskiq-go`` binary (see :class:`TaskiqCli`).
"""

from dagster_taskiq.cli import (
    TaskiqBinaryNotFound,
    TaskiqCli,
    TaskiqCliError,
    TaskiqCliTimeout,
    TaskiqError,
    TaskStatus,
)
from dagster_taskiq.config import TaskiqConfigError, TaskiqSettings
from dagster_taskiq.executor import taskiq_executor
from dagster_taskiq.launcher import TaskiqRunLauncher
from dagster_taskiq.report import StepWorker, step_workers
from dagster_taskiq.step_handler import TaskiqStepHandler
from dagster_taskiq.tags import PRIORITY_TAG, QUEUE_TAG, RUN_PRIORITY_TAG, TASK_ID_TAG

__version__ = "0.1.0"

__all__ = [
    "PRIORITY_TAG",
    "QUEUE_TAG",
    "RUN_PRIORITY_TAG",
    "TASK_ID_TAG",
    "StepWorker",
    "TaskStatus",
    "TaskiqBinaryNotFound",
    "TaskiqCli",
    "TaskiqCliError",
    "TaskiqCliTimeout",
    "TaskiqConfigError",
    "TaskiqError",
    "TaskiqRunLauncher",
    "TaskiqSettings",
    "TaskiqStepHandler",
    "step_workers",
    "taskiq_executor",
]
