"""Timer latency: how long after its due time a BPMN timer fires, with thousands of cases waiting.

Prints one JSON object. Builds a SQLite database with the catalogue, deploys the test timer
process (tests/data/timers.bpmn: a PT30M intermediate timer), starts WAITING cases whose
timers are due in half an hour (the load) and PROBES cases whose timers fall due a few
seconds from now, then runs the worker in a thread on the real clock and reads, from the
audit log, when each probe's timer fired. Target: every probe within 1 s of its due time.
The baseline measured in the same run is one poll of the due-timer query.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from engine import actions, clock, definitions, users  # noqa: E402
from engine.core import WorkflowEngine  # noqa: E402
from engine.db import Event, Process, ProcessInstance, make_engine  # noqa: E402
from engine.worker import Worker, _due  # noqa: E402
from workflows import setup  # noqa: E402

WAITING = 3000
PROBES = 20
INTERVAL = 0.2


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="deptflow-bench-timers-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        setup.initialise(url, demo=True)
        engine = make_engine(url)
        sessions = WorkflowEngine().session_factory(engine)
        with sessions() as session:
            definitions.deploy(session, None, (ROOT / "tests" / "data" / "timers.bpmn").read_text())
            session.get(Process, "timer_demo").starter_roles = ["sales_rep"]
            session.commit()
            steve = users.user_by_name(session, "steve")
            started = time.perf_counter()
            for n in range(WAITING):
                actions.start_process(session, steve, "timer_demo", {"title": f"Waiting {n}", "reply_by": "2099-01-01"})
                if n % 250 == 249:
                    session.commit()
            session.commit()
            per_start_ms = (time.perf_counter() - started) * 1000 / WAITING
            # Probes: started "29 min 55 s ago" + i * 0.25 s, so their PT30M timers fall due 5 s from now on.
            real_start = clock.utcnow()
            for i in range(PROBES):
                clock.set_clock(lambda i=i: real_start - timedelta(minutes=30) + timedelta(seconds=5 + i * 0.25))
                actions.start_process(session, steve, "timer_demo", {"title": f"Probe {i}", "reply_by": "2099-01-01"})
            session.commit()
            clock.set_clock(None)
            probes = {i.id: i.next_timer_at for i in session.scalars(
                select(ProcessInstance).where(ProcessInstance.title.like("Probe %")))}

        polls = []
        with sessions() as session:
            for _ in range(50):
                t0 = time.perf_counter()
                _due(session, clock.utcnow(), 1)
                polls.append((time.perf_counter() - t0) * 1000)

        worker = Worker(sessions, interval=INTERVAL, seal_every=None)  # timers only
        thread = worker.start_thread()
        last_due = max(probes.values())
        while clock.utcnow() < last_due + timedelta(seconds=3):
            time.sleep(0.1)  # the benchmark's own wall clock: waiting for real time to pass, not synchronising
        worker.stop()
        thread.join(timeout=10)

        with sessions() as session:
            fired = dict(session.execute(select(Event.instance_id, Event.at).where(
                Event.kind == "timer_fired", Event.instance_id.in_(list(probes)))).all())
        engine.dispose()

    latencies = sorted((fired[i] - due).total_seconds() * 1000 for i, due in probes.items() if i in fired)
    result = {
        "benchmark": "timer_latency",
        "waiting_instances": WAITING,
        "probes": PROBES,
        "probes_fired": len(latencies),
        "worker_interval_s": INTERVAL,
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1], 1) if latencies else None,
        "latency_ms_max": round(max(latencies), 1) if latencies else None,
        "baseline_poll_query_ms_median": round(statistics.median(polls), 3),
        "latency_p95_over_poll_query": round(latencies[int(len(latencies) * 0.95) - 1] / statistics.median(polls), 1)
        if latencies else None,
        "start_process_ms_mean": round(per_start_ms, 2),
        "target_met": bool(latencies) and len(latencies) == PROBES and max(latencies) <= 1000,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
