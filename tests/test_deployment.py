"""The multi-process deployment of the README, end to end on PostgreSQL.

"Running on PostgreSQL with gunicorn" and "Deadlines, timers and notifications": an empty
database of its own (``empty_postgres_url`` in conftest), ``deptflow init --demo``,
``deptflow deploy FILE``, ``deptflow serve --no-worker`` with several gunicorn workers and,
beside it, ``deptflow worker`` — each a real process started from the virtualenv's console
script with ``DEPTFLOW_DATABASE_URL`` and ``DEPTFLOW_SECRET_KEY``.

It shows that any gunicorn worker serves any request of a logged-in user (the worker holding
each connection is looked up in ``/proc``), that a case moves from one user to another, and
that timers are fired by the separate worker process: the timer of a case is overdue and
unfired while only ``serve --no-worker`` runs, and fires once ``deptflow worker`` is started.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.clock import utcnow
from engine.core import WorkflowEngine
from engine.db import Event, HumanTask, ProcessInstance, User, make_engine
from workflows.catalogue import DEMO_PASSWORD

pytestmark = pytest.mark.postgres

DEPTFLOW = Path(sys.executable).parent / "deptflow"
DEADLINE = 30.0  # seconds for any one thing to happen (the whole test takes 11-15 s)

# An interrupting boundary timer (PT2S) on the sales representative's task leads to the
# marketing manager's escalation task.
TIMER_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Defs_deployment_check" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="deployment_check" name="Deployment check" isExecutable="true">
    <bpmn:laneSet id="LaneSet_1">
      <bpmn:lane id="Lane_sales_rep" name="Sales representative">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>answer</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>too_late</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>answered</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="Lane_marketing_manager" name="Marketing manager">
        <bpmn:flowNodeRef>chase</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>chased</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Question">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="title" label="Title" type="string">
          <camunda:validation><camunda:constraint name="required" /></camunda:validation>
        </camunda:formField>
      </camunda:formData></bpmn:extensionElements>
      <bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="answer" name="Answer the customer" camunda:candidateGroups="sales_rep">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="reply" label="Reply" type="string" />
      </camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="too_late" name="After 2 seconds" attachedToRef="answer">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition id="too_late_timer">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">PT2S</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="chase" name="Chase the answer" camunda:candidateGroups="marketing_manager">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="chase_note" label="Note" type="string" />
      </camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="answered"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="chased"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer" />
    <bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="answered" />
    <bpmn:sequenceFlow id="f3" sourceRef="too_late" targetRef="chase" />
    <bpmn:sequenceFlow id="f4" sourceRef="chase" targetRef="chased" />
  </bpmn:process>
</bpmn:definitions>
"""

