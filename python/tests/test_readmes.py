"""The two READMEs say the same thing about how a step runs, and the `--pass-env` flags
python/README.md gives for plain `taskiq-go work` are the set `dagster-taskiq worker start`
passes (STEP_PASS_ENV)."""

from __future__ import annotations

import re

from dagster_taskiq.worker_cli import STEP_PASS_ENV
from harness import REPO_ROOT

HOW_A_STEP_RUNS = (
    "Each step runs as one taskiq-go task whose command is `dagster-taskiq-step api execute_step ...`: "
    "the `dagster api execute_step` CLI through dagster-taskiq's fast-exit entry point"
)


def readme(path: str) -> str:
    # Compare prose, not its line breaks.
    return " ".join((REPO_ROOT / path).read_text().split())


def test_both_readmes_say_how_a_step_runs() -> None:
    for path in ("README.md", "python/README.md"):
        assert HOW_A_STEP_RUNS in readme(path), path


def test_python_readme_has_one_workers_section() -> None:
    text = (REPO_ROOT / "python" / "README.md").read_text()
    assert re.findall(r"^## Workers$", text, re.M) == ["## Workers"]


def test_documented_pass_env_flags_are_step_pass_env() -> None:
    text = readme("python/README.md")
    block = re.search(r"taskiq-go work (--pass-env \S+ (?:\\ )?)+", text)
    assert block, "python/README.md shows no taskiq-go work --pass-env line"
    documented = [name.strip("'") for name in re.findall(r"--pass-env (\S+)", block.group(0))]
    assert documented == list(STEP_PASS_ENV)
