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


# -- 8. priority bands on one worker slot ----------------------------------------------

#: Dagster's own step priority: the order in which the executor *submits* ready steps.
DAGSTER_SUBMIT_ORDER_TAG = "dagster/priority"

#: Step -> its dagster-taskiq/priority. One step per level: below 0, 0, 5 and 10 (20 counts as 10).
FAN_PRIORITIES = {"prio_minus5": -5, "prio_0": 0, "prio_5": 5, "prio_20": 20}
#: Steps of the urgent run (run_priority 10 lifts them to levels 5 and 10).
URGENT_PRIORITIES = {"urgent_minus5": -5, "urgent_0": 0}


def _submit_rank(priorities: dict[str, int], name: str) -> str:
    """Dagster submits the lowest taskiq priority first, so arrival order alone gets it backwards."""
    return str(sorted(priorities.values(), reverse=True).index(priorities[name]))


# The executor submits the two roots kickoff first, then hold (both priority
# 1000, kickoff first by Dagster's own tag). The idle worker takes kickoff
# (hold is not there yet); once kickoff ends, hold, long queued at the
# highest level, takes the slot and keeps it until the test opens the gate, by
# which time every step kickoff fans out to has been submitted. (A step that
# only became ready when kickoff ended could not be relied on to get there
# first: an idle worker long-polls the inbox and takes what lands there.)
@op(tags={PRIORITY_TAG: "1000", DAGSTER_SUBMIT_ORDER_TAG: "200"})
def kickoff() -> int:
    return 1


@op(tags={PRIORITY_TAG: "1000", DAGSTER_SUBMIT_ORDER_TAG: "100"})
def hold(config: GateConfig) -> None:
    deadline = time.monotonic() + config.timeout
    while not Path(config.gate_file).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config.gate_file} never appeared")
        time.sleep(0.05)


def _fanned(name: str):  # type: ignore[no-untyped-def]
    tags = {PRIORITY_TAG: str(FAN_PRIORITIES[name]), DAGSTER_SUBMIT_ORDER_TAG: _submit_rank(FAN_PRIORITIES, name)}

    @op(name=name, tags=tags)
    def _step(n: int) -> int:
        return n

    return _step


def _urgent(name: str):  # type: ignore[no-untyped-def]
    tags = {PRIORITY_TAG: str(URGENT_PRIORITIES[name]), DAGSTER_SUBMIT_ORDER_TAG: _submit_rank(URGENT_PRIORITIES, name)}

    @op(name=name, tags=tags)
    def _step() -> int:
        return 0

    return _step


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def priority_fan() -> None:
    hold()
    n = kickoff()
    for name in FAN_PRIORITIES:
        _fanned(name)(n)


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def priority_urgent() -> None:
    for name in URGENT_PRIORITIES:
        _urgent(name)()


# -- secrets by reference ------------------------------------------------------------


@op
def read_secret() -> str:
    """What the step sees of its secret PW: the worker resolved it before the step started."""
    import os

    return "same as HOME" if os.environ.get("PW") == os.environ.get("HOME") else f"PW={os.environ.get('PW')!r}"


@job(executor_def=taskiq_executor, resource_defs=RESOURCES)
def secret_reader() -> None:
    read_secret()
