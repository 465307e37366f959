"""Every route × every demo role: who gets a page (200), a redirect (302), a refusal (403),
a "not found" (404) or a "method not allowed" (405).

The case behind the ids: Steve (sales representative) applies for engineering drawings;
the first task, "Register drawing application", waits for the clerk role (Clara). The
process's owner role is the clerk; its statistics are for the owner and management.
Auditor, administrator and process owner read every case but act on none that is not theirs.

The app has no directory configured, so the OpenID routes (``/login/sso``) are a 404 for all;
``tests/test_directory.py`` covers them with a provider.

Every rule of ``app.url_map`` must have a row: a new route without one fails
:func:`test_every_route_has_a_row`. A state-changing row gets a fresh case for each cell that
is expected to succeed, and one shared fresh case for its refusals (which change nothing).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine import actions, attachments, case_actions, decisions, definitions, modeling, users
from engine.db import HumanTask, ProcessDefinition
from engine.files import Upload
from workflows.catalogue import DEMO_PASSWORD, DEMO_USERS

PROCESS = "engineering_drawing_application"
DRAWING = {"title": "Drawings for Hotel Aurora", "customer_name": "Hotel Aurora", "project_name": "Lobby refit",
           "drawings_needed_by": "2027-01-31", "product_lines": "Lounge chairs, tables", "quantity": "40"}
REGISTRATION = {"registration_number": "ED-2026-014", "registration_date": "2026-11-26"}
REASON = {"reason": "Permission matrix"}

# Columns: anonymous, then one demo user per role (Steve and Sara are both sales representatives; Steve
# started the case). grace general manager · mark marketing manager · amy assistant marketing manager ·
# rita research & planning · cathy customer service · clara clerk · sam sales manager · steve/sara sales
# rep · diego R&D · paula production · fiona finance · dora dealer · owen process owner · alice auditor.
#
# Placeholders: {task} the open registration task · {claimed} the same task claimed by Clara · {case} the
# running case · {attachment} a file Steve added to a running case · {suspended} a suspended case ·
# {definition} the process's latest diagram (version 2, so that version 1 has something to migrate to) ·
# {draft} a draft Owen saved · {user} Dora · {role} finance.
TABLE = """
method path                            anon grace mark amy rita cathy clara sam steve sara diego paula fiona dora owen alice admin
GET  /login                            200  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
POST /login                            302  302   302  302 302  302   302   302 302   302  302   302   302   302  302  302   302
POST /logout                           302  302   302  302 302  302   302   302 302   302  302   302   302   302  302  302   302
GET  /login/sso                        404  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /login/sso/callback               404  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /account/tokens                   302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
POST /account/tokens                   302  201   201  201 201  201   201   201 201   201  201   201   201   201  201  201   201
POST /account/tokens/999999/revoke     302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /healthz                          200  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
GET  /readyz                           200  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
GET  /account/password                 302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
POST /account/password                 302  422   422  422 422  422   422   422 422   422  422   422   422   422  422  422   422
GET  /                                 302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
GET  /static/deptflow.css              200  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
GET  /processes                        302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
GET  /processes/{process}/start        302  403   403  403 403  403   403   403 200   200  403   403   403   403  403  403   403
POST /processes/{process}/start        302  403   403  403 403  403   403   403 302   302  403   403   403   403  403  403   403
GET  /processes/nope/start             302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /requests                         302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
GET  /tasks/{task}                     302  403   403  403 403  403   200   403 200   403  403   403   403   403  200  200   200
GET  /tasks/999999                     302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
POST /tasks/{task}/claim               302  403   403  403 403  403   302   403 403   403  403   403   403   403  403  403   403
POST /tasks/999999/claim               302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
POST /tasks/{claimed}/unclaim          302  403   403  403 403  403   302   403 403   403  403   403   403   403  403  403   403
POST /tasks/{task}/complete            302  403   403  403 403  403   302   403 403   403  403   403   403   403  403  403   403
POST /tasks/{claimed}/delegate         302  403   403  403 403  403   302   403 403   403  403   403   403   403  403  403   302
POST /tasks/{claimed}/follow-up        302  403   403  403 403  403   302   403 403   403  403   403   403   403  403  403   403
POST /tasks/reassign                   302  403   403  302 403  403   403   302 403   403  403   403   403   403  403  403   302
GET  /inbox/changes                    302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
POST /filters                          302  302   302  302 302  302   302   302 302   302  302   302   302   302  302  302   302
POST /filters/999999/delete            302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /instances/{case}                 302  403   403  403 403  403   200   403 200   403  403   403   403   403  200  200   200
GET  /instances/999999                 302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
POST /instances/{case}/cancel          302  403   403  403 403  403   302   403 302   403  403   403   403   403  403  403   302
POST /instances/{case}/suspend         302  403   403  403 403  403   302   403 403   403  403   403   403   403  403  403   302
POST /instances/{suspended}/resume     302  403   403  403 403  403   302   403 403   403  403   403   403   403  403  403   302
POST /instances/{case}/comments        302  403   403  403 403  403   302   403 302   403  403   403   403   403  302  302   302
POST /instances/999999/comments        302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
POST /tasks/{task}/comments            302  403   403  403 403  403   302   403 302   403  403   403   403   403  302  302   302
POST /instances/{case}/attachments     302  403   403  403 403  403   302   403 302   403  403   403   403   403  302  302   302
GET  /attachments/{attachment}         302  404   404  404 404  404   200   404 200   404  404   404   404   404  200  200   200
GET  /attachments/999999               302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /history/{case}                   302  403   403  403 403  403   200   403 200   403  403   403   403   403  200  200   200
GET  /history/{case}.json              302  403   403  403 403  403   200   403 200   403  403   403   403   403  200  200   200
GET  /history/999999                   302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /definitions/{definition}.bpmn    302  403   200  403 403  403   200   403 200   200  200   403   403   403  200  200   200
GET  /definitions/999999.bpmn          302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /reports/{process}                302  302   302  403 403  403   302   302 403   403  403   403   403   403  403  302   403
GET  /reports/nope                     302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /dashboard                        302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
GET  /dashboard/cases.csv              302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
GET  /dashboard/nope.csv               302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /dashboard/diagram/{process}.bpmn 302  200   200  403 403  403   200   200 403   403  403   403   403   403  403  200   200
GET  /dashboard/diagram/nope.bpmn      302  404   404  404 404  404   404   404 404   404  404   404   404   404  404  404   404
GET  /notifications                    302  200   200  200 200  200   200   200 200   200  200   200   200   200  200  200   200
POST /notifications/read               302  302   302  302 302  302   302   302 302   302  302   302   302   302  302  302   302
POST /notifications/email              302  302   302  302 302  302   302   302 302   302  302   302   302   302  302  302   302
GET  /modeler                          302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
POST /modeler/new                      302  403   403  403 403  403   403   403 403   403  403   403   403   403  302  403   302
POST /modeler/import                   302  403   403  403 403  403   403   403 403   403  403   403   403   403  302  403   302
GET  /modeler/{process}                302  403   403  403 403  403   200   403 403   403  403   403   403   403  200  403   200
POST /modeler/{process}/settings       302  403   403  403 403  403   302   403 403   403  403   403   403   403  403  403   302
GET  /modeler/nope                     302  403   403  403 403  403   403   403 403   403  403   403   403   403  404  403   404
GET  /modeler/{process}/edit           302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /modeler/{process}/diff           302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /modeler/{process}/migrate?from=1 302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
POST /modeler/{process}/migrate        302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /modeler/drafts/{draft}.bpmn      302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /modeler/drafts/999999.bpmn       302  403   403  403 403  403   403   403 403   403  403   403   403   403  404  403   404
POST /modeler/api/validate             302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
POST /modeler/api/drafts               302  403   403  403 403  403   403   403 403   403  403   403   403   403  201  403   201
POST /modeler/api/publish              302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /modeler/decisions                302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
POST /modeler/decisions/import         302  403   403  403 403  403   403   403 403   403  403   403   403   403  302  403   302
GET  /modeler/decisions/new            302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /modeler/decisions/template.dmn   302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /modeler/decisions/{decision}     302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /modeler/decisions/nope           302  403   403  403 403  403   403   403 403   403  403   403   403   403  404  403   404
GET  /modeler/decisions/{decision}/v1.dmn 302 403 403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
POST /modeler/api/decisions            302  403   403  403 403  403   403   403 403   403  403   403   403   403  200  403   200
GET  /audit                            302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  200   200
GET  /audit/export.csv                 302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  200   200
GET  /audit/verify                     302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  200   200
GET  /audit/checkpoint.json            302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  409   409
GET  /admin/users                      302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   200
POST /admin/users/{user}               302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
POST /admin/users/999999               302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   404
GET  /admin/users/new                  302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   200
POST /admin/users/new                  302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
GET  /admin/users/{user}               302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   200
GET  /admin/users/999999               302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   404
POST /admin/users/{user}/details       302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
POST /admin/users/{user}/password-link 302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
GET  /admin/roles                      302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   200
GET  /admin/roles/new                  302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   200
POST /admin/roles/new                  302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
GET  /admin/roles/{role}               302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   200
GET  /admin/roles/nope                 302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   404
POST /admin/roles/{role}               302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
POST /admin/roles/{role}/members       302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
GET  /admin/groups                     302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   200
POST /admin/groups                     302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
POST /admin/groups/role                302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
POST /admin/groups/unmap               302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   404
GET  /admin/delegates                  302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   200
POST /admin/delegates                  302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
POST /admin/delegates/unmap            302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   404
GET  /account/set-password/nope        410  410   410  410 410  410   410   410 410   410  410   410   410   410  410  410   410
POST /account/set-password/nope        410  410   410  410 410  410   410   410 410   410  410   410   410   410  410  410   410
POST /admin/login-limits/lift          302  403   403  403 403  403   403   403 403   403  403   403   403   403  403  403   302
"""  # noqa: E501

MINI = (Path(__file__).parent / "data" / "mini_approval.bpmn").read_text()
DECISION = modeling.decision_template("matrix-decision", "Matrix decision")

#: What the POST rows send, by username (the anonymous column logs in as Steve on POST /login).
BODIES: dict[str, Callable[[str], dict[str, Any]]] = {
    "POST /login": lambda username: {"data": {"username": username or "steve", "password": DEMO_PASSWORD}},
    "POST /processes/{process}/start": lambda _: {"data": DRAWING},
    "POST /tasks/{task}/complete": lambda _: {"data": REGISTRATION},
    "POST /tasks/{claimed}/delegate": lambda _: {"data": {"to": "clara"}},
    "POST /tasks/{claimed}/follow-up": lambda _: {"data": {"follow_up": "2099-01-05"}},
    "POST /tasks/reassign": lambda _: {"data": {"task": "999999", "to": "", "reason": "Permission matrix"}},
    "POST /filters": lambda username: {"data": {"name": f"Matrix {username}", "text": "Hotel"}},
    "POST /instances/{case}/cancel": lambda _: {"data": REASON},
    "POST /instances/{case}/suspend": lambda _: {"data": REASON},
    "POST /instances/{suspended}/resume": lambda _: {"data": REASON},
    "POST /instances/{case}/comments": lambda _: {"data": {"body": "Matrix comment"}},
    "POST /instances/999999/comments": lambda _: {"data": {"body": "Matrix comment"}},
    "POST /tasks/{task}/comments": lambda _: {"data": {"body": "Matrix comment"}},
    "POST /instances/{case}/attachments": lambda _: {"data": {"file": (io.BytesIO(b"%PDF-1.7\n"), "matrix.pdf")}},
    "POST /admin/users/{user}": lambda _: {"data": {"roles": "dealer", "active": "on"}},
    "POST /admin/users/new": lambda username: {"data": {"username": f"matrix_{username or 'anon'}",
                                                        "full_name": "Matrix", "password_mode": "password",
                                                        "password": "matrix-password", "repeated": "matrix-password"}},
    "POST /admin/users/{user}/details": lambda _: {"data": {"full_name": "Dora Becker", "email": "dora@example.com"}},
    "POST /admin/roles/new": lambda username: {"data": {"key": f"matrix_{username or 'anon'}", "name": "Matrix"}},
    "POST /admin/roles/{role}": lambda _: {"data": {"name": "Finance", "active": "on"}},
    "POST /admin/roles/{role}/members": lambda _: {"data": {"add": "dora"}},
    "POST /admin/groups": lambda username: {"data": {"group": f"Matrix group {username or 'anon'}", "role": "finance"}},
    "POST /admin/groups/role": lambda username: {"data": {"group": f"Matrix group {username or 'anon'}",
                                                          "key": f"matrix_group_{username or 'anon'}", "name": "M"}},
    "POST /admin/groups/unmap": lambda _: {"data": {"group": "nope"}},
    "POST /admin/delegates": lambda username: {"data": {"delegate": f"org.example.Matrix{username or 'Anon'}",
                                                       "topic": "matrix"}},
    "POST /admin/delegates/unmap": lambda _: {"data": {"delegate": "org.example.Nope"}},
    "POST /modeler/{process}/settings": lambda _: {"data": {"starter_roles": "sales_rep", "owner_role": "clerk"}},
    "POST /notifications/email": lambda _: {"data": {"enabled": "on"}},
    "POST /account/tokens": lambda _: {"data": {"name": "matrix", "days": "1"}},
    "POST /admin/login-limits/lift": lambda _: {"data": {"address": "198.51.100.7"}},
    "POST /modeler/new": lambda username: {"data": {"key": f"matrix_{username}", "name": "Matrix", "role": "clerk"}},
    "POST /modeler/import": lambda _: {"data": {"file": (io.BytesIO(MINI.encode()), "mini_approval.bpmn")}},
    "POST /modeler/{process}/migrate": lambda _: {"data": {"from": "1"}},
    "POST /modeler/api/validate": lambda _: {"json": {"xml": MINI}},
    "POST /modeler/api/drafts": lambda _: {"json": {"xml": MINI, "note": "matrix"}},
    "POST /modeler/api/publish": lambda _: {"json": {"xml": MINI, "acknowledge": True}},
    "POST /modeler/decisions/import": lambda _: {"data": {"file": (io.BytesIO(DECISION.encode()), "matrix.dmn")}},
    "POST /modeler/api/decisions": lambda _: {"json": {"xml": DECISION, "decision_key": "matrix-decision"}},
}


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expected: dict[str, int]  # username ("" for anonymous) → status

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _parse(table: str) -> tuple[list[str], list[Row]]:
    header, *lines = [line for line in table.strip().splitlines() if line.strip()]
    columns = ["" if c == "anon" else c for c in header.split()[2:]]
    rows = []
    for line in lines:
        method, path, *statuses = line.split()
        assert len(statuses) == len(columns), line
        rows.append(Row(method, path, dict(zip(columns, map(int, statuses), strict=True))))
    return columns, rows


COLUMNS, ROWS = _parse(TABLE)
#: Ids for requests whose answer does not depend on them (redirects to the login page, routing).
DUMMY = {"process": PROCESS, "task": 1, "claimed": 1, "case": 1, "suspended": 1, "definition": 1, "draft": 1,
         "user": 1, "role": "finance", "attachment": 1, "decision": "matrix-decision"}


def test_the_table_has_every_demo_user_and_no_duplicate_rows():
    assert set(COLUMNS) == {""} | {u.username for u in DEMO_USERS}
    roles = {role for u in DEMO_USERS for role in u.roles}
    assert len(roles) == 15
    assert len({r.key for r in ROWS}) == len(ROWS)


# --- the case behind the ids ------------------------------------------------------------


class World:
    """Creates the objects a row's ids point at, through the engine and as the right roles."""

    def __init__(self, app):
        self.sessions = app.extensions["deptflow_sessions"]
        with self.sessions() as session:
            latest = definitions.latest_definition(session, PROCESS)
            renamed = latest.xml.replace('name="Register drawing application"',
                                         'name="Register the drawing application"')
            definitions.deploy(session, None, renamed, note="version 2 for the permission matrix")
            self.draft = modeling.save_draft(session, self._user(session, "owen"), latest.xml, note="matrix").id
            decisions.deploy_decisions(session, None, DECISION)
            session.commit()

    def _user(self, session, username: str):
        found = users.user_by_name(session, username)
        assert found is not None
        return found

    def _start(self, session) -> tuple[int, int]:
        instance = actions.start_process(session, self._user(session, "steve"), PROCESS, DRAWING)
        session.commit()
        task = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id,
                                                         HumanTask.element_id == "register_application"))
        return instance.id, task

    def ids(self, path: str) -> dict[str, object]:
        """Fresh ids for the placeholders ``path`` uses (a new case each time one is needed)."""
        ids: dict[str, object] = {"process": PROCESS, "role": "finance", "decision": "matrix-decision"}
        with self.sessions() as session:
            if "{case}" in path or "{task}" in path:
                ids["case"], ids["task"] = self._start(session)
            if "{claimed}" in path:
                _, task = self._start(session)
                actions.claim(session, self._user(session, "clara"), task)
                session.commit()
                ids["claimed"] = task
            if "{suspended}" in path:
                case, _ = self._start(session)
                case_actions.suspend(session, self._user(session, "admin"), case, "held for the matrix")
                session.commit()
                ids["suspended"] = case
            if "{definition}" in path:
                ids["definition"] = session.scalar(
                    select(ProcessDefinition.id).where(ProcessDefinition.process_key == PROCESS)
                    .order_by(ProcessDefinition.version.desc()))
            if "{user}" in path:
                ids["user"] = self._user(session, "dora").id
            if "{attachment}" in path:
                case, _ = self._start(session)
                ids["attachment"] = attachments.attach_to_case(session, self._user(session, "steve"), case,
                                                               Upload("matrix.pdf", b"%PDF-1.7\n")).id
                session.commit()
        ids["draft"] = self.draft
        return ids


