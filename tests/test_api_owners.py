"""Process owners and auditors over the API: check a BPMN file, publish it (then start a case of it),
list versions, download one; stream the event log with hashes an auditor verifies offline."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import actions, audit, history
from engine.db import Event
from engine.errors import NotAllowed

DATA = Path(__file__).parent / "data"
MINI = (DATA / "mini_approval.bpmn").read_text().replace('id="mini_approval"', 'id="api_mini"')
#: two errors the check names by element: a flow into nothing, a group that is no role
BROKEN = (MINI.replace('targetRef="decided" />', 'targetRef="nowhere" />')
          .replace('id="approve_request" name=', 'id="approve_request" camunda:candidateGroups="wizards" name='))
#: valid, with one warning: the start form has no title field
UNTITLED = MINI.replace('id="title" label="Title"', 'id="subject" label="Subject"')
PROBLEM = "application/problem+json"
XML = {"content_type": "application/xml"}


@pytest.fixture
def bearer(app, login_as):
    """An API client with a token of all the user's roles, no cookie: ``bearer("owen")``."""

    def make(username: str):
        made = login_as(username).post("/api/v1/tokens", json={"name": "test"})
        assert made.status_code == 201, made.json
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {made.json['token']}"
        return client

    return make


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.json["status"] == status and response.json["detail"]
    return response.json


def _upload(xml: str, name: str = "diagram.bpmn") -> dict:
    return {"data": {"file": (io.BytesIO(xml.encode()), name)}, "content_type": "multipart/form-data"}


# --- validate --------------------------------------------------------------------------------


def test_validate_answers_the_check_even_for_a_diagram_that_cannot_be_published(bearer):
    owen = bearer("owen")
    good = owen.post("/api/v1/definitions/validate", data=MINI, **XML)
    assert good.status_code == 200, good.json
    assert good.json["verdict"] == "deploys" and good.json["processes"] == [{"key": "api_mini",
                                                                               "name": "Mini approval"}]
    assert good.json["blocks"] == good.json["needs_mapping"] == good.json["warnings"] == []
    broken = owen.post("/api/v1/definitions/validate", **_upload(BROKEN))
    assert broken.status_code == 200 and broken.json["verdict"] == "cannot deploy"
    blocking = {p["element_id"] for p in broken.json["blocks"]}
    assert "f2" in blocking and any("nowhere" in p["message"] for p in broken.json["blocks"])
    assert any(p["element_id"] == "approve_request" and "wizards" in p["message"]
               for p in broken.json["needs_mapping"] + broken.json["blocks"])
    assert all(p["severity"] == "error" for p in broken.json["blocks"])
    warned = owen.post("/api/v1/definitions/validate", data=UNTITLED, **XML).json
    assert warned["verdict"] == "deploys" and [p["element_id"] for p in warned["warnings"]] == ["start"]


def test_validate_refuses_what_is_not_bpmn_and_who_is_no_process_owner(bearer):
    owen = bearer("owen")
    assert "not well-formed" in _problem(owen.post("/api/v1/definitions/validate", data="<a><b></a>", **XML),
                                         400)["problems"][0]["message"]
    assert "bpmn:definitions" in _problem(owen.post("/api/v1/definitions/validate", data="<html/>", **XML),
                                          400)["detail"]
    _problem(owen.post("/api/v1/definitions/validate", data='<!DOCTYPE x [<!ENTITY a "b">]><x/>', **XML), 400)
    _problem(owen.post("/api/v1/definitions/validate", json={"xml": MINI}), 415)
    _problem(owen.post("/api/v1/definitions/validate", data=MINI, content_type="text/plain"), 415)
    assert "file" in _problem(owen.post("/api/v1/definitions/validate", data={"other": "x"},
                                        content_type="multipart/form-data"), 422)["errors"]
    _problem(owen.post("/api/v1/definitions/validate", data=b"<x>" + b" " * (2 * 1024 * 1024) + b"</x>", **XML),
             413)
    _problem(bearer("steve").post("/api/v1/definitions/validate", data=MINI, **XML), 403)
    _problem(bearer("alice").post("/api/v1/definitions/validate", data=MINI, **XML), 403)


# --- publish, then start ---------------------------------------------------------------------


