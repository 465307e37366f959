"""Benchmark 4 — HTTP throughput under contention: gunicorn with 2 workers on PostgreSQL.

Creates its own database ``deptflow_bench_contention_<pid>``, 16 extra users (four each of
marketing manager, finance, general manager, sales manager) and a stock of running
marketing-plan instances (half of them above the general-manager threshold). Then
``deptflow serve --workers 2`` runs and 16 client threads, each logged in as a different
user with its own keep-alive connection, loop for at most ``DURATION`` seconds:

    GET /  →  pick up to 3 rows (30 % of picks take the first row, which every thread of
    the same role sees too: deliberate collisions; the rest at random)  →  for each, half
    the time POST /tasks/N/claim then POST /tasks/N/complete, half the time complete
    directly (races on the completion itself).

A lost race is a 409 ("already completed by …") or 403 ("assigned to …"); a 5xx is a
failure (logins included; the server log's tracebacks then go into the JSON). Afterwards
the database is checked: every completed human task has exactly one ``completed`` event,
no other task has one, every completion a client was told succeeded is a completed task
(and no task was reported completed twice), each instance's SpiffWorkflow state agrees
with its task rows, and the audit chain verifies.

Reports completions/s, p50/p95 latency, the status counts and the checks.
Targets: 0 responses 5xx, consistency; >= 300 completions/s (issue 8).

    .venv/bin/python tests/perf/bench_contention.py
"""

from __future__ import annotations

import http.client
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    DEMO_PASSWORD,
    PLAN,
    PROCESS,
    REVIEW_APPROVE,
    ROW,
    Client,
    LoginFailed,
    children_cpu_seconds,
    cpu_seconds,
    emit,
    log,
    log_problems,
    machine,
    machine_busy_seconds,
    percentile,
    postgres_database,
    server,
    sessions_for,
    summary,
    temp_dir,
)

THREADS = 16
WORKERS = 2
SERVER_THREADS = 8
INSTANCES = 800  # more work than 16 users finish in DURATION, so the rate is not capped by running out
DURATION = 25.0
BATCH = 3
HOT_SHARE = 0.3
TARGET_RATE = 300

ROLES = ("marketing_manager", "finance", "general_manager", "sales_manager")
VALUES = {
    "review_marketing_plan": REVIEW_APPROVE,
    "check_marketing_budget": {"finance_decision": "approve", "finance_comment": "Within budget."},
    "approve_marketing_plan": {"gm_decision": "approve", "gm_comment": "Go."},
    "acknowledge_marketing_plan": {"plan_acknowledged": "true"},
}


def prepare(url: str) -> list[str]:
    """Bench users and the stock of running instances; returns the usernames."""
    from engine import actions, users

    engine, sessions = sessions_for(url)
    names = []
    with sessions() as s:
        for i in range(THREADS):
            role = ROLES[i % len(ROLES)]
            name = f"bench{i:02d}_{role}"
            users.ensure_user(s, name, f"Bench user {i}", DEMO_PASSWORD, [role], email=f"{name}@example.com")
            names.append(name)
        s.commit()
        rita = users.user_by_name(s, "rita")
        for i in range(INSTANCES):
            values = {**PLAN, "title": f"Plan {i}", "total_budget": "380000" if i % 2 else "900000"}
            actions.start_process(s, rita, PROCESS, values)
            s.commit()
    engine.dispose()
    return names