# --- the matrix ----------------------------------------------------------------------------


def _request(client, row: Row, url: str, username: str):
    return client.open(url, method=row.method, **BODIES.get(row.key, lambda _: {})(username))


def test_route_role_matrix(app, login_as):
    world = World(app)
    clients = {u.username: login_as(u.username) for u in DEMO_USERS}
    shared = world.ids("{case}{definition}{user}{attachment}")
    mismatches = []
    for row in sorted(ROWS, key=lambda r: r.key == "POST /logout"):  # logging out last keeps the sessions
        refusals = world.ids(row.path) if row.method == "POST" else shared
        for username in COLUMNS:
            expected = row.expected[username]
            fresh = row.method == "POST" and expected < 400
            url = row.path.format(**(world.ids(row.path) if fresh else refusals))
            client = clients[username] if username else app.test_client()  # anonymous stays anonymous
            response = _request(client, row, url, username)
            if response.status_code != expected:
                page = re.sub(r"\s+", " ", response.get_data(as_text=True))
                message = re.search(r'class="error-message">([^<]*)', page)
                mismatches.append(f"{row.key:36} {username or 'anonymous':9} expected {expected} "
                                  f"got {response.status_code} {message.group(1) if message else ''}")
    assert not mismatches, "\n" + "\n".join(mismatches)


