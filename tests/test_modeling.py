"""Process owners: drafts, validation, publishing, running cases on their version, diff, migration."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import actions, audit, definitions, instance_migration, modeling, process_versions, validation
from engine.core import WorkflowEngine
from engine.db import Event, HumanTask, ProcessDraft, ProcessInstance
from engine.errors import Conflict, InvalidDefinition, InvalidForm, NotAllowed

DATA = Path(__file__).parent / "data"
MINI = (DATA / "mini_approval.bpmn").read_text()
MINI_V2 = (DATA / "mini_approval_v2.bpmn").read_text()  # renamed approval, then the clerk files the request
REWORK = (DATA / "mini_approval_rework.bpmn").read_text()  # the approval is gone: the clerk checks instead
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol3;</bpmn:definitions>'
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">'
    '<bpmn:process id="p" name="&secret;" isExecutable="true"/></bpmn:definitions>'
)


def _start(session, user, amount: int = 10) -> ProcessInstance:
    started = actions.start_process(session, user("steve"), "mini_approval", {"title": f"Request {amount}",
                                                                                "amount": str(amount)})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    return instance


def _open_task(session, instance: ProcessInstance) -> HumanTask:
    tasks = list(session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                         HumanTask.status == "open")))
    assert len(tasks) == 1, tasks
    return tasks[0]


def _complete(session, user, username: str, instance: ProcessInstance, values: dict) -> HumanTask:
    task = _open_task(session, instance)
    actions.complete_task(session, user(username), task.id, values)
    session.commit()
    return task


@pytest.fixture
def mini_v1(session, user):
    publication = modeling.publish(session, user("owen"), MINI, note="first")
    session.commit()
    return publication.definition


# --- publishing and versions ----------------------------------------------------------------


def test_publish_creates_the_next_version_with_author_note_and_hash(session, user, mini_v1):
    assert (mini_v1.version, mini_v1.published_by.username, mini_v1.note) == (1, "owen", "first")
    second = modeling.publish(session, user("owen"), MINI_V2, note="clerk files approved requests")
    session.commit()
    assert second.created and second.definition.version == 2
    assert second.definition.sha256 == definitions.sha256(MINI_V2)
    assert definitions.latest_definition(session, "mini_approval").id == second.definition.id
    again = modeling.publish(session, user("owen"), MINI_V2)
    assert not again.created and again.definition.id == second.definition.id

    overview = modeling.process_overview(session, "mini_approval")
    assert [(r.definition.version, r.definition.note) for r in overview.versions] == [
        (2, "clerk files approved requests"), (1, "first")]
    published = session.scalars(select(Event).where(Event.kind == "definition_published",
                                                    Event.element_id == "mini_approval").order_by(Event.id)).all()
    assert [e.data["version"] for e in published] == [1, 2] and published[-1].actor.username == "owen"


def test_drafts_keep_a_history_and_change_nothing_that_runs(session, user, mini_v1):
    first = modeling.save_draft(session, user("owen"), MINI_V2, note="first try")
    second = modeling.save_draft(session, user("admin"), MINI_V2.replace("File the request", "Archive it"))
    session.commit()
    history = modeling.drafts_of(session, "mini_approval")
    assert [d.id for d in history] == [second.id, first.id]
    assert (history[1].author.username, history[1].note, history[1].base_version) == ("owen", "first try", 1)
    assert history[0].author.username == "admin"
    assert definitions.latest_definition(session, "mini_approval").id == mini_v1.id
    assert modeling.process_overview(session, "mini_approval").newer_draft.id == second.id
    drafted = session.scalars(select(Event).where(Event.kind == "definition_drafted")).all()
    assert [e.data["draft"] for e in drafted] == [first.id, second.id]
    assert audit.verify(session).ok


def test_the_modeler_cannot_turn_one_process_into_another(session, user, mini_v1):
    other = MINI.replace('id="mini_approval"', 'id="customer_complaint"')
    for operation in (modeling.save_draft, modeling.publish):
        with pytest.raises(InvalidDefinition, match="changed from “mini_approval” to “customer_complaint”"):
            operation(session, user("owen"), other, process_key="mini_approval")
    assert definitions.latest_definition(session, "customer_complaint").published_by is None


def test_only_process_owners_and_administrators_change_diagrams(session, user):
    for operation in (lambda who: modeling.save_draft(session, who, MINI),
                      lambda who: modeling.publish(session, who, MINI),
                      lambda who: modeling.create_process(session, who, "x_process", "X", "sales_rep")):
        with pytest.raises(NotAllowed):
            operation(user("mark"))
    assert modeling.publish(session, user("admin"), MINI).definition.version == 1


def test_instance_started_on_v1_completes_on_v1_after_v2_is_published(session, user, mini_v1):
    old = _start(session, user, 10)
    modeling.publish(session, user("owen"), MINI_V2)
    session.commit()
    new = _start(session, user, 20)
    assert (old.definition.version, new.definition.version) == (1, 2)
    assert _open_task(session, old).name == "Approve request"
    assert _open_task(session, new).name == "Approve the request"

    _complete(session, user, "mark", old, {"decision": "approve"})
    session.refresh(old)
    assert (old.status, old.definition.version) == ("completed", 1)  # v1 ends after the approval

    _complete(session, user, "mark", new, {"decision": "approve"})
    assert _open_task(session, new).element_id == "file_request"  # v2 goes on to the clerk
    _complete(session, user, "clara", new, {})
    session.refresh(new)
    assert (new.status, new.definition.version) == ("completed", 2)


# --- migration ------------------------------------------------------------------------------


def test_compatible_migration_moves_the_instance_and_records_it(session, user, mini_v1):
    instance = _start(session, user)
    claimed = _open_task(session, instance)
    actions.claim(session, user("mark"), claimed.id)
    session.commit()
    modeling.publish(session, user("owen"), MINI_V2)
    session.commit()

    preview = instance_migration.migration_preview(session, user("owen"), "mini_approval", 1)
    assert [(c.instance.id, c.ok, c.open_tasks) for c in preview.checks] == [(instance.id, True, ["Approve request"])]
    instance_migration.migrate_instance(session, user("owen"), instance.id)
    session.commit()

    session.refresh(instance)
    assert instance.definition.version == 2
    task = _open_task(session, instance)
    assert task.id == claimed.id and task.name == "Approve the request" and task.assignee.username == "mark"
    migrated = [e for e in audit.events_of(session, instance.id) if e.kind == "migrated"]
    assert len(migrated) == 1 and migrated[0].actor.username == "owen"
    assert (migrated[0].data["from"], migrated[0].data["to"]) == (1, 2)

    _complete(session, user, "mark", instance, {"decision": "approve"})
    assert _open_task(session, instance).element_id == "file_request"  # the new version's step
    _complete(session, user, "clara", instance, {})
    session.refresh(instance)
    assert instance.status == "completed"
    assert audit.verify(session).ok


def test_incompatible_migration_is_refused_with_the_blocking_task_ids(session, user, mini_v1):
    instance = _start(session, user)
    modeling.publish(session, user("owen"), REWORK, note="the clerk checks requests")
    session.commit()
    with pytest.raises(instance_migration.MigrationRefused) as refused:
        instance_migration.migrate_instance(session, user("owen"), instance.id)
    assert [b.element_id for b in refused.value.blocking] == ["approve_request"]
    assert refused.value.status == 409 and "version 2" in str(refused.value)
    session.rollback()
    session.refresh(instance)
    assert instance.definition.version == 1 and _open_task(session, instance).name == "Approve request"
    assert not [e for e in audit.events_of(session, instance.id) if e.kind == "migrated"]


def test_migrating_all_cases_moves_those_that_can_and_lists_the_rest(session, user, mini_v1):
    waiting = _start(session, user, 1)
    modeling.publish(session, user("owen"), MINI_V2)
    session.commit()
    on_v2 = _start(session, user, 2)
    _complete(session, user, "mark", on_v2, {"decision": "approve"})  # waits at file_request, new in v2
    modeling.publish(session, user("owen"), MINI, note="back to the first version")  # v3 = v1 again
    session.commit()

    result = instance_migration.migrate_instances(session, user("owen"), "mini_approval", 2)
    session.commit()
    assert result.migrated == [] and [c.instance.id for c in result.refused] == [on_v2.id]
    assert [b.element_id for b in result.refused[0].blocking] == ["file_request"]

    result = instance_migration.migrate_instances(session, user("owen"), "mini_approval", 1, 3)
    session.commit()
    assert [i.id for i in result.migrated] == [waiting.id] and result.refused == []
    session.refresh(waiting)
    assert waiting.definition.version == 3


REMINDER = MINI.replace("  </bpmn:process>", """\
    <bpmn:boundaryEvent id="reminder" cancelActivity="false" attachedToRef="approve_request">
      <bpmn:outgoing>f_reminder</bpmn:outgoing>
      <bpmn:timerEventDefinition id="reminder_timer">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">P3D</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:endEvent id="reminded"><bpmn:incoming>f_reminder</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f_reminder" sourceRef="reminder" targetRef="reminded" />
  </bpmn:process>""")


def test_a_waiting_timer_keeps_its_due_time_when_the_case_moves(session, user):
    modeling.publish(session, user("owen"), REMINDER)
    session.commit()
    instance = _start(session, user)
    due = instance.next_timer_at
    assert due is not None
    modeling.publish(session, user("owen"), REMINDER.replace("Approve request", "Approve the request"))
    instance_migration.migrate_instance(session, user("owen"), instance.id)
    session.commit()
    session.refresh(instance)
    assert (instance.definition.version, instance.next_timer_at) == (2, due)
    assert _open_task(session, instance).name == "Approve the request"


def test_a_case_cannot_move_backwards_or_when_finished(session, user, mini_v1):
    instance = _start(session, user)
    with pytest.raises(Conflict, match="on version 1 already"):
        instance_migration.migrate_instance(session, user("owen"), instance.id)  # v1 is the latest
    with pytest.raises(NotAllowed):
        instance_migration.migrate_instance(session, user("mark"), instance.id)
    _complete(session, user, "mark", instance, {"decision": "approve"})
    modeling.publish(session, user("owen"), MINI_V2)
    with pytest.raises(Conflict, match="The case is completed"):
        instance_migration.migrate_instance(session, user("owen"), instance.id)


# --- validation rules -----------------------------------------------------------------------

UNREACHABLE = MINI.replace("  </bpmn:process>", '    <bpmn:userTask id="orphan" name="Forgotten step" '
                           'camunda:candidateGroups="clerk" />\n  </bpmn:process>')
INCLUSIVE = MINI.replace("bpmn:exclusiveGateway", "bpmn:inclusiveGateway").replace(' default="f3"', "")
NO_TITLE = MINI.replace('id="title" label="Title"', 'id="subject" label="Subject"')
IMPLICIT_SPLIT = MINI.replace('<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve_request" />',
                              '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve_request" />'
                              '<bpmn:sequenceFlow id="f9" sourceRef="approve_request" targetRef="end" />')
RULES = [
    # (what is broken, the diagram, element id, words of the message, severity)
    ("not XML", "<bpmn:definitions><oops></bpmn:definitions>", None, "not well-formed XML", "error"),
    ("SpiffWorkflow cannot parse it", MINI.replace('targetRef="decided" />', 'targetRef="nowhere" />'),
     "approve_request", "When looking for a task spec", "error"),
    ("flow to nowhere", MINI.replace('targetRef="decided" />', 'targetRef="nowhere" />'),
     "f2", "target “nowhere” is not an element of the process", "error"),
    ("user task unreachable", UNREACHABLE, "orphan", "cannot be reached from the start event", "error"),
    ("user task without a role", MINI.replace('name="Marketing manager"', 'name="Nobody"'), "approve_request",
     "has no role", "error"),
    ("unknown candidate group", MINI.replace('id="approve_request" name=',
                                            'id="approve_request" camunda:candidateGroups="wizards" name='),
     "approve_request", "“wizards” is not a known role", "error"),
    ("form field id twice", MINI.replace('id="amount" label="Amount"', 'id="title" label="Amount"'), "start",
     "“title” appears twice", "error"),
    ("form field of an unknown type", MINI.replace('label="Amount" type="long"', 'label="Amount" type="money"'),
     "start", "unsupported type “money”", "error"),
    ("form field without a type", MINI.replace('label="Amount" type="long"', 'label="Amount"'), "start",
     "has no type", "warning"),
    ("decision without condition or default", MINI.replace(' default="f3"', ""), "f3", "without condition",
     "error"),
    ("inclusive decision without condition or default", INCLUSIVE, "f3", "inclusive decision", "error"),
    ("condition refused by the sandbox", MINI.replace("decision == 'approve'", "decision.__class__ == 1"), "f4",
     "is refused", "error"),
    ("condition that is not Python", MINI.replace("decision == 'approve'", "decision ==="), "f4",
     "condition “decision ===”", "error"),
    ("condition calling a name the sandbox refuses at run time",
     MINI.replace("decision == 'approve'", "getattr(decision, 'real') == 1"), "f4", "calls getattr()", "warning"),
    ("condition using an attribute no value offers", MINI.replace("decision == 'approve'", "decision.format() == 'x'"),
     "f4", "“.format”", "warning"),
    ("form pattern RE2 cannot compile",
     MINI.replace('<camunda:constraint name="required" /></camunda:validation></camunda:formField>',
                  '<camunda:constraint name="required" /><camunda:constraint name="pattern" config="(a)\\1" />'
                  '</camunda:validation></camunda:formField>', 1),
     "start", "form field “title” has a pattern the engine cannot use", "error"),
    ("process id unfit for a key", MINI.replace('id="mini_approval"', 'id="m' + "x" * 100 + '"'), "m" + "x" * 100,
     "cannot be a process key", "error"),
    ("start form without title", NO_TITLE, "start", "no “title” field", "warning"),
    ("implicit split", IMPLICIT_SPLIT, "approve_request", "[no-implicit-split]", "warning"),
    ("no end event", MINI.replace('<bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>',
                                  '<bpmn:task id="end" name="Done"><bpmn:incoming>f4</bpmn:incoming></bpmn:task>'),
     "mini_approval", "[end-event-required]", "warning"),
]


@pytest.mark.parametrize(("xml", "element_id", "words", "severity"), [r[1:] for r in RULES],
                         ids=[r[0] for r in RULES])
def test_each_validation_rule_names_the_element(session, xml, element_id, words, severity):
    report = validation.validate(session, xml)
    matching = [p for p in report.problems if p.element_id == element_id and words in p.message
                and p.severity == severity]
    assert matching, [str(p) for p in report.problems]
    if severity == "error":
        assert not report.ok


def test_the_shipped_processes_and_the_template_validate_clean(session):
    for row in modeling.catalogue(session):
        assert validation.validate(session, row.latest.xml).problems == [], row.key
    template = modeling.template_xml("new_thing", "New <thing> & co", "sales_rep", "Sales representative")
    assert validation.validate(session, template).problems == []


def test_errors_block_publishing_and_warnings_need_an_acknowledgement(session, user):
    with pytest.raises(InvalidDefinition) as caught:
        modeling.publish(session, user("owen"), UNREACHABLE)
    assert [p.element_id for p in caught.value.problems] == ["orphan"]
    with pytest.raises(modeling.WarningsNotAcknowledged) as warned:
        modeling.publish(session, user("owen"), NO_TITLE)
    assert warned.value.status == 422 and [p.element_id for p in warned.value.problems] == ["start"]
    assert definitions.latest_definition(session, "mini_approval", required=False) is None
    publication = modeling.publish(session, user("owen"), NO_TITLE, acknowledge_warnings=True)
    assert publication.definition.version == 1 and len(publication.report.warnings) == 1


# --- import, export, new processes ----------------------------------------------------------


@pytest.mark.parametrize(("data", "words"), [
    (BILLION_LAUGHS.encode(), "DOCTYPE and entity declarations are not allowed"),
    (EXTERNAL_ENTITY.encode(), "DOCTYPE and entity declarations are not allowed"),
    (b"<x>" + b"a" * (definitions.MAX_XML_BYTES + 1) + b"</x>", "larger than"),
    ("<?xml version='1.0' encoding='latin-1'?><a>caf\u00e9</a>".encode("latin-1"), "not UTF-8"),
    (b"<html><body>hello</body></html>", "not a BPMN 2.0 diagram"),
], ids=["billion laughs", "external entity", "too large", "not UTF-8", "not BPMN"])
def test_malicious_or_broken_uploads_are_rejected_and_nothing_is_stored(session, user, data, words):
    with pytest.raises(InvalidDefinition) as caught:
        modeling.import_file(session, user("owen"), data, "evil.bpmn")
    assert words in str(caught.value)
    assert session.scalars(select(ProcessDraft)).all() == []


def test_an_import_with_problems_becomes_a_draft_with_its_report(session, user):
    draft, report = modeling.import_file(session, user("owen"), UNREACHABLE.encode(), "mini.bpmn")
    assert (draft.process_key, draft.note, draft.author.username) == ("mini_approval", "imported from mini.bpmn",
                                                                       "owen")
    assert [(p.element_id, p.severity) for p in report.problems] == [("orphan", "error")]


def test_a_new_process_from_the_template_publishes_and_starts(session, user):
    draft = modeling.create_process(session, user("owen"), "gift_request", "Gift <request>", "sales_rep")
    assert validation.validate(session, draft.xml).problems == []
    assert [r.key for r in modeling.catalogue(session) if r.latest is None] == ["gift_request"]
    publication = modeling.publish(session, user("owen"), draft.xml, note="new")
    session.commit()
    assert publication.definition.name == "Gift <request>"
    started = actions.start_process(session, user("steve"), "gift_request", {"title": "Pens for a dealer"})
    instance = session.get(ProcessInstance, started.id)
    task = _open_task(session, instance)
    assert (task.element_id, task.candidate_roles) == ("review_request", ["sales_rep"])
    with pytest.raises(InvalidForm) as caught:
        modeling.create_process(session, user("owen"), "gift_request", "", "wizard")
    assert set(caught.value.errors) == {"key", "name", "role"}


# --- diff -----------------------------------------------------------------------------------


def test_diff_lists_added_removed_and_changed_elements_with_their_properties(session, user, mini_v1):
    modeling.publish(session, user("owen"), MINI_V2)
    modeling.publish(session, user("owen"), REWORK)
    diff = process_versions.diff_versions(session, "mini_approval", 1, 2)
    assert sorted(diff.ids("added")) == ["Lane_clerk", "f5", "file_request"]
    assert diff.ids("removed") == []
    changed = {c.element_id: {p.name: (p.before, p.after) for p in c.properties} for c in diff.changes
               if c.kind == "changed"}
    assert changed["approve_request"] == {"name": ("Approve request", "Approve the request")}
    assert changed["f4"] == {"targetRef": ("end", "file_request")}

    rework = process_versions.diff_versions(session, "mini_approval", 2, 3)
    assert {"approve_request", "decided", "file_request"} <= set(rework.ids("removed"))
    assert "check_request" in rework.ids("added")


def test_diff_sees_forms_conditions_and_roles():
    changed = MINI.replace("decision == 'approve'", "decision == 'approved'").replace(
        '<camunda:constraint name="min" config="1" />', '<camunda:constraint name="min" config="5" />').replace(
        'id="approve_request" name=', 'id="approve_request" camunda:candidateGroups="general_manager" name=')
    changes = {c.element_id: {p.name: (p.before, p.after) for p in c.properties}
               for c in process_versions.diff_xml(MINI, changed)}
    assert changes["f4"] == {"condition": ("decision == 'approve'", "decision == 'approved'")}
    assert changes["start"] == {"form field “amount”": ("long · Amount · min=1", "long · Amount · min=5")}
    assert changes["approve_request"] == {"camunda:candidateGroups": (None, "general_manager")}


# --- the web pages --------------------------------------------------------------------------

PAGES = ["/modeler", "/modeler/customer_complaint", "/modeler/customer_complaint/edit",
         "/modeler/customer_complaint/diff?a=1&b=1"]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(("username", "status"), [("owen", 200), ("admin", 200), ("mark", 403), ("alice", 403)])
def test_modeler_pages_are_for_process_owners_and_administrators(login_as, path, username, status):
    assert login_as(username).get(path).status_code == status


def test_nav_link_only_for_process_owners(login_as):
    assert b'href="/modeler"' in login_as("owen").get("/").data
    assert b'href="/modeler"' not in login_as("cathy").get("/").data


def _post_json(client, url: str, body: dict):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def _in_app_db(app, work):
    """Run ``work(session)`` on the test app's database and commit."""
    from engine.db import make_engine

    engine = make_engine(app.config["DATABASE_URL"])
    try:
        with WorkflowEngine().session_factory(engine)() as session:
            result = work(session)
            session.commit()
            return result
    finally:
        engine.dispose()


