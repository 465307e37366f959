"""Camunda's invoice example, unchanged, end to end over HTTP (issue 16), as Camunda's ``InvoiceTestCase.java``
expects: the DMN decisions, ``reviewInvoice`` and ``invoice.v2`` published as they are in the corpus; the groups
``accounting``, ``sales`` and ``management`` mapped to roles and the archive's Java class to an external task topic
by an administrator; then an invoice of 300 for “Travel Expenses” goes to the roles of {accounting, sales}, is
approved, its bank transfer prepared, archived by an external worker through the API, and the case ends; one
not approved is reviewed (the call activity) and comes back to approval when clarified, or ends when not.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.db import DelegateMapping, Event, make_engine
from web.cli import main

#: the invoice example's folder in the shared corpus
INVOICE = Path("camunda", "camunda-bpm-platform", "examples", "invoice", "src", "main", "resources")
ARCHIVE = "org.camunda.bpm.example.invoice.service.ArchiveInvoiceService"
TOPIC = "archive-invoice"
#: Camunda's groups → the demo organisation's roles that do their work here
GROUPS = {"accounting": "finance", "sales": "sales_rep", "management": "general_manager"}
START = {"creditor": "Great Pizza for Everyone Inc.", "amount": 300, "invoiceCategory": "Travel Expenses",
         "invoiceNumber": "GPFE-23232323"}
DEMO_USER_PASSWORD = "a long password for demo"


@pytest.fixture
def invoice_folder(corpus: Path) -> Path:
    """The invoice example's folder."""
    return corpus / INVOICE


def _ok(response, status: int = 200):
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response


def _bearer(app, login_as, username: str):
    token = _ok(login_as(username).post("/api/v1/tokens", json={"name": "invoice worker"}), 201).json["token"]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def _publish(owner, folder: Path) -> None:
    """The three files, read from the corpus and sent as they are: the decisions first (the invoice calls them),
    then the called process, then the invoice."""
    dmn = (folder / "invoiceBusinessDecisions.dmn").read_bytes()
    _ok(owner.post("/modeler/import", data={"file": (io.BytesIO(dmn), "invoiceBusinessDecisions.dmn")},
                   content_type="multipart/form-data"), 302)
    for name in ("reviewInvoice.bpmn", "invoice.v2.bpmn"):
        published = owner.post("/api/v1/definitions?acknowledge_warnings=true", data=(folder / name).read_bytes(),
                               content_type="application/xml")
        _ok(published, 201)


def _map(admin) -> None:
    """What an administrator does once, on the Groups and Java delegates pages; and the user ``demo`` the model
    assigns “Assign Reviewer” to, and who may start invoices (the Team Assistant lane names no role)."""
    for group, role in GROUPS.items():
        _ok(admin.post("/admin/groups", data={"group": group, "role": role}), 302)
    _ok(admin.post("/admin/delegates", data={"delegate": ARCHIVE, "topic": TOPIC}), 302)
    _ok(admin.post("/admin/users/new", data={"username": "demo", "full_name": "Demo Demo", "roles": ["clerk"],
                                             "password_mode": "password", "password": DEMO_USER_PASSWORD,
                                             "repeated": DEMO_USER_PASSWORD}), 302)


@pytest.fixture
def invoice(app, login_as, invoice_folder):
    """The published, mapped invoice example."""
    admin = login_as("admin")
    _map(admin)
    _publish(login_as("owen"), invoice_folder)
    _ok(admin.post("/modeler/invoice/settings", data={"starter_roles": ["clerk"], "default_priority": ""}), 302)
    return invoice_folder


def _demo(app):
    """Camunda's user ``demo``, created by the administrator in :func:`_map`, logged in."""
    client = app.test_client()
    _ok(client.post("/login", data={"username": "demo", "password": DEMO_USER_PASSWORD}), 302)
    return client


def _tasks(client) -> list[dict]:
    page = _ok(client.get("/api/v1/tasks")).json
    return page["assigned"]["items"] + page["available"]["items"]


def _the_task(client, element_id: str, instance_id: int) -> dict:
    [task] = [t for t in _tasks(client) if t["element_id"] == element_id and t["instance_id"] == instance_id]
    return task


def _complete(client, task: dict, values: dict) -> dict:
    return _ok(client.post(f"/api/v1/tasks/{task['id']}/complete", json={"values": values})).json


def _case(client, instance_id: int) -> dict:
    return _ok(client.get(f"/api/v1/cases/{instance_id}")).json


def _start(login_as, **values) -> int:
    started = login_as("clara").post("/api/v1/processes/invoice/start", json={"values": {**START, **values}})
    return _ok(started, 201).json["id"]


def _approve(login_as, instance_id: int, approved: bool) -> None:
    steve = login_as("steve")
    task = _the_task(steve, "approveInvoice", instance_id)
    _complete(steve, task, {"approved": approved})