def test_a_published_file_starts_cases_over_the_api(bearer):
    owen, steve = bearer("owen"), bearer("steve")
    published = owen.post("/api/v1/definitions?note=first%20version", **_upload(MINI))
    assert published.status_code == 201, published.json
    assert published.json["process_key"] == "api_mini" and published.json["version"] == 1
    assert published.json["created"] is True and len(published.json["sha256"]) == 64
    assert published.headers["Location"].endswith("/api/v1/processes/api_mini/versions/1/bpmn")
    again = owen.post("/api/v1/definitions", data=MINI, **XML)
    assert again.status_code == 200 and again.json["created"] is False and again.json["version"] == 1
    started = steve.post("/api/v1/processes/api_mini/start", json={"values": {"title": "Van", "amount": 3}})
    assert started.status_code == 201, started.json
    assert [t["element_id"] for t in started.json["tasks"]] == ["approve_request"]
    second = owen.post("/api/v1/definitions", data=MINI.replace('name="Approve request"', 'name="Approve it"'),
                       **XML)
    assert second.status_code == 201 and second.json["version"] == 2
    versions = owen.get("/api/v1/processes/api_mini/versions").json
    assert [(v["version"], v["open_cases"], v["published_by"]) for v in versions] == [(2, 0, "owen"),
                                                                                       (1, 1, "owen")]
    assert versions[1]["note"] == "first version"
    download = steve.get("/api/v1/processes/api_mini/versions/1/bpmn")  # steve started a case of it
    assert download.status_code == 200 and download.mimetype == "application/xml"
    assert download.get_data(as_text=True) == MINI
    assert hashlib.sha256(download.data).hexdigest() == versions[1]["sha256"]
    assert 'filename="api_mini.v1.bpmn"' in download.headers["Content-Disposition"]


def test_publishing_refuses_errors_with_their_elements_and_wants_warnings_acknowledged(bearer):
    owen = bearer("owen")
    refused = _problem(owen.post("/api/v1/definitions", data=BROKEN, **XML), 422)
    assert {"f2", "approve_request"} <= {p["element_id"] for p in refused["problems"]}
    assert refused["needs_acknowledgement"] is False
    warned = _problem(owen.post("/api/v1/definitions", **_upload(UNTITLED)), 422)
    assert warned["needs_acknowledgement"] is True and [p["element_id"] for p in warned["problems"]] == ["start"]
    _problem(owen.get("/api/v1/processes/api_mini/versions"), 404)  # nothing was published
    acknowledged = owen.post("/api/v1/definitions?acknowledge_warnings=true", **_upload(UNTITLED))
    assert acknowledged.status_code == 201 and [p["element_id"] for p in acknowledged.json["warnings"]] == ["start"]
    other = _problem(owen.post("/api/v1/definitions?process_key=mini_other", data=MINI, **XML), 422)
    assert "process id changed" in other["problems"][0]["message"]
    _problem(owen.post("/api/v1/definitions", data="plain words", **XML), 400)
    _problem(owen.post("/api/v1/definitions", data=MINI, content_type="application/x-www-form-urlencoded"), 415)
    _problem(bearer("steve").post("/api/v1/definitions", data=MINI, **XML), 403)


def test_versions_and_downloads_follow_the_pages_rules(bearer):
    owen = bearer("owen")
    owen.post("/api/v1/definitions", data=MINI, **XML)
    _problem(bearer("steve").get("/api/v1/processes/api_mini/versions"), 403)
    assert bearer("admin").get("/api/v1/processes/api_mini/versions").status_code == 200
    _problem(owen.get("/api/v1/processes/no_such_process/versions"), 404)
    _problem(owen.get("/api/v1/processes/api_mini/versions/7/bpmn"), 404)
    assert bearer("alice").get("/api/v1/processes/api_mini/versions/1/bpmn").status_code == 200  # auditors
    assert bearer("mark").get("/api/v1/processes/api_mini/versions/1/bpmn").status_code == 200  # its lane's role
    _problem(bearer("dora").get("/api/v1/processes/api_mini/versions/1/bpmn"), 403)


# --- the audit export ------------------------------------------------------------------------