def test_validate_save_and_publish_through_the_json_api(login_as, app):
    owen = login_as("owen")
    xml = _in_app_db(app, lambda s: definitions.latest_definition(s, "customer_complaint").xml)
    renamed = xml.replace('name="Classify complaint"', 'name="Classify and prioritise"')
    assert renamed != xml

    report = _post_json(owen, "/modeler/api/validate", {"xml": UNREACHABLE}).get_json()
    assert report["errors"] == 1 and report["problems"][0]["element_id"] == "orphan"

    saved = _post_json(owen, "/modeler/api/drafts", {"xml": renamed, "note": "rename"})
    assert saved.status_code == 201 and saved.get_json()["process_key"] == "customer_complaint"
    assert "Owen Price" in saved.get_json()["author"]
    draft_xml = owen.get(saved.get_json()["xml_url"])
    assert draft_xml.status_code == 200 and b"Classify and prioritise" in draft_xml.data

    hijack = _post_json(owen, "/modeler/api/drafts", {"xml": MINI, "process_key": "customer_complaint"})
    assert hijack.status_code == 422 and "process id changed" in hijack.get_json()["problems"][0]["message"]
    refused = _post_json(owen, "/modeler/api/publish", {"xml": UNREACHABLE})
    assert refused.status_code == 422 and refused.get_json()["report"]["errors"] == 1
    published = _post_json(owen, "/modeler/api/publish", {"xml": renamed, "note": "clearer name"})
    assert published.status_code == 200, published.data
    assert published.get_json()["version"] == 2 and published.get_json()["created"] is True

    page = owen.get("/modeler/customer_complaint").get_data(as_text=True)
    assert "clearer name" in page and "Owen Price" in page
    assert 'href="/definitions/' in page
    assert login_as("mark").post("/modeler/api/validate", json={"xml": MINI}).status_code == 403


