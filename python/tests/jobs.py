"""Dagster jobs the integration tests run on taskiq-go workers.

Loaded by file path (see ``recon``), so workers import them the same way the
orchestrator does. Ops that the tests must synchronise with write or wait for
files named in their config; none of them sleep to synchronise.
"""

import os
import time
from pathlib import Path

from dagster import (
    Config,
    DynamicOut,
    DynamicOutput,
    FilesystemIOManager,
    OpExecutionContext,
    RetryPolicy,
    job,
    op,
)
from dagster._core.definitions.reconstruct import ReconstructableJob

from dagster_taskiq import PRIORITY_TAG, QUEUE_TAG, taskiq_executor

RESOURCES = {"io_manager": FilesystemIOManager()}


def recon(name: str) -> ReconstructableJob:
    """A job of this file, reconstructable by workers from its absolute path."""
    return ReconstructableJob.for_file(str(Path(__file__).resolve()), name)


# -- 1. diamond and fan-out -------------------------------------------------------


@op
def start() -> int:
    return 1


@op
def left(n: int) -> int:
    return n + 10


@op
def right(n: int) -> int:
    return n + 100


@op
def join(a: int, b: int) -> int:
    return a + b


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def diamond() -> None:
    s = start()
    join(left(s), right(s))


@op(out=DynamicOut(int))
def emit():  # type: ignore[no-untyped-def]
    for i in range(8):
        yield DynamicOutput(i, mapping_key=str(i))


@op
def square(n: int) -> int:
    return n * n


@op
def total(values: list[int]) -> int:
    return sum(values)


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def fan_out() -> None:
    total(emit().map(square).collect())


# -- 2. a failing op --------------------------------------------------------------

FAILURE_MESSAGE = "the ledger does not balance: off by 41"


@op
def explode() -> int:
    raise ValueError(FAILURE_MESSAGE)


@op
def after_explode(n: int) -> int:
    return n


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def failing() -> None:
    after_explode(explode())


# -- 3. retry ----------------------------------------------------------------------


@op(retry_policy=RetryPolicy(max_retries=2))
def flaky(context: OpExecutionContext) -> int:
    if context.retry_number == 0:
        raise RuntimeError("first attempt fails on purpose")
    return context.retry_number


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def retried() -> None:
    flaky()


# -- 4. routing by tag ---------------------------------------------------------------


@op(tags={QUEUE_TAG: "special"})
def routed() -> str:
    return os.environ.get("HOSTNAME", "")


@op
def unrouted() -> str:
    return "anywhere"


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def routing() -> None:
    routed()
    unrouted()


# -- 5, 6. long steps ----------------------------------------------------------------


class SleepConfig(Config):
    pid_file: str
    seconds: float = 600.0


@op
def sleep_long(config: SleepConfig) -> int:
    Path(config.pid_file).write_text(str(os.getpid()))
    time.sleep(config.seconds)
    return 0


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def sleepy() -> None:
    sleep_long()


@op(retry_policy=RetryPolicy(max_retries=1))
def sleep_then_recover(context: OpExecutionContext, config: SleepConfig) -> int:
    if context.retry_number == 0:
        Path(config.pid_file).write_text(str(os.getpid()))
        time.sleep(config.seconds)
    return context.retry_number


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def recovering() -> None:
    sleep_then_recover()


# -- 7. the run launcher --------------------------------------------------------------


class GateConfig(Config):
    gate_file: str
    timeout: float = 120.0


@op
def wait_for_gate(config: GateConfig) -> str:
    deadline = time.monotonic() + config.timeout
    while not Path(config.gate_file).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config.gate_file} never appeared")
        time.sleep(0.05)
    return Path(config.gate_file).read_text()


@op
def after_gate(text: str) -> int:
    return len(text)


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def gated() -> None:
    after_gate(wait_for_gate())


# -- 4b. queue and priority tags reach the task ---------------------------------------


@op(tags={QUEUE_TAG: "special", PRIORITY_TAG: "7"})
def urgent() -> int:
    return 7


@op
def ordinary() -> int:
    return 0


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def prioritized() -> None:
    urgent()
    ordinary()
