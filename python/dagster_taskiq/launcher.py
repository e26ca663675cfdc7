"""``TaskiqRunLauncher``: each Dagster run executes as one taskiq-go task."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import Field, IntSource
from dagster import _check as check
from dagster._core.events import EngineEventData
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    ResumeRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, DagsterRun
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from typing_extensions import Self

from dagster_taskiq.cli import EXIT_UNKNOWN_TASK, TaskiqCli, TaskiqCliError, TaskStatus
from dagster_taskiq.config import TaskiqSettings, connection_config_schema
from dagster_taskiq.tags import TASK_ID_TAG, run_task_id, task_priority

#: How a task's state reads as a Dagster run worker status.
WORKER_STATUS: Mapping[str, WorkerStatus] = {
    "queued": WorkerStatus.RUNNING,
    "running": WorkerStatus.RUNNING,
    "succeeded": WorkerStatus.SUCCESS,
    "failed": WorkerStatus.FAILED,
    "cancelled": WorkerStatus.FAILED,
    "timed_out": WorkerStatus.FAILED,
    "lost": WorkerStatus.FAILED,
    # Its message is in the dead-letter queue: nothing runs it until it is
    # redriven, so the run is failed (or resumed) by monitoring.
    "dead_letter": WorkerStatus.FAILED,
}


class TaskiqRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as a taskiq-go task running ``dagster api execute_run``.

    Configure it in ``dagster.yaml``::

        run_launcher:
          module: dagster_taskiq
          class: TaskiqRunLauncher
          config:
            queue_url: {env: TASKIQ_GO_QUEUE_URL}
            bucket: my-taskiq-results

    The task id is recorded in the run tag ``dagster-taskiq/task_id``; the run
    tags ``dagster-taskiq/queue`` and ``dagster-taskiq/run_priority`` route and
    order the run's task.

    Under run monitoring: a run without that tag (executed in-process, not
    launched here) is reported running with a message saying it is not
    watched, never failed; a run whose task ended while the run is still in
    progress (its process died, or a duplicate delivery refused to run it) is
    reported failed, so that monitoring resumes it (``max_resume_run_attempts``)
    or fails it. ``terminate`` cancels the run's task, so that the run process
    stops its steps itself, then, once that task ended or after
    ``terminate_wait`` seconds, every task of the run: Dagster does not forward
    a termination to steps when it expects to resume the run.
    """

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        terminate_wait: int = 10,
        **config: Any,
    ) -> None:
        self._inst_data = inst_data
        self._config = dict(config)
        self._settings = TaskiqSettings.from_config(config)
        self._terminate_wait = terminate_wait
        self._cli: TaskiqCli | None = None
        super().__init__()

    # -- ConfigurableClass -------------------------------------------------------------

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            **connection_config_schema(),
            "terminate_wait": Field(
                IntSource,
                is_required=False,
                default_value=10,
                description="Seconds terminate waits for the run's task to stop before marking "
                "the run canceled itself.",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(inst_data=inst_data, **config_value)

    @property
    def settings(self) -> TaskiqSettings:
        return self._settings

    @property
    def cli(self) -> TaskiqCli:
        """The binary's wrapper, checked on first use so a bad config fails the run, not the instance."""
        if self._cli is None:
            self._cli = self._settings.make_cli()
        return self._cli

    # -- launching ---------------------------------------------------------------------

    def _submit(self, run: DagsterRun, argv: Sequence[str], task_id: str, what: str) -> str:
        spec = self._settings.task_spec(
            task_id,
            argv,
            group=run.run_id,
            env={"DAGSTER_RUN_JOB_NAME": run.job_name},
            labels={"dagster/run_id": run.run_id, "dagster/job": run.job_name, "dagster/kind": what},
            priority=task_priority({}, run.tags, self._settings.priority),
            queue_tags=run.tags,
        )
        # Tagged before it is queued: a run worker may start (and monitoring look at the
        # run) as soon as the task is on the queue. The id is fixed, so a retried launch
        # is the same task.
        self._instance.add_run_tags(run.run_id, {TASK_ID_TAG: task_id})
        submitted = self.cli.submit(spec)
        self._instance.report_engine_event(
            f"Submitted {what} to taskiq-go queue {submitted.queue or 'default'} as task {submitted.id}.",
            run,
            EngineEventData(metadata={"taskiq task id": submitted.id, "taskiq queue": submitted.queue}),
            cls=self.__class__,
        )
        return submitted.id

    def _run_command(
        self, context: LaunchRunContext | ResumeRunContext, args_type: type[ExecuteRunArgs] | type[ResumeRunArgs]
    ) -> list[str]:
        """The `dagster api execute_run` (or `resume_run`) command line for a run."""
        origin = check.not_none(context.job_code_origin, "the run has no job code origin")
        args = args_type(
            job_origin=origin,
            run_id=context.dagster_run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        )
        return list(args.get_command_args())

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        self._submit(run, self._run_command(context, ExecuteRunArgs), run_task_id(run.run_id), "run")

    @property
    def supports_resume_run(self) -> bool:
        return True

    def resume_run(self, context: ResumeRunContext) -> None:
        run = context.dagster_run
        task_id = run_task_id(run.run_id, context.resume_attempt_number or 0)
        self._submit(run, self._run_command(context, ResumeRunArgs), task_id, "resumed run")

    # -- watching ----------------------------------------------------------------------

    def _status(self, run: DagsterRun) -> TaskStatus | None:
        task_id = run.tags.get(TASK_ID_TAG)
        if not task_id:
            return None
        return next((s for s in self.cli.poll([task_id]) if s.id == task_id), None)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        task_id = run.tags.get(TASK_ID_TAG)
        if not task_id:
            # Executed in-process (`dagster job execute`, execute_job) or by another launcher:
            # its worker is not a taskiq-go task, so there is nothing to find and no reason to fail it.
            return CheckRunHealthResult(
                WorkerStatus.RUNNING,
                f"unknown: run {run.run_id} was not launched by TaskiqRunLauncher (no {TASK_ID_TAG} tag), "
                "so its run worker is not watched",
            )
        try:
            status = self._status(run)
        except TaskiqCliError as exc:
            if exc.exit_code == EXIT_UNKNOWN_TASK:
                return CheckRunHealthResult(WorkerStatus.NOT_FOUND, str(exc))
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, str(exc), transient=True)
        if status is None:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, f"taskiq-go reported nothing for task {task_id}")
        msg = f"taskiq-go task {task_id} is {status.state}"
        if status.worker.id:
            msg += f" on worker {status.worker}"
        if status.exit_code is not None:
            msg += f", exit code {status.exit_code}"
        if status.error:
            msg += f": {status.error}"
        worker_status = WORKER_STATUS.get(status.state, WorkerStatus.UNKNOWN)
        if worker_status == WorkerStatus.SUCCESS:
            # The task ended well, but did the run? A run process that died after its task
            # was delivered again leaves a copy that refuses to run a duplicate and exits 0.
            now = self._instance.get_run_by_id(run.run_id)
            if now is not None and now.status in IN_PROGRESS_RUN_STATUSES:
                worker_status = WorkerStatus.FAILED
                msg += f", but run {run.run_id} is still {now.status.value}: its run worker is gone"
        return CheckRunHealthResult(worker_status, msg, run_worker_id=str(status.worker) or None)

    def get_run_worker_debug_info(self, run: DagsterRun, include_container_logs: bool | None = True) -> str | None:
        task_id = run.tags.get(TASK_ID_TAG)
        if not task_id:
            return None
        try:
            status = self._status(run)
            if status is None or not status.is_final:
                record: Any = status.__dict__ if status else {"id": task_id, "state": "unknown"}
                return f"taskiq-go task {task_id}:\n{json.dumps(record, default=str, indent=2)}"
            result = self.cli.result(task_id)
        except TaskiqCliError as exc:
            return f"taskiq-go task {task_id}: {exc}"
        if not include_container_logs:
            for stream in ("stdout", "stderr"):
                if isinstance(result.get(stream), dict):
                    result[stream] = {k: v for k, v in result[stream].items() if k not in ("data", "tail")}
        return f"taskiq-go task {task_id}:\n{json.dumps(result, indent=2)}"

    # -- stopping ----------------------------------------------------------------------

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        task_id = run.tags.get(TASK_ID_TAG)
        if not task_id:
            return False
        self._instance.report_run_canceling(run)
        if self._terminate_wait <= 0:
            self._cancel_group(run_id)
            return True
        # The run's own task first, so that the run process stops its steps through
        # its executor (Dagster then records each step as interrupted); the rest of
        # the group once that task has ended, since Dagster does not forward a
        # termination to the steps when it expects to resume the run.
        try:
            self.cli.cancel([task_id])
        except TaskiqCliError as exc:
            if exc.exit_code != EXIT_UNKNOWN_TASK:
                raise
        self._finish_cancel(run_id, task_id)
        return True

    def _cancel_group(self, run_id: str) -> None:
        try:
            self.cli.cancel_group(run_id)
        except TaskiqCliError as exc:
            if exc.exit_code != EXIT_UNKNOWN_TASK:  # a run with no task left has nothing to stop
                raise

    def _finish_cancel(self, run_id: str, task_id: str) -> None:
        """Cancels the rest of the run's tasks once its own task ended (or after
        ``terminate_wait``), and marks the run canceled if the run process did not.

        The run process normally handles SIGTERM by stopping its steps and
        reporting the run canceled; a process killed before it could leaves the
        run canceling, so the launcher closes it. The group cancel stops the steps
        of a run process that expected to be resumed, and a step it launched just
        before it stopped.
        """
        statuses = self.cli.wait([task_id], timeout=float(self._terminate_wait))
        status = next((s for s in statuses if s.id == task_id), None)
        self._cancel_group(run_id)
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or status is None or not status.is_final:
            return
        self._instance.report_run_canceled(
            run, message=f"taskiq-go task {task_id} ended {status.state}; the run is canceled."
        )