def test_an_approved_invoice_is_prepared_archived_by_a_worker_and_ends(app, login_as, invoice):
    started_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    instance_id = _start(login_as)
    case = _case(login_as("admin"), instance_id)
    assert case["data"]["approverGroups"] == ["accounting", "sales"]
    assert case["data"]["invoiceCategory"] == "Travel Expenses" and case["data"]["amount"] == 300

    # offered to exactly the roles mapped from {accounting, sales}, due in a week
    steve, fiona, grace = login_as("steve"), login_as("fiona"), login_as("grace")
    task = _the_task(steve, "approveInvoice", instance_id)
    assert sorted(task["candidate_roles"]) == sorted([GROUPS["accounting"], GROUPS["sales"]])
    assert _the_task(fiona, "approveInvoice", instance_id)["id"] == task["id"]
    assert [t for t in _tasks(grace) if t["instance_id"] == instance_id] == []
    detail = _ok(steve.get(f"/api/v1/tasks/{task['id']}")).json
    assert [(f["id"], f["type"], f["required"]) for f in detail["form"]] == [("approved", "boolean", True)]
    due = datetime.fromisoformat(detail["due_at"].replace("Z", "+00:00")).replace(tzinfo=None)
    assert timedelta(days=7) <= due - started_at <= timedelta(days=7, minutes=5)

    # a value the inferred form does not name is refused, not dropped
    refused = steve.post(f"/api/v1/tasks/{task['id']}/complete", json={"values": {"approved": True, "note": "ok"}})
    assert refused.status_code == 422 and "note" in refused.json["errors"]

    created = _complete(steve, task, {"approved": True})["created"]
    assert [t["element_id"] for t in created] == ["prepareBankTransfer"]
    transfer = _the_task(fiona, "prepareBankTransfer", instance_id)
    assert transfer["candidate_roles"] == [GROUPS["accounting"]]
    assert [t for t in _tasks(steve) if t["element_id"] == "prepareBankTransfer"] == []
    assert _complete(fiona, transfer, {})["created"] == []
    assert _case(fiona, instance_id)["status"] == "running"  # waits for the archive's worker

    worker = _bearer(app, login_as, "admin")
    body = {"worker_id": "archiver", "topics": [TOPIC], "lock_duration": 60}
    [locked] = _ok(worker.post("/api/v1/external-tasks/fetch-and-lock", json=body)).json
    assert (locked["element_id"], locked["instance_id"], locked["topic"]) == ("ServiceTask_1", instance_id, TOPIC)
    assert locked["variables"]["invoiceNumber"] == "GPFE-23232323"
    done = worker.post(f"/api/v1/external-tasks/{locked['id']}/complete",
                       json={"worker_id": "archiver", "variables": {"archived": True}})
    assert _ok(done).json["status"] == "completed"
    case = _case(login_as("admin"), instance_id)
    assert case["status"] == "completed" and case["data"]["archived"] is True


def test_a_rejected_invoice_is_reviewed_and_comes_back_to_approval_when_clarified(app, login_as, invoice):
    instance_id = _start(login_as, invoiceDocument="invoice.pdf")
    _approve(login_as, instance_id, False)

    # the review call activity: “Assign Reviewer” goes to demo (camunda:assignee="demo"), who names the reviewer
    demo = _demo(app)
    assign = _the_task(demo, "assignReviewer", instance_id)
    detail = _ok(demo.get(f"/api/v1/tasks/{assign['id']}")).json
    assert detail["assignee"] == "demo" and [f["id"] for f in detail["form"]] == ["reviewer"]
    [review] = _complete(demo, assign, {"reviewer": "clara"})["created"]
    assert review["element_id"] == "reviewInvoice"
    clara = login_as("clara")
    detail = _ok(clara.get(f"/api/v1/tasks/{review['id']}")).json
    # the called process hands back ``clarified`` (camunda:out), which the invoice's gateway reads as a boolean
    assert detail["assignee"] == "clara"
    assert [(f["id"], f["type"]) for f in detail["form"]] == [("clarified", "boolean")]
    case = _case(clara, instance_id)
    assert case["status"] == "running"

    [again] = _complete(clara, _the_task(clara, "reviewInvoice", instance_id), {"clarified": True})["created"]
    assert again["element_id"] == "approveInvoice"
    task = _the_task(login_as("sara"), "approveInvoice", instance_id)
    assert sorted(task["candidate_roles"]) == sorted([GROUPS["accounting"], GROUPS["sales"]])
    assert _case(clara, instance_id)["data"]["clarified"] is True


def test_an_invoice_not_clarified_ends_without_processing(app, login_as, invoice):
    instance_id = _start(login_as)
    _approve(login_as, instance_id, False)
    demo = _demo(app)
    _complete(demo, _the_task(demo, "assignReviewer", instance_id), {"reviewer": "clara"})
    clara = login_as("clara")
    assert _complete(clara, _the_task(clara, "reviewInvoice", instance_id), {"clarified": False})["created"] == []
    case = _case(clara, instance_id)
    assert case["status"] == "completed" and case["data"]["clarified"] is False
    assert "archived" not in case["data"]