class Worker(threading.Thread):
    def __init__(self, address: str, username: str, seed: int, start: threading.Barrier, stop: threading.Event):
        super().__init__(name=username, daemon=True)
        self.address, self.username = address, username
        self.random = random.Random(seed)
        self.start_barrier, self.stop = start, stop
        self.latency: dict[str, list[float]] = {"inbox": [], "claim": [], "complete": []}
        self.status: Counter = Counter()
        self.completed: list[int] = []
        self.errors: list[str] = []
        self.failure: str | None = None

    def timed(self, kind: str, method: str, path: str, form: dict | None = None) -> tuple[int, str]:
        t0 = time.perf_counter()
        if method == "GET":
            status, _, body = self.client.get(path)
        else:
            status, _, body = self.client.post(path, form)
        self.latency[kind].append(time.perf_counter() - t0)
        self.status[f"{kind} {status}"] += 1
        if status >= 500 and len(self.errors) < 5:
            self.errors.append(f"{method} {path}: {status} {body[:300]}")
        return status, body

    def run(self) -> None:
        self.client = Client(self.address)
        try:
            self.client.login(self.username)
        except Exception as exc:  # noqa: BLE001 - reported in the JSON; the others race on
            self.status[f"login {exc.status}" if isinstance(exc, LoginFailed) else "login client error"] += 1
            self.failure = f"login: {exc!r}"[:300]
            return
        finally:
            self.start_barrier.wait()
        idle = 0
        while not self.stop.is_set():
            try:
                idle = self.round(idle)
            except (OSError, http.client.HTTPException) as exc:  # counted, the thread goes on
                self.status["client error"] += 1
                if len(self.errors) < 5:
                    self.errors.append(f"client: {exc!r}")
                self.client.close()
                self.client = Client(self.address)
                self.client.login(self.username)
        self.client.close()

    def round(self, idle: int) -> int:
        """One look at the inbox and up to BATCH attempts; returns the new idle count."""
        status, body = self.timed("inbox", "GET", "/")
        rows = [(int(t), e) for t, e, _ in ROW.findall(body) if e in VALUES] if status == 200 else []
        if not rows:
            time.sleep(min(0.02 * (idle + 1), 0.2))
            return idle + 1
        picks = []
        for _ in range(min(BATCH, len(rows))):
            picks.append(rows[0] if self.random.random() < HOT_SHARE else self.random.choice(rows))
        for task_id, element in dict(picks).items():
            if self.stop.is_set():
                break
            if self.random.random() < 0.5:
                status, _ = self.timed("claim", "POST", f"/tasks/{task_id}/claim")
                if status != 302:
                    continue
            status, _ = self.timed("complete", "POST", f"/tasks/{task_id}/complete", VALUES[element])
            if status == 302:
                self.completed.append(task_id)
        return 0


