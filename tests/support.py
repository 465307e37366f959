"""What the tests share beyond fixtures (tests/ is on the path: pytest puts a rootdir conftest's folder there).

* :func:`corpus_dir` — where the shared BPMN corpus is (the MIWG test suite, Camunda 7 examples): ``shared/corpus``
  beside the clone, as in CI, or ``DEPTFLOW_CORPUS`` (a git worktree is one level deeper); module-level
  parametrisation (tests/differential.py) and the ``corpus`` fixture read the same place.
* :func:`unavailable` — what a test does when a server, the browser or the corpus is missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest


def corpus_dir() -> Path:
    return Path(os.environ.get("DEPTFLOW_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus")


def unavailable(requirement: str, reason: str) -> NoReturn:
    """The test cannot run here: it is skipped, or it fails when ``DEPTFLOW_REQUIRE_<requirement>=1`` says it
    must run (CI sets POSTGRES, BROWSER, DIRECTORY and CORPUS)."""
    variable = f"DEPTFLOW_REQUIRE_{requirement}"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason} ({variable}=1: required)", pytrace=False)
    pytest.skip(reason)
