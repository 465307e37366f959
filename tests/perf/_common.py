"""Shared helpers of the benchmarks in ``tests/perf`` (not a benchmark itself).

Every ``bench_*.py`` runs standalone (``.venv/bin/python tests/perf/bench_engine.py``),
prints exactly one JSON object on stdout and removes what it created (temporary
directories, its own ``deptflow_bench_*`` PostgreSQL databases, the servers it started).
Progress and diagnostics go to stderr.

The *raw floor* is SpiffWorkflow alone doing the same step as deptflow: deserialize the
workflow with SpiffWorkflow's own ``BpmnWorkflowSerializer`` (``CAMUNDA_CONFIG``, the spec
included, as SpiffWorkflow ships it), complete the ready user task, ``do_engine_steps``,
serialize, and write the blob in one SQLite transaction with the ``sqlite3`` module (the
same WAL / ``synchronous=NORMAL`` settings as deptflow's SQLite engine).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import platform
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from anywhere, with or without the editable install
    sys.path.insert(0, str(ROOT))

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.camunda.parser import CamundaParser  # noqa: E402
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402

LOAD_AT_START = os.getloadavg() if hasattr(os, "getloadavg") else None

PROCESS = "marketing_plan_approval"
BPMN_FILE = ROOT / "bpmn" / f"{PROCESS}.bpmn"
PG_ADMIN_URL = os.environ.get("DEPTFLOW_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DEMO_PASSWORD = "demo"

# Form values as a browser posts them (strings); deptflow converts them with the form model.
PLAN = {
    "title": "Marketing plan 2027",
    "plan_year": "2027",
    "marketing_strategy": "Grow the dealer network in the north; two trade fairs; spring catalogue.",
    "sales_target": "4200000",
    "total_budget": "380000",
    "ad_expense_q1": "60000",
    "ad_expense_q2": "90000",
    "ad_expense_q3": "70000",
    "ad_expense_q4": "110000",
}
REVIEW_APPROVE = {"mm_review_decision": "approve", "gm_threshold": "500000", "mm_review_comment": "Fine."}
REVIEW_REJECT = {"mm_review_decision": "reject", "gm_threshold": "500000", "mm_review_comment": "More on Q4."}
REVISE = {k: v for k, v in PLAN.items() if k not in ("title", "plan_year")} | {"revision_notes": "Q4 detail added."}

_LONGS = {"plan_year", "sales_target", "total_budget", "ad_expense_q1", "ad_expense_q2", "ad_expense_q3",
          "ad_expense_q4", "gm_threshold"}


def typed(values: dict[str, str]) -> dict[str, Any]:
    """The values as deptflow stores them after validation (numbers as int): what the raw floor sets."""
    return {k: int(v) if k in _LONGS else v for k, v in values.items()}


# --- output and statistics -------------------------------------------------------------


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _finite(value: Any) -> Any:
    """NaN and infinities (no samples) become null: the output stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def emit(result: dict[str, Any]) -> None:
    """The one JSON object a benchmark prints on stdout."""
    print(json.dumps(_finite(result), indent=2, sort_keys=False, allow_nan=False))


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def percentile(samples: list[float], q: float) -> float:
    """``q``-th percentile (0..100) with linear interpolation."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p95, min and count of samples in seconds, reported in ms."""
    if not samples:
        return {"n": 0}
    return {
        "median_ms": ms(statistics.median(samples)),
        "p95_ms": ms(percentile(samples, 95)),
        "min_ms": ms(min(samples)),
        "n": len(samples),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    load_now = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": date.today().isoformat(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        # other work on the machine skews absolute times; ratios are measured interleaved
        "loadavg_1m": {"start": round(LOAD_AT_START[0], 2) if LOAD_AT_START else None,
                       "end": round(load_now[0], 2) if load_now else None},
        "revision": _revision(),
        "python": platform.python_version(),
        "SpiffWorkflow": version("SpiffWorkflow"),
        "SQLAlchemy": version("SQLAlchemy"),
    }


