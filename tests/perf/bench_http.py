"""Benchmark 3 — HTTP overhead: the review step and a start through the real web stack.

Runs ``deptflow serve --workers 1`` on a free port of 127.0.0.1 against a SQLite file. Two
logged-in clients (``http.client``, one keep-alive connection each, session cookie, CSRF
token from the pages) post real forms:

* rita: ``POST /processes/marketing_plan_approval/start`` (the start form);
* mark: ``POST /tasks/<id>/complete`` of ``review_marketing_plan`` (approve), ids read from
  the inbox page.

The time is that of the POST until its 302 answer is read (the redirect is not followed;
the inbox is fetched between batches, untimed, as a browser would, so flash messages do
not pile up in the session cookie). The raw SpiffWorkflow floor of the same step and of a
start (see ``_common.RawSpiff``) is measured in the same run, one raw step beside each
request, so that other load on the machine hits both alike. Target: both ratios <= 3.

    .venv/bin/python tests/perf/bench_http.py
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
    Client,
    emit,
    log,
    machine,
    overhead,
    served_demo,
    summary,
    timed_request,
)

ROUNDS = 150
WARMUP = 15
#: After every POST the client loads its inbox (untimed), as a browser follows the redirect: the flash
#: message the POST left in the session cookie is shown and dropped there, so cookies do not grow.
DRAIN_EVERY = 1
TARGET = 3.0


def main() -> None:
    began = time.perf_counter()
    with served_demo() as demo:
        rita, mark = Client(demo.address), Client(demo.address)
        rita.login("rita")
        mark.login("mark")

        def start() -> float:
            return timed_request(lambda: rita.post(f"/processes/{PROCESS}/start", PLAN), 302, "start")

        def complete(task_id: int) -> float:
            return timed_request(lambda: mark.post(f"/tasks/{task_id}/complete", REVIEW_APPROVE), 302,
                                 f"complete {task_id}")

        def reviews() -> list[int]:
            return [t for t, element, _ in mark.inbox() if element == "review_marketing_plan"]

        log("bench_http: warm-up")
        for _ in range(WARMUP):
            start()
            demo.raw_complete(demo.raw_start()[1])
        rita.inbox()
        for task_id in reviews():
            complete(task_id)
        mark.inbox()

        log(f"bench_http: {ROUNDS} starts, then {ROUNDS} review completions, each beside a raw floor step")
        starts, raw_starts, raw_ids = [], [], []
        for i in range(ROUNDS):
            seconds, workflow_id = demo.raw_start()
            raw_starts.append(seconds)
            raw_ids.append(workflow_id)
            starts.append(start())
            if i % DRAIN_EVERY == DRAIN_EVERY - 1:
                rita.inbox()
        inbox_times = []
        for _ in range(20):
            t0 = time.perf_counter()
            open_reviews = reviews()
            inbox_times.append(time.perf_counter() - t0)
        rows_in_inbox = len(open_reviews)
        completes, raw_completes = [], []
        floor_ids = iter(raw_ids)
        while len(completes) < ROUNDS and open_reviews:  # the inbox shows a page of 50 at a time
            for task_id in open_reviews[:ROUNDS - len(completes)]:
                raw_completes.append(demo.raw_complete(next(floor_ids)))
                completes.append(complete(task_id))
                if len(completes) % DRAIN_EVERY == 0:
                    mark.inbox()
            open_reviews = reviews()
        rita.close()
        mark.close()

    emit({
        "benchmark": "http_overhead",
        "server": "deptflow serve --workers 1 --threads 8 (gunicorn), SQLite file",
        "client": "http.client, keep-alive, session cookie, CSRF token; sequential",
        "complete": overhead("http", completes, raw_completes, TARGET),
        "start": overhead("http", starts, raw_starts, TARGET),
        "inbox_page": {**summary(inbox_times), "rows": rows_in_inbox},
        "runtime_s": round(time.perf_counter() - began, 1),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