PLAN = {"title": "Marketing plan 2027 (deployment)", "plan_year": "2027", "marketing_strategy": "Dealers in the east",
        "sales_target": "12000000", "total_budget": "400000", "ad_expense_q1": "100000",
        "ad_expense_q2": "100000", "ad_expense_q3": "100000", "ad_expense_q4": "100000"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ROW = re.compile(r'<tr data-task-id="(\d+)" data-element-id="([^"]+)" data-instance-id="(\d+)">')


# --- processes ---------------------------------------------------------------------------


class Processes:
    """The ``deptflow`` processes of one test: run, start, stop (SIGTERM, then SIGKILL), logs."""

    def __init__(self, env: dict[str, str], directory: Path):
        self.env, self.directory = env, directory
        self.running: dict[str, subprocess.Popen] = {}
        self.left_over: dict[str, set[int]] = {}  # processes of its group still alive after it stopped

    def log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def run(self, *args: str) -> str:
        """Run a command to its end; its output, or a failure naming its exit status and output."""
        result = subprocess.run([str(DEPTFLOW), *args], env=self.env, cwd=self.directory, capture_output=True,
                                text=True, timeout=DEADLINE)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"deptflow {' '.join(args)} exited {result.returncode}:\n{output}"
        return output

    def start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.log(name), "wb") as out:
            process = subprocess.Popen([str(DEPTFLOW), *args], env=self.env, cwd=self.directory, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.running[name] = process
        return process

    def stop(self, name: str, timeout: float = 10) -> int:
        """SIGTERM, as a service manager stops it; SIGKILL of what is left of its process group after
        ``timeout`` (the process was started in a session of its own: the group is only ours)."""
        process = self.running[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.left_over[name] = _group(process.pid)  # e.g. gunicorn workers that outlived their arbiter
        for pid in self.left_over[name]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return process.returncode

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def tails(self, lines: int = 40) -> str:
        parts = []
        for name in self.running:
            try:
                text_ = self.log(name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                text_ = ""
            status = self.running[name].poll()
            parts.append(f"--- {name} ({'running' if status is None else f'exit {status}'}), last {lines} lines ---\n"
                         + "\n".join(text_.splitlines()[-lines:]))
        return "\n".join(parts)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(what: str, check: Callable[[], Any], deadline: float = DEADLINE, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"after {deadline:.0f} s still waiting for {what} (last: {value!r})")
        time.sleep(every)


# --- which gunicorn worker holds a connection (Linux /proc) -----------------------------------


def _stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields after the command name) of every process, from ``/proc/<pid>/stat``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            yield int(entry), stat[stat.rindex(")") + 2:].split()


def _children(pid: int) -> set[int]:
    return {child for child, fields in _stats() if int(fields[1]) == pid}


def _group(pgid: int) -> set[int]:
    """The live processes of process group ``pgid``."""
    return {pid for pid, fields in _stats() if int(fields[2]) == pgid and fields[0] != "Z"}


def _hex_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"


def _serving_pid(conn: http.client.HTTPConnection, candidates: set[int]) -> int | None:
    """The process among ``candidates`` that holds the server end of the open connection ``conn``."""
    client_end, server_end = conn.sock.getsockname(), conn.sock.getpeername()
    local, remote = _hex_address(server_end), _hex_address(client_end)
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            inode = fields[9]
    if inode is None:
        return None
    for pid in candidates:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
    return None


# --- HTTP --------------------------------------------------------------------------------


class Browser:
    """Cookies and the CSRF token of one user; a keep-alive connection or a new one per request."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None
        self.conn: http.client.HTTPConnection | None = None
        self.reused = False  # the keep-alive connection has answered before

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)

    def request(self, method: str, path: str, form: dict[str, str] | None = None, *,
                conn: http.client.HTTPConnection | None = None) -> tuple[int, str, str]:
        """(status, Location, body) over ``conn``, or else the browser's keep-alive connection."""
        headers = {"Connection": "keep-alive"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode({**form, "csrf_token": self.csrf or ""})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if conn is None:
            if self.conn is None:
                self.conn, self.reused = self.connect(), False
            conn = self.conn
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            page = response.read().decode("utf-8", "replace")
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if conn is not self.conn or not self.reused:
                raise
            # gunicorn closed the idle keep-alive connection (keepalive: 2 s) before reading the
            # request: send it again on a new connection, as a browser does
            self.close()
            return self.request(method, path, form)
        if conn is self.conn:
            self.reused = True
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for key, morsel in cookie.items():
                if morsel.value == "" or "1970" in (morsel["expires"] or ""):
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value
        if response.getheader("Connection", "").lower() == "close" and conn is self.conn:
            self.close()
        found = CSRF.search(page)
        if found:
            self.csrf = found.group(1)
        return response.status, response.getheader("Location", ""), page

    def post(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        return self.request("POST", path, form or {})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def login(self, username: str) -> None:
        status, _, _ = self.request("GET", "/login")
        assert status == 200 and self.csrf, f"login page: {status}"
        status, location, page = self.post("/login", {"username": username, "password": DEMO_PASSWORD})
        assert status == 302, f"login as {username}: {status} {page[:500]}"
        status, _, _ = self.request("GET", urllib.parse.urlsplit(location).path or "/")
        assert status == 200, f"inbox after login as {username}: {status}"

    def tasks(self, instance_id: int) -> dict[str, int]:
        """The inbox rows of one case: element id -> task id."""
        status, _, page = self.request("GET", "/")
        assert status == 200, f"inbox: {status}"
        return {element: int(task) for task, element, instance in ROW.findall(page) if int(instance) == instance_id}

    def start_case(self, key: str, values: dict[str, str]) -> int:
        status, _, page = self.request("GET", f"/processes/{key}/start")
        assert status == 200, f"start form of {key}: {status}"
        status, location, page = self.post(f"/processes/{key}/start", values)
        assert status == 302, f"start {key}: {status} {page[:1000]}"
        return int(location.rstrip("/").rsplit("/", 1)[1])

    def complete(self, task_id: int, values: dict[str, str]) -> None:
        status, _, page = self.post(f"/tasks/{task_id}/claim")
        assert status == 302, f"claim task {task_id}: {status} {page[:1000]}"
        status, _, page = self.post(f"/tasks/{task_id}/complete", values)
        assert status == 302, f"complete task {task_id}: {status} {page[:1000]}"


# --- the test ----------------------------------------------------------------------------


def test_gunicorn_workers_and_a_separate_timer_worker_on_postgresql(empty_postgres_url: str, tmp_path: Path):
    assert DEPTFLOW.exists(), f"the console script {DEPTFLOW} is missing: install the project into the venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPTFLOW_")}
    env.update(DEPTFLOW_DATABASE_URL=empty_postgres_url, DEPTFLOW_SECRET_KEY=secrets.token_hex(32))
    procs = Processes(env, tmp_path)
    db_engine = make_engine(empty_postgres_url)
    sessions = WorkflowEngine().session_factory(db_engine)
    browsers: list[Browser] = []
    try:
        _run_the_deployment(procs, sessions, tmp_path, browsers)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n\n{procs.tails()}") from exc
    finally:
        for browser in browsers:
            browser.close()
        procs.stop_all()
        db_engine.dispose()


def _run_the_deployment(procs: Processes, sessions, tmp_path: Path, browsers: list[Browser]) -> None:
    # 1. the database, the catalogue, the demo organisation; a process of our own
    output = procs.run("init", "--demo")
    assert "marketing_plan_approval: version 1" in output and "demo users" in output, output
    with sessions() as session:  # the command hashes with argon2's real cost (the tests' own process does not)
        hashes = set(session.scalars(select(User.password_hash).where(User.username.in_(("mark", "rita")))))
    assert len(hashes) == 1 and next(iter(hashes)).startswith("$argon2id$v=19$m=65536,t=3,p=4$"), hashes
    bpmn = tmp_path / "deployment_check.bpmn"
    bpmn.write_text(TIMER_BPMN, encoding="utf-8")
    output = procs.run("deploy", str(bpmn), "--note", "deployment test")
    assert "deployment_check: version 1" in output, output

    # 2. two gunicorn workers, no timer worker of their own; ready when /login answers
    port = _free_port()
    server = procs.start("serve", "serve", "--no-worker", "--workers", "2", "--threads", "4",
                         "--host", "127.0.0.1", "--port", str(port))

    def login_page() -> bool:
        assert server.poll() is None, f"deptflow serve exited with status {server.returncode}"
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/login")
                return conn.getresponse().status == 200
            finally:
                conn.close()
        return False

    _wait_for("deptflow serve to answer GET /login with 200", login_page)

    def gunicorn_workers() -> set[int]:
        booted = re.findall(r"Booting worker with pid: (\d+)", procs.log("serve").read_text(errors="replace"))
        found = {int(pid) for pid in booted} & _children(server.pid)
        return found if len(found) == 2 else set()

    workers = _wait_for("two gunicorn workers", gunicorn_workers)
    # with reuse_port the arbiter holds no socket of its own; its start-up line names the address all the same
    assert f"Listening at: http://127.0.0.1:{port} ({server.pid})" in procs.log("serve").read_text(errors="replace")

    # 3. two users log in; the session of one is valid in whichever worker gets a new connection
    rita, mark = Browser(port), Browser(port)
    browsers.extend([rita, mark])
    rita.login("rita")
    mark.login("mark")
    served_by: dict[int, int] = {}

    def inbox_over_a_new_connection() -> bool:
        conn = mark.connect()
        try:
            status, _, page = mark.request("GET", "/", conn=conn)
            assert status == 200 and "Mark Chen" in page and 'name="password"' not in page, \
                f"mark's inbox over a new connection: {status} {page[:500]}"
            pid = _serving_pid(conn, workers)
            assert pid is not None, f"no gunicorn worker of {sorted(workers)} holds the connection"
            served_by[pid] = served_by.get(pid, 0) + 1
        finally:
            conn.close()
        return len(served_by) == 2 and sum(served_by.values()) >= 6

    _wait_for("new connections of one session to be served by both gunicorn workers", inbox_over_a_new_connection,
              every=0)
    assert set(served_by) == workers, served_by

    # 4. rita starts a marketing plan, mark approves it, it moves on to finance
    plan = rita.start_case("marketing_plan_approval", PLAN)
    review = mark.tasks(plan)
    assert list(review) == ["review_marketing_plan"], review
    assert rita.tasks(plan) == {}, "the starter does not review her own plan"
    mark.complete(review["review_marketing_plan"], {"mm_review_decision": "approve", "gm_threshold": "500000",
                                                    "mm_review_comment": "Fine."})
    assert mark.tasks(plan) == {}
    assert _open_tasks(sessions, plan) == ["check_marketing_budget"]
    fiona = Browser(port)
    browsers.append(fiona)
    fiona.login("fiona")
    assert list(fiona.tasks(plan)) == ["check_marketing_budget"], "finance has the plan now"

    # 5. a timer case: overdue and not fired while only `serve --no-worker` runs ...
    steve = Browser(port)
    browsers.append(steve)
    steve.login("steve")
    case = steve.start_case("deployment_check", {"title": "Where is my sofa?"})
    assert list(steve.tasks(case)) == ["answer"]
    with sessions() as session:
        row = session.get(ProcessInstance, case)
        due, started_at = row.next_timer_at, row.started_at
    assert due is not None and timedelta(seconds=1.5) <= due - started_at <= timedelta(seconds=3), (started_at, due)
    _wait_for("the timer to be overdue", lambda: utcnow() > due + timedelta(seconds=0.7))
    assert _timer_events(sessions, case) == [], "serve --no-worker fired a timer"
    assert _open_tasks(sessions, case) == ["answer"]

    # ... and fired by `deptflow worker` (as documented, no options: it polls five times a second)
    worker = procs.start("worker", "worker")
    _wait_for("deptflow worker to start", lambda: worker.poll() is None
              and "worker started" in procs.log("worker").read_text(encoding="utf-8", errors="replace"))
    started = time.monotonic()
    _wait_for("the worker to fire the timer and open the escalation task",
              lambda: worker.poll() is None and _open_tasks(sessions, case) == ["chase"])
    latency = time.monotonic() - started
    fired = _timer_events(sessions, case)
    assert [(e.element_id, e.actor_id, e.data.get("interrupting")) for e in fired] == [("too_late", None, True)]
    assert latency < 10, f"the running worker took {latency:.1f} s to fire an overdue timer"
    assert steve.tasks(case) == {}, "the interrupting timer took the task away"

    # 6. mark handles the escalation, every request over a new connection; the case ends
    chase = mark.tasks(case)
    assert list(chase) == ["chase"], chase
    mark.close()
    for path, form in ((f"/tasks/{chase['chase']}/claim", {}),
                       (f"/tasks/{chase['chase']}/complete", {"chase_note": "Called the customer."})):
        conn = mark.connect()
        try:
            status, _, page = mark.request("POST", path, form, conn=conn)
        finally:
            conn.close()
        assert status == 302, f"POST {path}: {status} {page[:1000]}"
    with sessions() as session:
        assert session.get(ProcessInstance, case).status == "completed"

    # 7. both stop cleanly on SIGTERM
    for browser in browsers:
        browser.close()
    assert procs.stop("worker") == 0, "deptflow worker did not exit 0 on SIGTERM"
    assert procs.stop("serve") == 0, "deptflow serve did not exit 0 on SIGTERM"
    assert not procs.left_over["serve"], f"processes of deptflow serve outlived it: {procs.left_over['serve']}"


def _open_tasks(sessions, instance_id: int) -> list[str]:
    with sessions() as session:
        return sorted(session.scalars(select(HumanTask.element_id).where(
            HumanTask.instance_id == instance_id, HumanTask.status == "open")))


def _timer_events(sessions, instance_id: int) -> list[Event]:
    with sessions() as session:
        events = list(session.scalars(select(Event).where(Event.instance_id == instance_id,
                                                          Event.kind == "timer_fired")))
        session.expunge_all()
        return events
