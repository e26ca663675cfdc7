"""User code for the tests of an installed dagster-taskiq (test_wheel, test_shared_nothing).

Copied into a directory of its own and loaded by file path, so that it
imports nothing but what the installed packages bring: no module of the
source tree. Ops synchronise with the tests through files in their config;
none sleeps to synchronise.
"""

import os
import socket
import time
from pathlib import Path

from dagster import (
    Config,
    Definitions,
    DynamicOut,
    DynamicOutput,
    FilesystemIOManager,
    OpExecutionContext,
    in_process_executor,
    job,
    op,
)
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from dagster_taskiq import taskiq_executor

FS_RESOURCES = {"io_manager": FilesystemIOManager()}
S3_RESOURCES = {
    "io_manager": S3PickleIOManager(
        s3_resource=S3Resource(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"), region_name="us-east-1"),
        s3_bucket=os.environ.get("DAGSTER_IO_BUCKET", "dagster-io"),
        s3_prefix="io",
    )
}


def where() -> str:
    """Which process ran an op: host, pid and the worker's own working directory."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.getcwd()}"


@op(out=DynamicOut(int))
def source(context: OpExecutionContext):  # type: ignore[no-untyped-def]
    context.log.info(f"source ran at {where()}")
    for i in range(4):
        yield DynamicOutput(i, mapping_key=str(i))


class SquareConfig(Config):
    #: While this file does not exist, square waits (a step that can be caught running).
    gate: str = ""


@op
def square(context: OpExecutionContext, config: SquareConfig, n: int) -> int:
    context.log.info(f"square ran at {where()}")
    if config.gate:
        Path(config.gate + f".started-{n}").write_text(where())
        while not Path(config.gate).exists():
            time.sleep(0.05)
    return n * n


@op
def total(context: OpExecutionContext, values: list[int]) -> int:
    context.log.info(f"total ran at {where()}: {sum(values)}")
    return sum(values)


@job(executor_def=taskiq_executor, resource_defs=FS_RESOURCES)
def fan_out_fs() -> None:
    total(source().map(square).collect())


@job(executor_def=taskiq_executor, resource_defs=S3_RESOURCES)
def fan_out_s3() -> None:
    total(source().map(square).collect())


class WaitConfig(Config):
    #: Written when the op starts; the op then waits for this path + ".go".
    marker: str


@op
def wait_for_marker(context: OpExecutionContext, config: WaitConfig) -> str:
    Path(config.marker).write_text(where())
    context.log.info(f"wait_for_marker started at {where()}")
    while not Path(config.marker + ".go").exists():
        time.sleep(0.05)
    return where()


@op
def after(context: OpExecutionContext, at: str) -> str:
    context.log.info(f"after ran at {where()}, following {at}")
    return at


@job(executor_def=in_process_executor, resource_defs=S3_RESOURCES)
def in_process_s3() -> None:
    """Run whole by TaskiqRunLauncher on a worker, its steps in that worker's run process."""
    after(wait_for_marker())


#: What `dagster-daemon run -f` (run monitoring) and code servers load.
defs = Definitions(jobs=[fan_out_fs, fan_out_s3, in_process_s3])