def verify(url: str, reported: list[int]) -> dict:
    """Consistency of the database after the run."""
    from SpiffWorkflow.util.task import TaskState
    from sqlalchemy import select, text

    from engine import persistence
    from engine.db import ProcessInstance
    from engine.running import RunningInstance

    engine, sessions = sessions_for(url)
    problems: list[str] = []
    with engine.connect() as conn:
        per_task = conn.execute(text(
            "SELECT t.id, t.status, t.instance_id, t.spiff_task_id, count(e.id) FROM human_tasks t "
            "LEFT JOIN events e ON e.task_id = t.id AND e.kind = 'completed' GROUP BY t.id")).all()
        started = dict(conn.execute(text(
            "SELECT instance_id, count(*) FROM events WHERE kind = 'started' GROUP BY instance_id")).all())
        orphan_completions = conn.execute(text(
            "SELECT count(*) FROM events WHERE kind = 'completed' AND task_id IS NULL")).scalar()
    completed_rows = {row[0] for row in per_task if row[1] == "completed"}
    for task_id, status, _, _, events in per_task:
        expected = 1 if status == "completed" else 0
        if events != expected:
            problems.append(f"task {task_id} ({status}) has {events} 'completed' events")
    if orphan_completions:
        problems.append(f"{orphan_completions} 'completed' events without a task")
    duplicates = [t for t, n in Counter(reported).items() if n > 1]
    if duplicates:
        problems.append(f"tasks reported completed to two clients: {duplicates[:10]}")
    if set(reported) != completed_rows:
        lost = set(reported) - completed_rows
        unknown = completed_rows - set(reported)
        problems.append(f"client successes vs completed rows: {len(lost)} lost, {len(unknown)} unreported")

    open_by_instance: dict[int, set[str]] = {}
    completed_by_instance: Counter = Counter()
    for _, status, instance_id, spiff_id, _ in per_task:
        if status == "open":
            open_by_instance.setdefault(instance_id, set()).add(spiff_id)
        elif status == "completed":
            completed_by_instance[instance_id] += 1
    checked = finished = 0
    with sessions() as s:
        for instance in s.scalars(select(ProcessInstance).where(ProcessInstance.process_key == PROCESS)):
            checked += 1
            if started.get(instance.id) != 1:
                problems.append(f"instance {instance.id}: {started.get(instance.id, 0)} 'started' events")
            loaded = RunningInstance.open(s, instance.id)
            workflow = loaded.workflow
            ready = {str(t.id) for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
            if ready != open_by_instance.get(instance.id, set()):
                problems.append(f"instance {instance.id}: ready user tasks differ from its open task rows")
            done = len(workflow.get_tasks(state=TaskState.COMPLETED, manual=True)) + sum(  # + compacted ones
                1 for t in persistence.archived_tasks(s, instance.id)
                if t["state"] == TaskState.COMPLETED and t["bpmn_id"] in loaded.definition.user_tasks)
            if done != completed_by_instance[instance.id]:
                problems.append(f"instance {instance.id}: {done} completed in the workflow, "
                                f"{completed_by_instance[instance.id]} completed task rows")
            if workflow.is_completed() != (instance.status == "completed"):
                problems.append(f"instance {instance.id}: status {instance.status} but workflow "
                                f"completed={workflow.is_completed()}")
            finished += instance.status == "completed"
        chain = None
        try:
            from engine import audit

            if hasattr(audit, "verify"):
                verification = audit.verify(s)
                chain = str(verification)
                if not getattr(verification, "ok", True):
                    problems.append(f"audit chain: {chain}")
        except Exception as exc:  # noqa: BLE001 - reported, not fatal: the chain is optional here
            chain = f"not checked: {exc}"
    engine.dispose()
    return {
        "consistent": not problems,
        "problems": problems[:20],
        "tasks_completed_in_db": len(completed_rows),
        "instances_checked": checked,
        "instances_finished": finished,
        "audit_chain": chain,
    }


def main() -> None:
    began = time.perf_counter()
    with temp_dir() as tmp, postgres_database("contention") as url:
        log(f"bench_contention: {THREADS} users, {INSTANCES} instances")
        names = prepare(url)
        with server(url, workers=WORKERS, threads=SERVER_THREADS, log_path=tmp / "server.log") as address:
            stop = threading.Event()
            barrier = threading.Barrier(THREADS + 1)
            workers = [Worker(address, name, seed, barrier, stop) for seed, name in enumerate(names)]
            for w in workers:
                w.start()
            barrier.wait()
            log(f"bench_contention: racing for at most {DURATION:.0f} s")
            database = url.rsplit("/", 1)[1]
            cpu0 = (cpu_seconds(address.pid), cpu_seconds(cmdline_contains=f" {database} "),
                    sum(os.times()[:2]), machine_busy_seconds())
            workers0 = children_cpu_seconds(address.pid)
            lock_waits: list[int] = []
            waits_by_statement: Counter = Counter()
            t0 = time.perf_counter()
            engine, _ = sessions_for(url)
            from sqlalchemy import text

            while time.perf_counter() - t0 < DURATION:
                time.sleep(0.25)
                with engine.connect() as conn:
                    running = conn.execute(text("SELECT count(*) FROM process_instances "
                                                "WHERE status = 'running'")).scalar()
                    waiting = conn.execute(text(  # server connections waiting for a lock now, and on what
                        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'")).scalars().all()
                    lock_waits.append(len(waiting))
                    for query in waiting:
                        waits_by_statement[" ".join(query.split())[:60]] += 1
                if running == 0:
                    break
            stop.set()
            for w in workers:
                w.join(timeout=60)
            elapsed = time.perf_counter() - t0
            cpu1 = (cpu_seconds(address.pid), cpu_seconds(cmdline_contains=f" {database} "),
                    sum(os.times()[:2]), machine_busy_seconds())
            workers1 = children_cpu_seconds(address.pid)
            engine.dispose()
        failed_threads = [w.name for w in workers if w.failure]
        server_log = log_problems(tmp / "server.log") if failed_threads or any(w.errors for w in workers) else []
        log("bench_contention: verifying the database")
        reported = [t for w in workers for t in w.completed]
        checks = verify(url, reported)

    statuses: Counter = Counter()
    for w in workers:
        statuses.update(w.status)
    latency = {kind: [x for w in workers for x in w.latency[kind]] for kind in ("inbox", "claim", "complete")}
    every = [x for values in latency.values() for x in values]
    server_errors = sum(n for key, n in statuses.items() if key.rsplit(" ", 1)[1].isdigit()
                        and int(key.rsplit(" ", 1)[1]) >= 500)
    rate = len(reported) / elapsed

    def used(i: int) -> float | None:
        return None if cpu0[i] is None or cpu1[i] is None else round(cpu1[i] - cpu0[i], 2)

    cpu = {"server_s": used(0), "postgres_backends_s": used(1), "clients_s": used(2), "machine_busy_s": used(3),
           "machine_capacity_s": round(elapsed * (os.cpu_count() or 1), 2)}
    if cpu["machine_busy_s"] is not None:
        known = sum(v for v in (cpu["server_s"], cpu["postgres_backends_s"], cpu["clients_s"]) if v)
        cpu["other_processes_s"] = round(cpu["machine_busy_s"] - known, 2)
    cpu["per_worker_s"] = sorted((round(workers1[p] - workers0.get(p, 0.0), 2) for p in workers1), reverse=True)
    cpu["lock_waiting_connections_avg"] = round(statistics.mean(lock_waits), 2) if lock_waits else None
    cpu["lock_waits_by_statement"] = dict(waits_by_statement.most_common(4))  # samples every 0.25 s
    if cpu["server_s"] and reported:
        cpu["server_ms_per_completion"] = round(cpu["server_s"] * 1000 / len(reported), 1)
    emit({
        "benchmark": "http_contention",
        "server": f"deptflow serve --workers {WORKERS} --threads {SERVER_THREADS} (gunicorn), PostgreSQL",
        "clients": THREADS,
        "instances": INSTANCES,
        "elapsed_s": round(elapsed, 2),
        "completions": len(reported),
        "completions_per_s": round(rate, 1),
        "target_completions_per_s": TARGET_RATE,
        "rate_met": rate >= TARGET_RATE,
        "latency": {
            "complete": {"p50_ms": round(percentile(latency["complete"], 50) * 1000, 1),
                         "p95_ms": round(percentile(latency["complete"], 95) * 1000, 1)},
            "claim": {"p50_ms": round(percentile(latency["claim"], 50) * 1000, 1),
                      "p95_ms": round(percentile(latency["claim"], 95) * 1000, 1)},
            "inbox": {"p50_ms": round(percentile(latency["inbox"], 50) * 1000, 1),
                      "p95_ms": round(percentile(latency["inbox"], 95) * 1000, 1)},
            "all_requests": {**summary(every), "p50_ms": round(percentile(every, 50) * 1000, 1)},
        },
        "requests_per_s": round(len(every) / elapsed, 1),
        "cpu": cpu,
        "status_counts": dict(sorted(statuses.items())),
        "server_errors_5xx": server_errors,
        "server_error_samples": [e for w in workers for e in w.errors][:5],
        "no_5xx_met": server_errors == 0,
        "client_threads_failed": {w.name: w.failure for w in workers if w.failure},
        "server_log_problems": server_log,
        "consistency": checks,
        "runtime_s": round(time.perf_counter() - began, 1),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