def _revision() -> str | None:
    """The commit measured, ``+dirty`` when engine/web/workflows have uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine", "web", "workflows", "bpmn"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty else "")) or None


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._start


# --- deptflow databases ------------------------------------------------------------------


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="deptflow_bench_") as path:
        yield Path(path)


def sqlite_database(directory: Path, name: str = "deptflow.sqlite3") -> str:
    """A fresh deptflow SQLite file: schema, catalogue, demo users."""
    from workflows.setup import initialise

    url = f"sqlite:///{directory / name}"
    initialise(url, demo=True)
    return url


def _pg_url(database: str) -> str:
    return re.sub(r"/[^/]*$", f"/{database}", PG_ADMIN_URL)


@contextlib.contextmanager
def postgres_database(purpose: str) -> Iterator[str]:
    """A fresh ``deptflow_bench_<purpose>_<pid>`` database with schema, catalogue and demo
    users, dropped on exit."""
    from sqlalchemy import create_engine, text

    from workflows.setup import initialise

    name = f"deptflow_bench_{purpose}_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {name}"))
        url = _pg_url(name)
        initialise(url, demo=True)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def sessions_for(url: str):
    from engine.core import WorkflowEngine
    from engine.db import make_engine

    engine = make_engine(url)
    return engine, WorkflowEngine().session_factory(engine)


# --- the raw SpiffWorkflow floor ---------------------------------------------------------


class RawSpiff:
    """SpiffWorkflow alone, persisting full serializations in a SQLite table."""

    def __init__(self, path: Path):
        parser = CamundaParser()
        parser.add_bpmn_file(str(BPMN_FILE))
        self.spec = parser.get_spec(PROCESS)
        self.subprocess_specs = parser.get_subprocess_specs(PROCESS)
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
        self.db = sqlite3.connect(str(path), isolation_level=None)  # explicit BEGIN / COMMIT below
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS workflow (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")

    def close(self) -> None:
        self.db.close()

    def start(self, values: dict[str, Any]) -> int:
        """New workflow with the start form's data, engine steps, serialize, INSERT, COMMIT."""
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs)
        for task in workflow.get_tasks():
            task.data.update(values)
        workflow.do_engine_steps()
        state = self.serializer.serialize_json(workflow)
        self.db.execute("BEGIN")
        cursor = self.db.execute("INSERT INTO workflow (state) VALUES (?)", (state,))
        self.db.execute("COMMIT")
        return cursor.lastrowid

    def complete(self, workflow_id: int, values: dict[str, Any], element_id: str | None = None) -> str:
        """SELECT, deserialize, complete the ready user task, engine steps, serialize, UPDATE, COMMIT.

        :returns: the element id of the task completed
        """
        self.db.execute("BEGIN IMMEDIATE")
        (state,) = self.db.execute("SELECT state FROM workflow WHERE id = ?", (workflow_id,)).fetchone()
        workflow = self.serializer.deserialize_json(state)
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        task = next(t for t in ready if element_id is None or t.task_spec.bpmn_id == element_id)
        task.data.update(values)
        task.run()
        workflow.do_engine_steps()
        state = self.serializer.serialize_json(workflow)
        self.db.execute("UPDATE workflow SET state = ? WHERE id = ?", (state, workflow_id))
        self.db.execute("COMMIT")
        return task.task_spec.bpmn_id

    def state_size(self, workflow_id: int) -> int:
        (size,) = self.db.execute("SELECT length(state) FROM workflow WHERE id = ?", (workflow_id,)).fetchone()
        return size


# --- HTTP: a server of our own and a keep-alive client ------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deptflow_command() -> list[str]:
    script = Path(sys.executable).with_name("deptflow")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from web.cli import main; sys.exit(main())"]


class Server(str):
    """``host:port`` of a running server, with the pid of the process we started."""

    pid: int