def test_redirects_of_anonymous_users_go_to_the_login_page(app):
    client = app.test_client()
    for row in ROWS:
        if row.expected[""] == 302 and row.key != "POST /login":
            response = client.open(row.path.format(**DUMMY), method=row.method)
            assert response.status_code == 302 and "/login" in response.location, row.key


def test_every_route_has_a_row(app):
    """A route added without a row in the table fails here: add the row with the expected statuses."""
    adapter = app.url_map.bind("localhost")
    covered = set()
    for row in ROWS:
        rule, _ = adapter.match(row.path.format(**DUMMY).split("?")[0], method=row.method, return_rule=True)
        covered.add((rule.rule, row.method))
    routes = {(rule.rule, method) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}
              if not rule.rule.startswith("/api/v1/")}  # the API's own matrix: tests/test_api.py
    missing = sorted(routes - covered)
    assert not missing, "routes without a row in TABLE: " + ", ".join(f"{m} {r}" for r, m in missing)


def test_wrong_methods_are_405_for_everyone(app, login_as):
    """GET on a POST-only route and POST on a GET-only route: 405 whoever asks, logged in or not."""
    adapter = app.url_map.bind("localhost")
    clients = [app.test_client(), login_as("admin"), login_as("steve")]
    checked = 0
    for row in ROWS:
        url = row.path.format(**DUMMY).split("?")[0]
        allowed = adapter.allowed_methods(url)
        wrong = "GET" if "GET" not in allowed else "POST" if "POST" not in allowed else None
        if wrong is None:
            continue
        for client in clients:
            assert client.open(url, method=wrong).status_code == 405, f"{wrong} {url}"
        checked += 1
    assert checked >= 20
