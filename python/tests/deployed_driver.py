"""Runs one job of a user-code file in the Python it is started with (an installed venv).

Usage: python deployed_driver.py execute JOB_FILE JOB_NAME RUN_CONFIG_JSON
         runs the job here; prints run id, status and the workers that ran each step
       python deployed_driver.py launch JOB_FILE JOB_NAME RUN_CONFIG_JSON
         launches it through the instance's run launcher; prints the run id
       python deployed_driver.py terminate RUN_ID
         asks the run launcher to terminate the run; prints whether it could
Uses the instance of $DAGSTER_HOME. Imports nothing of the source tree.
"""

import json
import sys

from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob

from dagster_taskiq import step_workers


def launch(job_file: str, job_name: str, run_config: str) -> None:
    job = ReconstructableJob.for_file(job_file, job_name)
    with DagsterInstance.get() as instance:
        run = instance.create_run_for_job(
            job_def=job.get_definition(), run_config=json.loads(run_config), job_code_origin=job.get_python_origin()
        )
        instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        print(json.dumps({"run_id": run.run_id}))


def terminate(run_id: str) -> None:
    with DagsterInstance.get() as instance:
        print(json.dumps({"terminated": instance.run_launcher.terminate(run_id)}))


def main() -> None:
    command = sys.argv[1]
    if command == "launch":
        return launch(*sys.argv[2:])
    if command == "terminate":
        return terminate(*sys.argv[2:])
    _, command, job_file, job_name, run_config = sys.argv
    assert command == "execute", command
    with DagsterInstance.get() as instance, execute_job(
        ReconstructableJob.for_file(job_file, job_name), instance=instance, run_config=json.loads(run_config)
    ) as result:
        run = instance.get_run_by_id(result.run_id)
        workers = {k: [w.worker_id for w in v] for k, v in step_workers(instance, result.run_id).items()}
        out = {"run_id": result.run_id, "status": run.status.value if run else None, "workers": workers}
        if result.success:
            out["total"] = result.output_for_node("total")
        print(json.dumps(out))


if __name__ == "__main__":
    main()
