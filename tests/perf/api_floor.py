"""Where an API request's time goes, measured so that a busy machine distorts it least (not a target of
its own, so not a ``bench_*`` script; see docs/performance.md, issue 17).

* ``in_process``: CPU time (``time.process_time``) of the API's start and complete called through the Flask
  app (WSGI, bearer token, JSON; no HTTP), of the same engine action alone (action + commit, timed as
  ``bench_engine.py`` times it) and of the raw SpiffWorkflow step, interleaved; the API's own cost (token,
  Flask, arguments, answer) is the difference between the first two.
* ``http``: wall time of requests that do (almost) nothing, round-robin against a raw start: a hello-world
  WSGI app in gunicorn (gthread, 8 threads, as ``deptflow serve``), ``/healthz`` of ``deptflow serve`` (Flask,
  no login, no database) and a bearer request refused after its token was checked (the completion of a task
  that does not exist: token, task read, 404 problem) — what every API request pays before its action.

    .venv/bin/python tests/perf/api_floor.py
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PLAN,
    PROCESS,
    REVIEW_APPROVE,
    ROOT,
    RawSpiff,
    emit,
    free_port,
    log,
    machine,
    ratio,
    server,
    sessions_for,
    sqlite_database,
    temp_dir,
    typed,
)

ROUNDS = 200
WARMUP = 15
HELLO = "def app(environ, start_response):\n    environ['wsgi.input'].read()\n    start_response('200 OK', " \
        "[('Content-Type', 'application/json'), ('Content-Length', '2')])\n    return [b'{}']\n"


def _tokens(url: str) -> dict[str, str]:
    from engine import api_tokens, users

    engine, sessions = sessions_for(url)
    with sessions() as session:
        made = {name: api_tokens.create_token(session, users.user_by_name(session, name), "floor").secret
                for name in ("rita", "mark")}
        session.commit()
    engine.dispose()
    return made


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def in_process(tmp: Path) -> dict[str, Any]:
    from sqlalchemy import select
    from werkzeug.test import EnvironBuilder

    from engine import actions, users
    from engine.db import HumanTask
    from web import create_app

    url = sqlite_database(tmp, "in_process.sqlite3")
    tokens = _tokens(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "floor"})
    sessions = app.extensions["deptflow_sessions"]
    with sessions() as session:
        rita, mark = (users.user_by_name(session, name).id for name in ("rita", "mark"))

    def cpu(fn: Callable[[], Any]) -> float:
        c0 = time.process_time()
        fn()
        return time.process_time() - c0

    def api(path: str, token: str, body: dict[str, Any]) -> float:
        environ = EnvironBuilder(path=path, method="POST", json=body,
                                 headers={"Authorization": f"Bearer {token}"}).get_environ()
        return cpu(lambda: b"".join(app(environ, lambda *_: None)))

    def engine_action(user_id: int, action: Callable[..., Any], *args: Any) -> float:
        """As bench_engine.py times it: the action and the commit; the user (with roles) loaded before."""
        with sessions() as session:
            actor = users.get_user(session, user_id)

            def run() -> None:
                action(session, actor, *args)
                session.commit()
            return cpu(run)

    def reviews() -> list[int]:
        with sessions() as session:
            return list(session.scalars(select(HumanTask.id).where(
                HumanTask.element_id == "review_marketing_plan", HumanTask.status == "open").order_by(HumanTask.id)))

    raw = RawSpiff(tmp / "raw_in_process.sqlite3")
    plan, review = typed(PLAN), typed(REVIEW_APPROVE)
    start_path = f"/api/v1/processes/{PROCESS}/start"
    for _ in range(WARMUP):
        api(start_path, tokens["rita"], {"values": PLAN})
        engine_action(rita, actions.start_process, PROCESS, PLAN)
    for task_id in reviews():
        engine_action(mark, actions.complete_task, task_id, REVIEW_APPROVE)
    times: dict[str, list[float]] = {key: [] for key in ("api_start", "engine_start", "raw_start", "api_complete",
                                                         "engine_complete", "raw_complete")}
    raw_ids = []
    for _ in range(ROUNDS):
        times["api_start"].append(api(start_path, tokens["rita"], {"values": PLAN}))
        times["engine_start"].append(engine_action(rita, actions.start_process, PROCESS, PLAN))
        c0 = time.process_time()
        raw_ids.append(raw.start(plan))
        times["raw_start"].append(time.process_time() - c0)
    open_tasks = reviews()
    for i, workflow_id in enumerate(raw_ids[:len(open_tasks) // 2]):
        times["api_complete"].append(api(f"/api/v1/tasks/{open_tasks[2 * i]}/complete", tokens["mark"],
                                         {"values": REVIEW_APPROVE}))
        times["engine_complete"].append(engine_action(mark, actions.complete_task, open_tasks[2 * i + 1],
                                                      REVIEW_APPROVE))
        times["raw_complete"].append(cpu(lambda w=workflow_id: raw.complete(w, review, "review_marketing_plan")))
    raw.close()
    app.extensions["deptflow_engine"].dispose()
    result: dict[str, Any] = {}
    for kind in ("start", "complete"):
        api_ms, engine_ms, raw_ms = (_median_ms(times[f"{who}_{kind}"]) for who in ("api", "engine", "raw"))
        result[kind] = {"api_cpu_ms": api_ms, "engine_cpu_ms": engine_ms, "raw_cpu_ms": raw_ms,
                        "api_over_engine_ms": round(api_ms - engine_ms, 3), "api_ratio": ratio(api_ms, raw_ms),
                        "engine_ratio": ratio(engine_ms, raw_ms)}
    return result


def over_http(tmp: Path) -> dict[str, Any]:
    url = sqlite_database(tmp, "http.sqlite3")
    token = _tokens(url)["mark"]
    (tmp / "hello_wsgi.py").write_text(HELLO)
    port = free_port()
    gunicorn = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "--workers", "1", "--threads", "8",
                                 "--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "hello_wsgi:app"],
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raw = RawSpiff(tmp / "raw_http.sqlite3")
    plan = typed(PLAN)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}
    body = json.dumps({"values": REVIEW_APPROVE})
    try:
        with server(url, workers=1, threads=8, log_path=tmp / "server.log") as address:
            deptflow_port = int(address.split(":")[1])
            targets = {
                "gunicorn_hello_world": (port, "POST", "/", body, headers),
                "deptflow_healthz": (deptflow_port, "GET", "/healthz", None, {}),
                "deptflow_bearer_refused_after_token_check": (
                    deptflow_port, "POST", "/api/v1/tasks/999999999/complete", body, headers),
            }
            connections = {name: http.client.HTTPConnection("127.0.0.1", target[0], timeout=30)
                           for name, target in targets.items()}
            times: dict[str, list[float]] = {name: [] for name in [*targets, "raw_start"]}
            for round_ in range(WARMUP + ROUNDS):
                t0 = time.perf_counter()
                raw.start(plan)
                samples = {"raw_start": time.perf_counter() - t0}
                for name, (_port, method, path, payload, sent) in targets.items():
                    t0 = time.perf_counter()
                    connections[name].request(method, path, payload, sent)
                    connections[name].getresponse().read()
                    samples[name] = time.perf_counter() - t0
                if round_ >= WARMUP:
                    for name, seconds in samples.items():
                        times[name].append(seconds)
            for connection in connections.values():
                connection.close()
    finally:
        gunicorn.terminate()
        gunicorn.wait()
        raw.close()
    floor = _median_ms(times["raw_start"])
    return {name: {"median_ms": _median_ms(samples), "ratio_to_raw_start": ratio(_median_ms(samples), floor)}
            for name, samples in times.items()}


def main() -> None:
    began = time.perf_counter()
    os.chdir(ROOT)
    with temp_dir() as tmp:
        log("api_floor: in-process CPU of the API, the engine and raw SpiffWorkflow")
        inside = in_process(tmp)
        log("api_floor: HTTP requests that do almost nothing")
        outside = over_http(tmp)
    emit({"benchmark": "api_floor", "in_process": inside, "http": outside,
          "runtime_s": round(time.perf_counter() - began, 1), "machine": machine()})


if __name__ == "__main__":
    main()