def test_the_start_form_is_inferred_from_what_the_process_reads(app, login_as, invoice):
    """amount and invoiceCategory (the decision's inputs) are required and typed by the DMN; what is only handed
    on to the review (creditor, invoiceNumber, invoiceDocument) is optional; anything else is refused."""
    clara = login_as("clara")
    missing = clara.post("/api/v1/processes/invoice/start", json={"values": {"amount": "a lot"}})
    assert missing.status_code == 422
    assert set(missing.json["errors"]) == {"amount", "invoiceCategory"}
    unknown = clara.post("/api/v1/processes/invoice/start", json={"values": {**START, "dueDate": "tomorrow"}})
    assert unknown.status_code == 422
    assert unknown.json["errors"] == {"dueDate": "The start form has no field “dueDate”; it takes amount, creditor, "
                                                 "invoiceCategory, invoiceDocument, invoiceNumber."}
    page = _ok(clara.get("/processes/invoice/start")).get_data(as_text=True)
    assert 'name="invoiceCategory"' in page and "Invoice category" in page


def test_deptflow_check_over_the_three_files_exits_0_after_the_mappings(sqlite_url, monkeypatch, invoice_folder):
    names = ("invoiceBusinessDecisions.dmn", "reviewInvoice.bpmn", "invoice.v2.bpmn")
    files = [str(invoice_folder / name) for name in names]
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", sqlite_url)
    before = CliRunner().invoke(main, ["check", *files])
    assert before.exit_code == 1, before.output
    assert f"needs mapping: [ServiceTask_1] serviceTask calls Java (camunda:class “{ARCHIVE}”)" in before.output
    assert "candidate group “accounting” is not a known role" in before.output

    # the README's commands (the same as the administrator's pages)
    for group, role in GROUPS.items():
        mapped = CliRunner().invoke(main, ["map", "group", group, role])
        assert mapped.exit_code == 0 and f"group {group} → role {role}" in mapped.output, mapped.output
    mapped = CliRunner().invoke(main, ["map", "delegate", ARCHIVE, TOPIC])
    assert mapped.exit_code == 0, mapped.output
    refused = CliRunner().invoke(main, ["map", "delegate", ARCHIVE, " "])
    assert refused.exit_code == 1 and "topic: Name the topic its workers fetch." in refused.stderr
    after = CliRunner().invoke(main, ["check", *files])
    assert after.exit_code == 0, after.output
    assert "3 of 3 files can be deployed" in after.output
    assert "amount (double), invoiceCategory (string)" in after.output

    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(select(DelegateMapping.delegate, DelegateMapping.topic)).all() == [(ARCHIVE, TOPIC)]
        [mapped] = connection.execute(select(Event.data).where(Event.kind == "delegate_mapped")).scalars().all()
        assert mapped == {"delegate": ARCHIVE, "topic": TOPIC, "before": None}
    engine.dispose()


def test_the_java_delegates_page_lists_where_a_delegate_is_used_and_keeps_a_used_mapping(app, login_as, invoice):
    admin = login_as("admin")
    page = _ok(admin.get("/admin/delegates")).get_data(as_text=True)
    assert f'data-delegate="{ARCHIVE}"' in page and "invoice (version 1)" in page and TOPIC in page
    refused = admin.post("/admin/delegates/unmap", data={"delegate": ARCHIVE})
    assert refused.status_code == 409 and "invoice (version 1)" in refused.get_data(as_text=True)
    assert login_as("steve").get("/admin/delegates").status_code == 403
    blank = admin.post("/admin/delegates", data={"delegate": ARCHIVE, "topic": ""})
    assert blank.status_code == 422 and "Name the topic its workers fetch." in blank.get_data(as_text=True)
    # mapped to another topic instead: the file still deploys
    _ok(admin.post("/admin/delegates", data={"delegate": ARCHIVE, "topic": "archive-v2"}), 302)
    check = _ok(login_as("owen").post("/api/v1/definitions/validate", data=(invoice / "invoice.v2.bpmn").read_bytes(),
                                      content_type="application/xml")).json
    assert check["verdict"] == "deploys" and check["needs_mapping"] == []


def test_the_import_report_links_an_unmapped_java_class_to_the_java_delegates_page(login_as, invoice_folder):
    admin = login_as("admin")
    xml = (invoice_folder / "invoice.v2.bpmn").read_bytes()
    page = admin.post("/modeler/import", data={"file": (io.BytesIO(xml), "invoice.v2.bpmn")},
                      content_type="multipart/form-data")
    assert page.status_code == 422
    text = page.get_data(as_text=True)
    assert f'href="/admin/delegates?delegate={ARCHIVE}#map"' in text
    assert "to an external task topic</a>" in text
    listed = _ok(admin.get("/admin/delegates")).get_data(as_text=True)
    assert f'data-delegate="{ARCHIVE}"' in listed and "draft #" in listed  # the imported draft names it