def _canonical_hash(event: dict) -> str:
    """An event's hash as an auditor recomputes it without deptflow: the documented canonical JSON."""
    body = {name: event[name] for name in ("chain", "seq", "at", "kind", "instance_id", "actor_id", "task_id",
                                           "element_id", "data", "prev_hash")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def _jsonl(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/jsonl" and response.is_streamed
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


def test_the_export_streams_events_whose_hashes_verify_offline(bearer):
    steve, alice = bearer("steve"), bearer("alice")
    case = steve.post("/api/v1/processes/engineering_drawing_application/start", json={
        "business_key": "=HYPERLINK(\"x\")", "values": {
            "title": "=cmd|' /C calc'!A0", "customer_name": "Hotel Aurora", "project_name": "Lobby",
            "drawings_needed_by": "2027-01-31", "product_lines": "Chairs", "quantity": "4"}}).json
    other = steve.post("/api/v1/processes/engineering_drawing_application/start", json={"values": {
        "title": "Other", "customer_name": "Inn", "project_name": "Bar", "drawings_needed_by": "2027-01-31",
        "product_lines": "Stools", "quantity": "2"}}).json
    everything = _jsonl(alice.get("/api/v1/audit/export"))
    assert all(_canonical_hash(e) == e["hash"] for e in everything)
    last: dict[int, str] = {}
    for event in everything:  # each chain links up, in the order written
        if event["chain"] in last:
            assert event["prev_hash"] == last[event["chain"]]
        last[event["chain"]] = event["hash"]
    assert any(e["instance_id"] is None for e in everything)  # the global chain's own events (token made)
    one = _jsonl(alice.get(f"/api/v1/audit/export?instance_id={case['id']}"))
    assert {e["instance_id"] for e in one} == {case["id"]} and [e["kind"] for e in one][:2] == ["started",
                                                                                                 "task_created"]
    assert one[0]["actor"] == "steve"
    chain = [e for e in one if e["chain"] != 0]
    assert [e["seq"] for e in chain] == list(range(1, len(chain) + 1))
    by_key = _jsonl(alice.get("/api/v1/audit/export?business_key=" + "=HYPERLINK(%22x%22)"))
    assert {e["instance_id"] for e in by_key} == {case["id"]}
    today = everything[-1]["at"][:10]
    assert len(_jsonl(alice.get(f"/api/v1/audit/export?events_from={today}&events_to={today}"))) == len(everything)
    assert _jsonl(alice.get("/api/v1/audit/export?events_to=2000-01-01")) == []
    assert other["id"] not in {e["instance_id"] for e in one}


def test_the_csv_export_has_a_row_an_event_with_its_hash(bearer):
    steve, alice = bearer("steve"), bearer("alice")
    case = steve.post("/api/v1/processes/engineering_drawing_application/start", json={"values": {
        "title": "=1+2", "customer_name": "@SUM(A1)", "project_name": "Lobby", "drawings_needed_by": "2027-01-31",
        "product_lines": "Chairs", "quantity": "4"}}).json
    response = alice.get(f"/api/v1/audit/export?instance_id={case['id']}&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0]["kind"] == "started" and len(rows[0]["hash"]) == 64
    as_json = _jsonl(alice.get(f"/api/v1/audit/export?instance_id={case['id']}"))
    assert [r["hash"] for r in rows] == [e["hash"] for e in as_json]
    assert json.loads(rows[0]["data"])["data"]["title"] == "=1+2"  # the JSON cell starts with {, so it stays


def test_only_auditors_export_and_bad_filters_are_field_errors(bearer):
    _problem(bearer("steve").get("/api/v1/audit/export"), 403)
    _problem(bearer("owen").get("/api/v1/audit/export"), 403)
    alice = bearer("alice")
    assert "events_from" in _problem(alice.get("/api/v1/audit/export?events_from=soon"), 422)["errors"]
    assert "format" in _problem(alice.get("/api/v1/audit/export?format=xlsx"), 422)["errors"]
    assert "started_to" in _problem(alice.get("/api/v1/audit/export?started_to=9999-12-31"), 422)["errors"]


def test_export_events_streams_in_batches_and_refuses_before_reading(session, user, monkeypatch):
    """On both databases (a server-side cursor on PostgreSQL): the rows come in batches as the caller reads."""
    for n in range(3):
        actions.start_process(session, user("steve"), "engineering_drawing_application", {
            "title": f"Drawings {n}", "customer_name": "Inn", "project_name": "Bar", "drawings_needed_by": "2027-01-31",
            "product_lines": "Stools", "quantity": "2"})
    session.commit()
    with pytest.raises(NotAllowed):
        history.export_events(session, user("steve"), history.InstanceFilter())  # refused before any row is read
    monkeypatch.setattr(history, "EXPORT_BATCH", 2)
    events = history.export_events(session, user("alice"),
                                   history.InstanceFilter(process_key="engineering_drawing_application"))
    assert isinstance(events, Iterator)
    exported = list(events)
    stored = session.scalars(select(Event).where(Event.instance_id.is_not(None)).order_by(Event.id)).all()
    assert [e["hash"] for e in exported] == [e.hash for e in stored] == [audit.event_hash(e) for e in stored]
    assert len(exported) >= 6 and all(_canonical_hash(e) == e["hash"] for e in exported)
