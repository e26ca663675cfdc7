"""Jobs that try to break the executor's shortcuts (shared step arguments, health
rounds, event reads) where steps launched together differ in what Dagster hands them.

Each graph is built twice: ``NAME`` on the taskiq executor and ``NAME_inproc`` on
Dagster's in-process executor, so a test can compare the two runs. Loaded by file
path (see ``recon``) like ``jobs.py``; none of the ops sleep to synchronise.
"""

import time
from pathlib import Path

from dagster import (
    Config,
    DynamicOut,
    DynamicOutput,
    FilesystemIOManager,
    GraphDefinition,
    In,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    RetryPolicy,
    graph,
    in_process_executor,
    op,
)
from dagster._core.definitions.reconstruct import ReconstructableJob

from dagster_taskiq import taskiq_executor

RESOURCES = {"io_manager": FilesystemIOManager()}


def recon(name: str) -> ReconstructableJob:
    """A job of this file, reconstructable by workers from its absolute path."""
    return ReconstructableJob.for_file(str(Path(__file__).resolve()), name)


# -- branches: optional outputs, retries and nested mapping in the same rounds ------------


@op(out={"yes": Out(int, is_required=False), "no": Out(int, is_required=False), "always": Out(int)})
def choose():  # type: ignore[no-untyped-def]
    yield Output(3, "yes")
    yield Output(7, "always")


@op
def on_yes(n: int) -> int:
    return n * 10


@op
def on_no(n: int) -> int:  # never runs: its input was not yielded
    return n * 100


@op
def after_no(n: int) -> int:  # skipped with on_no
    return n + 1


@op(retry_policy=RetryPolicy(max_retries=2))
def flaky_beside(context: OpExecutionContext, n: int) -> int:
    """Fails its first attempt; the retry is launched while others of its round run."""
    if context.retry_number == 0:
        raise RuntimeError("first attempt fails on purpose")
    return n + 100 * context.retry_number


@op(out=DynamicOut(int))
def spread(n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        yield DynamicOutput(i, mapping_key=f"k_{i}")


@op(out=DynamicOut(int))
def spread_few(n: int):  # type: ignore[no-untyped-def]
    for j in range(n % 7):
        yield DynamicOutput(j, mapping_key=f"few_{j}")


@op(retry_policy=RetryPolicy(max_retries=1))
def mapped_flaky(context: OpExecutionContext, n: int) -> int:
    """Odd values fail once: some mapped steps of a round are retries, others first attempts."""
    if n % 2 == 1 and context.retry_number == 0:
        raise RuntimeError(f"value {n} fails its first attempt")
    return n * n + 1000 * context.retry_number


@op(out={"kept": Out(int, is_required=False), "dropped": Out(int, is_required=False)})
def maybe(n: int):  # type: ignore[no-untyped-def]
    """Per mapped step, yields one of two optional outputs: known state differs per step."""
    if n % 3 == 0:
        yield Output(n, "kept")
    else:
        yield Output(n, "dropped")


@op
def use_kept(n: int) -> int:
    return -n


@op
def collect(values: list[int]) -> int:
    return sum(values)


@graph
def branches() -> None:
    yes, no, always = choose()
    on_yes(yes)
    after_no(on_no(no))
    beside = flaky_beside(always)
    collect(spread(always).map(mapped_flaky).collect())
    kept, _dropped = spread_few(beside).map(maybe)
    kept.map(use_kept)


# -- re-execution from failure --------------------------------------------------------------


class FlagConfig(Config):
    flag_file: str


@op
def base() -> int:
    return 5


@op(out=DynamicOut(int))
def fan(n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        yield DynamicOutput(i, mapping_key=f"m{i}")


@op
def fails_until_flag(config: FlagConfig, n: int) -> int:
    """Fails for the odd mapped values until the flag file exists."""
    if n % 2 == 1 and not Path(config.flag_file).exists():
        raise RuntimeError(f"value {n}: no flag yet")
    return n * 3


@op
def summed(values: list[int]) -> int:
    return sum(values)


@graph
def refail() -> None:
    summed(fan(base()).map(fails_until_flag).collect())


# -- many steps in flight at once, each waiting for a gate file -------------------------


class GateConfig(Config):
    gate_file: str
    timeout: float = 180.0


@op(out=DynamicOut(int))
def many(config: GateConfig):  # type: ignore[no-untyped-def]
    for i in range(32):
        yield DynamicOutput(i, mapping_key=f"g{i}")


@op
def held(config: GateConfig, n: int) -> int:
    Path(config.gate_file + f".started.{n}").write_text("")
    deadline = time.monotonic() + config.timeout
    while not Path(config.gate_file).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config.gate_file} never appeared")
        time.sleep(0.05)
    return n


@op
def held_total(values: list[int]) -> int:
    return sum(values)


@graph
def many_held() -> None:
    held_total(many().map(held).collect())


# -- a gated chain, for storage swapped under a run ---------------------------------------


@op
def wait_gate(config: GateConfig) -> str:
    Path(config.gate_file + ".started").write_text("")
    deadline = time.monotonic() + config.timeout
    while not Path(config.gate_file).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config.gate_file} never appeared")
        time.sleep(0.05)
    return Path(config.gate_file).read_text()


@op
def after(text: str) -> int:
    return len(text)


@op
def after_after(n: int) -> int:
    return n + 1


@graph
def gate_chain() -> None:
    after_after(after(wait_gate()))


# -- concurrency limits: six independent steps, each records its start and end ----------------


class SpanConfig(Config):
    dir: str


def _span(name: str):  # type: ignore[no-untyped-def]
    @op(name=name, ins={"go": In(Nothing)}, tags={"audit/kind": "span"})
    def _step(config: SpanConfig) -> int:
        Path(config.dir, f"{name}.start").write_text(str(time.time()))
        # long enough that a step over the limit would start beside it: one worker
        # slot frees only when this ends
        time.sleep(0.5)
        Path(config.dir, f"{name}.end").write_text(str(time.time()))
        return 1

    return _step


SPANS = [f"span_{i}" for i in range(6)]


@op
def kick() -> None:
    return None


@graph
def spans() -> None:
    go = kick()
    for name in SPANS:
        _span(name)(go)


def _both(g: GraphDefinition) -> tuple[object, object]:
    return (
        g.to_job(name=g.name, executor_def=taskiq_executor, resource_defs=RESOURCES),
        g.to_job(name=g.name + "_inproc", executor_def=in_process_executor, resource_defs=RESOURCES),
    )


branches_job, branches_inproc = _both(branches)
refail_job, refail_inproc = _both(refail)
many_held_job, _ = _both(many_held)
gate_chain_job, _ = _both(gate_chain)
spans_job, _ = _both(spans)
