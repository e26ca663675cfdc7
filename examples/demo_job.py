"""A small word-count job to show dagster-taskiq: one op fans out to six, then they fan back in.

make_corpus -> split_corpus -> count_words[0..5] -> merge_counts -> top_words   -> report
                                                                 -> corpus_stats -/
"""

from collections import Counter

from dagster import DynamicOut, DynamicOutput, FilesystemIOManager, job, op

from dagster_taskiq import taskiq_executor

CHUNKS = 6

_TEXT = """
Dagster runs each step of this job as a task on a taskiq-go worker. The executor submits
the step to an SQS queue, a worker receives it, runs the step as a subprocess and stores
the result in S3. The step writes its events to the Dagster instance, and the executor
reads them back. Outputs pass from step to step through a filesystem IO manager.
"""


@op
def make_corpus() -> list[str]:
    """Fifty lines of text."""
    lines = [line.strip() for line in _TEXT.strip().splitlines()]
    return [lines[i % len(lines)] for i in range(50)]


@op(out=DynamicOut(list))
def split_corpus(lines: list[str]):  # type: ignore[no-untyped-def]
    """One chunk of lines per mapped step."""
    for i in range(CHUNKS):
        yield DynamicOutput(lines[i::CHUNKS], mapping_key=str(i))


@op
def count_words(lines: list[str]) -> dict[str, int]:
    words = (w.strip(".,").lower() for line in lines for w in line.split())
    return dict(Counter(w for w in words if w))


@op
def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(total)


@op
def top_words(counts: dict[str, int]) -> list[tuple[str, int]]:
    return Counter(counts).most_common(5)


@op
def corpus_stats(counts: dict[str, int]) -> dict[str, int]:
    return {"distinct": len(counts), "total": sum(counts.values())}


@op
def report(top: list[tuple[str, int]], stats: dict[str, int]) -> str:
    words = ", ".join(f"{w} ({n})" for w, n in top)
    return f"{stats['total']} words, {stats['distinct']} distinct; most common: {words}"


@job(executor_def=taskiq_executor, resource_defs={"io_manager": FilesystemIOManager()})
def word_count() -> None:
    counts = merge_counts(split_corpus(make_corpus()).map(count_words).collect())
    report(top_words(counts), corpus_stats(counts))
