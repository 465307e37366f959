"""Where the shared BPMN corpus is (the MIWG test suite, Camunda 7 examples): ``shared/corpus`` beside the clone,
as in CI, or ``DEPTFLOW_CORPUS`` (a git worktree is one level deeper). A module of its own, so that module-level
parametrisation (tests/differential.py) and the ``corpus`` fixture of conftest read the same place."""

from __future__ import annotations

import os
from pathlib import Path


def corpus_dir() -> Path:
    return Path(os.environ.get("DEPTFLOW_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus")