@contextlib.contextmanager
def server(url: str, workers: int, threads: int, log_path: Path) -> Iterator[Server]:
    """``deptflow serve`` on a free port of 127.0.0.1; yields its ``host:port`` (with ``.pid``);
    stopped (SIGTERM, then SIGKILL of the process group we started) on exit."""
    port = free_port()
    env = dict(os.environ, DEPTFLOW_DATABASE_URL=url, DEPTFLOW_SECRET_KEY="bench-secret-key",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = [*deptflow_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--threads", str(threads)]
    with open(log_path, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                   start_new_session=True)
    address = Server(f"127.0.0.1:{port}")
    address.pid = process.pid
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"deptflow serve exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/login")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"deptflow serve did not answer:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield address
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # gunicorn's arbiter stops its own workers
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the process group we created for it
                process.wait()


_ACCESS_LINE = re.compile(r'^\S+ - \S+ \[[^\]]+\] "')


def log_problems(log_path: Path, lines: int = 40) -> list[str]:
    """The last ``lines`` lines of a server log that are not access-log entries (tracebacks)."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip() and not _ACCESS_LINE.match(line)][-lines:]


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ROW = re.compile(r'<tr data-task-id="(\d+)" data-element-id="([^"]+)" data-instance-id="(\d+)">')


class LoginFailed(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Client:
    """A logged-in browser stand-in: one keep-alive connection, cookies, the CSRF token."""

    def __init__(self, address: str, timeout: float = 60):
        host, port = address.rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn = http.client.HTTPConnection(host, self.port, timeout=timeout)
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None

    def close(self) -> None:
        self.conn.close()

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        headers = {"Connection": "keep-alive"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):  # one reconnect when the server closed an idle connection
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for key, morsel in cookie.items():
                if morsel.value == "" or "1970" in (morsel["expires"] or ""):
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        found = CSRF.search(text)
        if found:
            self.csrf = found.group(1)
        return response.status, dict(response.headers), text

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        return self.request("POST", path, {**(form or {}), "csrf_token": self.csrf or ""})

    def login(self, username: str, password: str = DEMO_PASSWORD) -> None:
        status, _, _ = self.get("/login")
        assert status == 200 and self.csrf, f"login page: {status}"
        status, headers, text = self.post("/login", {"username": username, "password": password})
        if status != 302:
            raise LoginFailed(status, f"login as {username} failed: {status} {text[:300]}")
        self.get("/")  # the inbox: picks up the session's CSRF token

    def inbox(self) -> list[tuple[int, str, int]]:
        """(task id, element id, instance id) of every row of the inbox page."""
        status, _, text = self.get("/")
        assert status == 200, status
        return [(int(t), e, int(i)) for t, e, i in ROW.findall(text)]


class ApiClient:
    """One keep-alive connection, a bearer token, JSON in and out."""

    def __init__(self, address: str, token: str):
        host, port = address.split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                        "Accept": "application/json"}

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            self.connection.request("POST", path, json.dumps(body), self.headers)
            response = self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # the server closed the connection while this client waited (gunicorn's keep-alive timeout): once more
            self.connection.close()
            self.connection.request("POST", path, json.dumps(body), self.headers)
            response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def close(self) -> None:
        self.connection.close()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


# --- the served demo: marketing plans started and reviewed over HTTP beside the raw floor -----------------


@dataclass
class ServedDemo:
    """The demo organisation's SQLite database served by ``deptflow serve --workers 1 --threads 8``, and the raw
    floor of the same start and review step."""

    url: str
    address: Server
    raw: RawSpiff
    #: PLAN and REVIEW_APPROVE as the raw floor's task data holds them
    plan: dict[str, Any]
    review: dict[str, Any]

    def raw_start(self) -> tuple[float, int]:
        """The seconds of a raw start, and its workflow id."""
        return timed(lambda: self.raw.start(self.plan))

    def raw_complete(self, workflow_id: int) -> float:
        """The seconds of a raw review step (approve)."""
        return timed(lambda: self.raw.complete(workflow_id, self.review, "review_marketing_plan"))[0]


@contextlib.contextmanager
def served_demo() -> Iterator[ServedDemo]:
    """A fresh demo database, its server and the raw floor, all removed on exit."""
    with temp_dir() as tmp:
        url = sqlite_database(tmp)
        raw = RawSpiff(tmp / "raw.sqlite3")
        try:
            with server(url, workers=1, threads=8, log_path=tmp / "server.log") as address:
                yield ServedDemo(url, address, raw, typed(PLAN), typed(REVIEW_APPROVE))
        finally:
            raw.close()


def timed_request(send: Callable[[], tuple], expected: int, what: str) -> float:
    """The seconds of a request until its answer is read (``send`` returns the status first, the body last).

    :raises RuntimeError: the status is not ``expected``
    """
    seconds, answer = timed(send)
    if answer[0] != expected:
        raise RuntimeError(f"{what}: {answer[0]} {str(answer[-1])[:500]}")
    return seconds


def overhead(label: str, times: list[float], raw_times: list[float], target: float) -> dict[str, Any]:
    """The requests' times beside the raw floor's, their medians' ratio and whether it meets ``target``."""
    measured = ratio(statistics.median(times), statistics.median(raw_times))
    return {label: summary(times), "raw_floor": summary(raw_times), "ratio": measured, "target": target,
            "met": measured <= target}


def profiled(label: str, fn: Callable[[], Any], top: int = 30) -> Any:
    """Run ``fn`` under cProfile and print the top functions to stderr when
    ``DEPTFLOW_BENCH_PROFILE=1`` (the figures are not used); otherwise just run it."""
    if os.environ.get("DEPTFLOW_BENCH_PROFILE") != "1":
        return fn()
    import cProfile
    import io
    import pstats

    profile = cProfile.Profile()
    value = profile.runcall(fn)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(top)
    log(f"--- profile: {label} ---\n{out.getvalue()}")
    return value


# --- CPU accounting (Linux /proc; None elsewhere) ------------------------------------------


def _proc_table() -> tuple[dict[int, list[int]], dict[int, float], dict[int, str]]:
    """children by parent pid, CPU seconds by pid, command line by pid."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    cmdline: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline[pid] = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return children, cpu, cmdline


def cpu_seconds(root_pid: int | None = None, cmdline_contains: str | None = None) -> float | None:
    """CPU seconds so far of ``root_pid`` and its descendants, or of every process whose command
    line contains ``cmdline_contains`` (e.g. the PostgreSQL backends of one database)."""
    try:
        children, cpu, cmdline = _proc_table()
    except (OSError, ValueError, AttributeError):
        return None
    if cmdline_contains is not None:
        return sum(cpu[p] for p, line in cmdline.items() if cmdline_contains in line and p in cpu)
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def children_cpu_seconds(root_pid: int) -> dict[int, float]:
    """CPU seconds of each direct child of ``root_pid`` with its descendants (gunicorn workers)."""
    try:
        children, _, _ = _proc_table()
    except (OSError, ValueError, AttributeError):
        return {}
    return {child: cpu_seconds(child) or 0.0 for child in children.get(root_pid, [])}


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have used (``/proc/stat``), to see other load."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")