def test_publishing_with_warnings_needs_the_acknowledgement(login_as):
    owen = login_as("owen")
    warned = _post_json(owen, "/modeler/api/publish", {"xml": NO_TITLE})
    assert warned.status_code == 422 and warned.get_json()["needs_acknowledgement"] is True
    assert warned.get_json()["report"]["problems"][0]["element_id"] == "start"
    done = _post_json(owen, "/modeler/api/publish", {"xml": NO_TITLE, "acknowledge": True})
    assert done.status_code == 200 and done.get_json()["version"] == 1


def test_upload_rejects_entities_and_lists_problems_with_element_ids(login_as):
    owen = login_as("owen")
    bomb = owen.post("/modeler/import", data={"file": (io.BytesIO(BILLION_LAUGHS.encode()), "bomb.bpmn")},
                     content_type="multipart/form-data")
    assert bomb.status_code == 422 and b"DOCTYPE and entity declarations are not allowed" in bomb.data
    broken = owen.post("/modeler/import", data={"file": (io.BytesIO(UNREACHABLE.encode()), "mini.bpmn")},
                       content_type="multipart/form-data")
    assert broken.status_code == 422
    text = broken.get_data(as_text=True)
    assert 'data-element-id="orphan"' in text and "cannot be reached" in text
    assert re.search(r'href="/modeler/mini_approval/edit\?draft=\d+"', text)
    clean = owen.post("/modeler/import", data={"file": (io.BytesIO(MINI.encode()), "mini.bpmn")},
                      content_type="multipart/form-data")
    assert clean.status_code == 302 and "/modeler/mini_approval/edit?draft=" in clean.headers["Location"]


