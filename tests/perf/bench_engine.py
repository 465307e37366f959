"""Benchmark 1 — engine overhead against the raw SpiffWorkflow floor (SQLite).

Measures, in one run and interleaved so that machine noise hits both sides alike:

* deptflow: ``engine.actions.complete_task`` + ``commit`` of the marketing-plan review step
  (``review_marketing_plan``, approve) on a SQLite file, one fresh session per operation;
  and ``engine.actions.start_process`` + ``commit``;
* the raw floor: SpiffWorkflow alone doing the same step — SELECT the blob, deserialize it with
  ``BpmnWorkflowSerializer`` (``CAMUNDA_CONFIG``), complete the ready user task,
  ``do_engine_steps``, serialize, UPDATE, COMMIT with ``sqlite3`` — and the same for a start.

Reports medians (ms) and deptflow/raw ratios. Target: complete ratio <= 1.5.

    .venv/bin/python tests/perf/bench_engine.py      # DEPTFLOW_BENCH_PROFILE=1 adds a cProfile to stderr
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PLAN,
    PROCESS,
    REVIEW_APPROVE,
    RawSpiff,
    Timer,
    emit,
    log,
    machine,
    profiled,
    ratio,
    sessions_for,
    sqlite_database,
    summary,
    temp_dir,
    typed,
)

ROUNDS = 200
WARMUP = 20
TARGET = 1.5


def main() -> None:
    from sqlalchemy import select, text

    from engine import actions, users
    from engine.db import HumanTask

    began = time.perf_counter()
    with temp_dir() as tmp:
        url = sqlite_database(tmp)
        engine, sessions = sessions_for(url)
        raw = RawSpiff(tmp / "raw.sqlite3")
        with sessions() as s:
            rita_id = users.user_by_name(s, "rita").id
            mark_id = users.user_by_name(s, "mark").id
        plan, review = typed(PLAN), typed(REVIEW_APPROVE)

        def deptflow_start() -> tuple[float, int]:
            with sessions() as s:
                rita = users.get_user(s, rita_id)
                with Timer() as t:
                    instance = actions.start_process(s, rita, PROCESS, PLAN)
                    s.commit()
                task_id = s.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id,
                                                              HumanTask.status == "open"))
            return t.seconds, task_id

        def deptflow_complete(task_id: int) -> float:
            with sessions() as s:
                mark = users.get_user(s, mark_id)  # as the web's user loader does: with the roles
                with Timer() as t:
                    task = actions.complete_task(s, mark, task_id, REVIEW_APPROVE)
                    s.commit()
                assert task.status == "completed"
            return t.seconds

        def raw_start() -> tuple[float, int]:
            with Timer() as t:
                workflow_id = raw.start(plan)
            return t.seconds, workflow_id

        def raw_complete(workflow_id: int) -> float:
            with Timer() as t:
                done = raw.complete(workflow_id, review, "review_marketing_plan")
            assert done == "review_marketing_plan"
            return t.seconds

        log("bench_engine: warm-up")
        for _ in range(WARMUP):
            deptflow_complete(deptflow_start()[1])
            raw_complete(raw_start()[1])

        log(f"bench_engine: {ROUNDS} starts and review completions each, interleaved")
        d_start, r_start, d_complete, r_complete = [], [], [], []
        d_tasks, r_ids = [], []
        gc.collect()
        for _ in range(ROUNDS):
            seconds, task_id = deptflow_start()
            d_start.append(seconds)
            d_tasks.append(task_id)
            seconds, workflow_id = raw_start()
            r_start.append(seconds)
            r_ids.append(workflow_id)
        for task_id, workflow_id in zip(d_tasks, r_ids, strict=True):
            d_complete.append(deptflow_complete(task_id))
            r_complete.append(raw_complete(workflow_id))

        # Optional profile of a further batch (not part of the figures).
        extra = [deptflow_start()[1] for _ in range(50)]
        profiled("deptflow complete_task x50", lambda: [deptflow_complete(t) for t in extra])

        with engine.connect() as conn:
            deptflow_state = conn.execute(text(
                "SELECT length(state) FROM process_instances ORDER BY id DESC LIMIT 1")).scalar()
        raw_state = raw.state_size(r_ids[-1])
        raw.close()
        engine.dispose()

    complete_ratio = ratio(statistics.median(d_complete), statistics.median(r_complete))
    start_ratio = ratio(statistics.median(d_start), statistics.median(r_start))
    emit({
        "benchmark": "engine_overhead",
        "database": "sqlite (file, WAL, synchronous=NORMAL)",
        "process": PROCESS,
        "step": "review_marketing_plan (approve)",
        "complete": {
            "deptflow": summary(d_complete),
            "raw_floor": summary(r_complete),
            "ratio": complete_ratio,
            "target": TARGET,
            "met": complete_ratio <= TARGET,
        },
        "start": {
            "deptflow": summary(d_start),
            "raw_floor": summary(r_start),
            "ratio": start_ratio,
        },
        "state_bytes": {"deptflow": deptflow_state, "raw_full_serialization": raw_state},
        "runtime_s": round(time.perf_counter() - began, 1),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
