"""Auditor search, one case's history and exports (engine API and HTTP)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest
from sqlalchemy import select

from engine import actions, audit, clock, history
from engine.db import HumanTask, ProcessInstance
from engine.errors import InvalidForm, NotAllowed

COMPLAINT = {"customer_name": "J. Weber", "customer_contact": "0171", "product_name": "Oak chair",
             "complaint_description": "Loose leg"}


def _complete(session, username, instance, values, user):
    task_id = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id,
                                                        HumanTask.status == "open"))
    actions.complete_task(session, user(username), task_id, values)
    session.commit()


@pytest.fixture
def seeded(session, user):
    """Five complaints on five days; #2 and #4 are classified by cathy (paula resolves #4)."""
    cases = []
    try:
        for n, problem in enumerate(["quality", "delivery", "quality", "service", "quality"]):
            clock.set_clock(lambda n=n: datetime(2026, 11, 1 + n, 9, 0))
            started = actions.start_process(session, user("cathy"), "customer_complaint",
                                             {**COMPLAINT, "title": f"Complaint {n}", "problem_type": problem})
            instance = session.get(ProcessInstance, started.id)
            session.commit()
            cases.append(instance)
        clock.set_clock(lambda: datetime(2026, 11, 10, 9, 0))
        _complete(session, "cathy", cases[2], {"severity": "low", "confirmed_type": "quality"}, user)
        _complete(session, "cathy", cases[4], {"severity": "high", "confirmed_type": "quality"}, user)
        _complete(session, "paula", cases[4], {"root_cause": "Glue", "quality_resolution": "New leg",
                                               "quality_resolved_date": "2026-11-10"}, user)
    finally:
        clock.set_clock(None)
    return cases


def _titles(page):
    return [i.title for i in page.rows]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, ["Complaint 4", "Complaint 3", "Complaint 2", "Complaint 1", "Complaint 0"]),
        ({"field": "problem_type", "value": "quality"}, ["Complaint 4", "Complaint 2", "Complaint 0"]),
        ({"started_from": "2026-11-02", "started_to": "2026-11-03"}, ["Complaint 2", "Complaint 1"]),
        ({"participant": "paula"}, ["Complaint 4"]),
        ({"starter": "cathy", "version": "1", "status": "running"},
         ["Complaint 4", "Complaint 3", "Complaint 2", "Complaint 1", "Complaint 0"]),
        ({"starter": "mark"}, []),
        ({"process_key": "dealer_audit"}, []),
    ],
)
def test_search_filters(session, user, seeded, args, expected):
    page = history.search_instances(session, user("alice"), history.InstanceFilter.parse(args))
    assert _titles(page) == expected and page.total == len(expected)


def test_pagination_is_stable(session, user, seeded):
    filters = history.InstanceFilter.parse({})
    pages = [history.search_instances(session, user("alice"), filters, page=n, per_page=2) for n in (1, 2, 3)]
    assert [_titles(p) for p in pages] == [["Complaint 4", "Complaint 3"], ["Complaint 2", "Complaint 1"],
                                           ["Complaint 0"]]
    assert pages[0].pages == 3 and pages[0].total == 5


def test_bad_filters_name_the_field():
    with pytest.raises(InvalidForm) as caught:
        history.InstanceFilter.parse({"started_from": "yesterday", "status": "lost", "field": "a-b", "version": "x"})
    assert set(caught.value.errors) == {"started_from", "status", "field", "version"}


def test_only_auditors_search(session, user, seeded):
    with pytest.raises(NotAllowed):
        history.search_instances(session, user("cathy"), history.InstanceFilter())


def test_history_of_one_case(session, user, seeded):
    h = history.instance_history(session, user("alice"), seeded[4].id)
    assert [e.event.kind for e in h.timeline] == [
        "started", "task_created", "completed", "gateway_decision", "task_created", "completed", "task_created"]
    assert h.timeline[0].since_previous is None
    assert h.timeline[2].since_previous.days == 5  # started on the 5th, classified on the 10th
    assert h.completed_elements == ["classify_complaint", "gw_problem_type", "resolve_quality_problem", "start"]
    assert h.active_elements == ["confirm_with_customer"]
    assert h.taken_flows == [
        "Flow_classify_complaint_to_gw_problem_type",
        "Flow_gw_problem_type_to_resolve_quality_problem",
        "Flow_resolve_quality_problem_to_confirm_with_customer",
        "Flow_start_to_classify_complaint",
    ]
    paula = h.timeline[5].event
    assert paula.actor.username == "paula" and paula.data["changes"]["root_cause"] == [None, "Glue"]


def test_export_carries_re_verifiable_hashes(session, user, seeded):
    rows = history.export_instances(session, user("alice"), history.InstanceFilter.parse({"participant": "paula"}))
    [case] = rows
    assert case["title"] == "Complaint 4" and case["version"] == 1 and len(case["definition_sha256"]) == 64
    for event in case["events"]:
        stored = session.scalar(select(audit.Event).where(audit.Event.chain == event["chain"],
                                                          audit.Event.seq == event["seq"]))
        assert event["hash"] == stored.hash == audit.event_hash(stored)
    table = list(csv.DictReader(io.StringIO(history.to_csv(rows))))
    assert len(table) == len(case["events"]) and table[0]["instance_title"] == "Complaint 4"
    assert json.loads(table[0]["data"])["version"] == 1


def test_audit_pages_over_http(login_as):
    cathy = login_as("cathy")
    response = cathy.post("/processes/customer_complaint/start",
                          data={**COMPLAINT, "title": "Over HTTP", "problem_type": "delivery"})
    instance_id = int(response.location.rsplit("/", 1)[1])
    alice = login_as("alice")
    page = alice.get("/audit?field=problem_type&value=delivery").get_data(as_text=True)
    assert 'id="result-total">1<' in page and "Over HTTP" in page
    assert alice.get("/audit?started_from=soon").status_code == 422
    exported = alice.get("/audit/export.json?field=problem_type&value=delivery")
    assert exported.headers["Content-Disposition"].endswith('deptflow-cases.json"')
    assert [c["id"] for c in exported.get_json()] == [instance_id]
    assert alice.get(f"/history/{instance_id}.csv").status_code == 200
    assert "chain intact" in alice.get("/audit/verify").get_data(as_text=True)
    assert cathy.get("/audit").status_code == 403 and cathy.get("/audit/export.csv").status_code == 403
    assert cathy.get(f"/history/{instance_id}").status_code == 200, "the starter reads her own case"
    assert "The log of this case is intact: its 2 events" in alice.get(f"/history/{instance_id}").get_data(as_text=True)
    assert login_as("sam").get(f"/history/{instance_id}").status_code == 403
    assert alice.get("/definitions/1.bpmn").headers["Content-Type"].startswith("application/xml")