def test_new_process_form(login_as):
    owen = login_as("owen")
    bad = owen.post("/modeler/new", data={"key": "customer_complaint", "name": "", "role": "sales_rep"})
    assert bad.status_code == 422 and "already a process" in bad.get_data(as_text=True)
    made = owen.post("/modeler/new", data={"key": "gift_request", "name": "Gift request", "role": "sales_rep"})
    assert made.status_code == 302 and "/modeler/gift_request/edit?draft=" in made.headers["Location"]
    assert owen.get(made.headers["Location"]).status_code == 200


def test_diff_and_migration_pages(app, login_as):
    from engine.users import user_by_name

    def prepare(session):
        owen, steve = user_by_name(session, "owen"), user_by_name(session, "steve")
        modeling.publish(session, owen, MINI)
        started = actions.start_process(session, steve, "mini_approval", {"title": "First", "amount": "3"})
        keep = session.get(ProcessInstance, started.id)
        modeling.publish(session, owen, REWORK)
        return keep.id

    keep_id = _in_app_db(app, prepare)

    owen_client = login_as("owen")
    diff = owen_client.get("/modeler/mini_approval/diff?a=1&b=2").get_data(as_text=True)
    assert 'data-removed="' in diff and "approve_request" in diff and "check_request" in diff
    preview = owen_client.get("/modeler/mini_approval/migrate?from=1")
    assert preview.status_code == 200 and "approve_request" in preview.get_data(as_text=True)
    result = owen_client.post("/modeler/mini_approval/migrate", data={"from": "1"})
    text = result.get_data(as_text=True)
    assert result.status_code == 200 and "No case was moved" in text
    assert f'data-instance-id="{keep_id}"' in text and "approve_request" in text

    _in_app_db(app, lambda session: modeling.publish(session, user_by_name(session, "owen"), MINI_V2))
    assert "Move cases to v3" in owen_client.get("/modeler/mini_approval").get_data(as_text=True)
    moved = owen_client.post("/modeler/mini_approval/migrate", data={"from": "1"}).get_data(as_text=True)
    assert "Moved 1 case to version 3." in moved
    history = owen_client.get(f"/instances/{keep_id}").get_data(as_text=True)
    assert "version 1 → version 3" in history and "Approve the request" in history
