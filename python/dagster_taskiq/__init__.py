"""dagster-taskiq: run Dagster steps and runs on taskiq-go workers fed by AWS SQS.

``taskiq_executor`` runs each step as a taskiq-go task; ``TaskiqRunLauncher``
runs each whole run as one. Both reach the queue and the result store only by
calling the ``taskiq-go`` binary (see :class:`TaskiqCli`).
"""

from dagster_taskiq.cli import (
    WIRE_VERSION,
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

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

try:
    #: The project's one version, the same string ``taskiq-go version`` prints (from the git tag).
    __version__ = _dist_version("dagster-taskiq")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0.dev0"

__all__ = [
    "PRIORITY_TAG",
    "QUEUE_TAG",
    "RUN_PRIORITY_TAG",
    "TASK_ID_TAG",
    "WIRE_VERSION",
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
