"""Runs one job of a user-code file in the Python it is started with (an installed venv).

Usage: python deployed_driver.py execute JOB_FILE JOB_NAME RUN_CONFIG_JSON
prints one JSON object: run id, status, and the workers that ran each step.
Uses the instance of $DAGSTER_HOME. Imports nothing of the source tree.
"""

import json
import sys

from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob

from dagster_taskiq import step_workers


def main() -> None:
    _, command, job_file, job_name, run_config = sys.argv
    assert command == "execute", command
    with DagsterInstance.get() as instance:
        result = execute_job(
            ReconstructableJob.for_file(job_file, job_name), instance=instance, run_config=json.loads(run_config)
        )
        run = instance.get_run_by_id(result.run_id)
        workers = {k: [w.worker_id for w in v] for k, v in step_workers(instance, result.run_id).items()}
        out = {"run_id": result.run_id, "status": run.status.value if run else None, "workers": workers}
        if result.success:
            out["total"] = result.output_for_node("total")
        print(json.dumps(out))


if __name__ == "__main__":
    main()
