"""Benchmark — the REST API's start and complete against the raw SpiffWorkflow floor.

Runs ``deptflow serve --workers 1`` on a free port of 127.0.0.1 against a SQLite file. Two
clients (``http.client``, one keep-alive connection each) authenticate with API tokens (no
session, no CSRF, no HTML) and post JSON:

* rita: ``POST /api/v1/processes/marketing_plan_approval/start`` (the start form's values);
* mark: ``POST /api/v1/tasks/<id>/complete`` of ``review_marketing_plan`` (approve).

The time is that of the request until its answer is read. The raw SpiffWorkflow floor of the
same start and step (``_common.RawSpiff``) is measured in the same run, one raw step beside each
request, so that other load on the machine hits both alike. Target (issue 17): both ≤ 2×.

    .venv/bin/python tests/perf/bench_api.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PLAN,
    PROCESS,
    REVIEW_APPROVE,
    ApiClient,
    emit,
    log,
    machine,
    overhead,
    served_demo,
    sessions_for,
    timed_request,
)

ROUNDS = 150
WARMUP = 15
TARGET = 2.0


def _tokens(url: str) -> dict[str, str]:
    """An API token for rita (starts plans) and mark (reviews them), made as a user makes one."""
    from engine import api_tokens, users

    engine, sessions = sessions_for(url)
    with sessions() as session:
        made = {name: api_tokens.create_token(session, users.user_by_name(session, name), "bench").secret
                for name in ("rita", "mark")}
        session.commit()
    engine.dispose()
    return made


def _open_reviews(url: str) -> list[int]:
    """The review tasks the starts made (read from the database, untimed)."""
    from sqlalchemy import select

    from engine.db import HumanTask

    engine, sessions = sessions_for(url)
    with sessions() as session:
        ids = list(session.scalars(select(HumanTask.id).where(
            HumanTask.element_id == "review_marketing_plan", HumanTask.status == "open").order_by(HumanTask.id)))
    engine.dispose()
    return ids


def main() -> None:
    began = time.perf_counter()
    with served_demo() as demo:
        tokens = _tokens(demo.url)
        rita, mark = ApiClient(demo.address, tokens["rita"]), ApiClient(demo.address, tokens["mark"])

        def start() -> float:
            return timed_request(lambda: rita.post(f"/api/v1/processes/{PROCESS}/start", {"values": PLAN}), 201,
                                 "start")

        def complete(task_id: int) -> float:
            return timed_request(lambda: mark.post(f"/api/v1/tasks/{task_id}/complete", {"values": REVIEW_APPROVE}),
                                 200, f"complete {task_id}")

        log("bench_api: warm-up")
        for _ in range(WARMUP):
            start()
        for task_id in _open_reviews(demo.url):
            complete(task_id)

        log(f"bench_api: {ROUNDS} starts, then {ROUNDS} review completions, each beside a raw floor step")
        starts, raw_starts, raw_ids = [], [], []
        for _ in range(ROUNDS):
            seconds, workflow_id = demo.raw_start()
            raw_starts.append(seconds)
            raw_ids.append(workflow_id)
            starts.append(start())
        completes, raw_completes = [], []
        for task_id, workflow_id in zip(_open_reviews(demo.url), raw_ids, strict=False):
            raw_completes.append(demo.raw_complete(workflow_id))
            completes.append(complete(task_id))
        rita.close()
        mark.close()

    emit({
        "benchmark": "api_overhead",
        "server": "deptflow serve --workers 1 --threads 8 (gunicorn), SQLite file",
        "client": "http.client, keep-alive, bearer token, JSON; sequential",
        "complete": overhead("api", completes, raw_completes, TARGET),
        "start": overhead("api", starts, raw_starts, TARGET),
        "runtime_s": round(time.perf_counter() - began, 1),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
