"""``python -m dagster_taskiq_step``: the same as ``dagster-taskiq-step``."""

from dagster_taskiq_step import main

main()
