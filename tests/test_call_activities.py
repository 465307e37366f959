"""Call activities into processes published from other files, and multi-instance reviews over a collection.

Through the engine's functions (deploy, start, inbox, complete) and over HTTP; the diagrams are in tests/data.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import select

from engine import actions, case_actions, definitions, inbox, read_models
from engine.db import Event, HumanTask, Process, ProcessDefinition, ProcessInstance
from engine.errors import InvalidDefinition
from engine.running import RunningInstance
from engine.validation import check_file
from web.cli import main

DATA = Path(__file__).parent / "data"


def _xml(name: str) -> str:
    return (DATA / name).read_text()


def _publish(session, name: str) -> None:
    for definition in definitions.deploy_file(session, None, _xml(name)):
        session.get(Process, definition.process_key).starter_roles = ["sales_rep"]
    session.commit()


def _open(session, instance_id: int) -> list[HumanTask]:
    return list(session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                        HumanTask.status == "open").order_by(HumanTask.id)))


def _case(session, instance_id: int) -> ProcessInstance:
    return session.get(ProcessInstance, instance_id, populate_existing=True)


def _complete(session, actor, task: HumanTask, values: dict) -> None:
    actions.claim(session, actor, task.id)
    actions.complete_task(session, actor, task.id, values)
    session.commit()


def test_a_call_into_another_file_needs_it_published_first(session):
    with pytest.raises(InvalidDefinition) as refused:
        definitions.deploy(session, None, _xml("call_parent_in_out.bpmn"))
    [problem] = [p for p in refused.value.problems if p.element_id == "call_check"]
    assert problem.message == "call activity calls “child_review”: it is not published: publish it first"
    session.rollback()
    _publish(session, "call_child_review.bpmn")
    _publish(session, "call_parent_in_out.bpmn")


def test_the_called_process_sees_what_is_mapped_in_and_gives_back_what_is_mapped_out(session, user):
    _publish(session, "call_child_review.bpmn")
    _publish(session, "call_parent_in_out.bpmn")
    case = actions.start_process(session, user("steve"), "parent_in_out",
                                 {"title": "Van", "amount": "700", "secret_note": "do not tell"})
    session.commit()
    [task] = _open(session, case.id)
    # the called process's user task is in the inbox of its lane's role, labelled by the called process
    assert (task.element_id, task.candidate_roles) == ("check_amount", ["marketing_manager"])
    assert task.name == "Check the amount (Check an amount version 1)"
    assert [t.id for t in inbox.inbox(session, user("mark")).available if t.instance_id == case.id] == [task.id]
    assert not [t for t in inbox.inbox(session, user("rita")).available if t.instance_id == case.id]
    child_data = RunningInstance.open(session, case.id).workflow.get_task_from_id(UUID(task.spiff_task_id)).data
    assert child_data == {"amount": 700}  # only what camunda:in maps: not the title, not the note
    _complete(session, user("mark"), task, {"checked_by_hand": "true"})
    [read] = _open(session, case.id)
    assert read.element_id == "read_verdict" and read.name == "Read the verdict"
    assert _case(session, case.id).data == {"title": "Van", "amount": 700,
                                                          "secret_note": "do not tell", "verdict": "fine"}
    _complete(session, user("steve"), read, {"acknowledged": "true"})
    assert _case(session, case.id).status == "completed"
    visible = read_models.visible_case(session, user("steve"), case.id)
    assert "check_amount" in {t.element_id for t in visible.tasks}
    assert visible.parsed.step_name("give_verdict") == "Give the verdict"


def test_a_running_case_keeps_the_called_version_it_started_with(session, user):
    _publish(session, "call_child_review.bpmn")
    _publish(session, "call_parent_in_out.bpmn")
    old = actions.start_process(session, user("steve"), "parent_in_out", {"title": "Old", "amount": "700"})
    session.commit()
    _publish(session, "call_child_review_v2.bpmn")  # version 2: another task, a stricter rule
    new = actions.start_process(session, user("steve"), "parent_in_out", {"title": "New", "amount": "700"})
    session.commit()
    [old_task], [new_task] = _open(session, old.id), _open(session, new.id)
    assert (old_task.element_id, new_task.element_id) == ("check_amount", "check_amount_twice")
    assert new_task.name == "Check the amount twice (Check an amount version 2)"
    # the old case's task page still shows the task of the version the case runs
    view = read_models.task_view(session, user("mark"), old_task.id)
    assert view.info is not None and view.info.name == "Check the amount" and view.info.called.endswith("version 1")
    assert "check_amount" in {t.element_id for t in read_models.visible_case(session, user("mark"), old.id).tasks}
    first = session.scalar(select(ProcessDefinition.id).where(ProcessDefinition.process_key == "child_review",
                                                              ProcessDefinition.version == 1))
    assert read_models.visible_case(session, user("steve"), old.id).parsed.bound == {"child_review": first}
    _complete(session, user("mark"), old_task, {"checked_by_hand": "false"})
    _complete(session, user("mark"), new_task, {"checked_by_hand": "false"})
    assert _case(session, old.id).data["verdict"] == "fine"
    assert _case(session, new.id).data["verdict"] == "too much (v2)"


def test_version_and_version_tag_bindings(session, user):
    _publish(session, "call_child_review.bpmn")
    with pytest.raises(InvalidDefinition) as refused:
        definitions.deploy(session, None, _xml("call_parent_tag.bpmn"))
    assert [p.message for p in refused.value.problems if p.element_id == "call_check_strict"] == [
        "call activity calls “child_review” with version tag “strict”: it is not published: publish it first"]
    session.rollback()
    _publish(session, "call_parent_version.bpmn")
    _publish(session, "call_child_review_v2.bpmn")
    _publish(session, "call_parent_tag.bpmn")
    bound = actions.start_process(session, user("steve"), "parent_version_bound", {"title": "V1", "amount": "700"})
    tagged = actions.start_process(session, user("steve"), "parent_tag_bound", {"title": "Tag", "amount": "700"})
    session.commit()
    [v1_task], [tag_task] = _open(session, bound.id), _open(session, tagged.id)
    assert (v1_task.element_id, tag_task.element_id) == ("check_amount", "check_amount_twice")
    _complete(session, user("mark"), v1_task, {"checked_by_hand": "true"})
    _complete(session, user("mark"), tag_task, {"checked_by_hand": "true"})
    v1_case, tag_case = _case(session, bound.id), _case(session, tagged.id)
    # variables="all" both ways: the called process's variables come back
    assert v1_case.status == tag_case.status == "completed"
    assert (v1_case.data["verdict"], v1_case.data["checked_by_hand"]) == ("fine", True)
    assert tag_case.data["verdict"] == "too much (v2)"


def test_a_case_calling_another_file_can_be_cancelled(session, user):
    _publish(session, "call_child_review.bpmn")
    _publish(session, "call_parent_in_out.bpmn")
    case = actions.start_process(session, user("steve"), "parent_in_out", {"title": "Stop", "amount": "5"})
    session.commit()
    case_actions.cancel(session, user("steve"), case.id, "not needed")
    session.commit()
    assert _open(session, case.id) == []


def _review(session, user, kind: str, names: str) -> tuple[int, list[HumanTask]]:
    _publish(session, f"mi_review_{kind}.bpmn")
    case = actions.start_process(session, user("steve"), f"mi_review_{kind}",
                                 {"title": "Brochure", "reviewer_names": names})
    session.commit()
    return case.id, _open(session, case.id)


def test_a_parallel_review_has_one_task_per_element_of_the_collection(session, user):
    case_id, tasks = _review(session, user, "parallel", "ann, bob, cy")
    assert [t.name for t in tasks] == ["Review: ann", "Review: bob", "Review: cy"]
    assert {t.element_id for t in tasks} == {"review"} and all(t.candidate_roles == ["marketing_manager"]
                                                              for t in tasks)
    for task, vote in zip(tasks, ["yes", "no", "yes"], strict=True):
        _complete(session, user("mark"), task, {"vote": vote})
    case = _case(session, case_id)
    assert case.status == "completed" and case.data["reviewed"] == 3


def test_a_sequential_review_offers_one_element_after_the_other(session, user):
    case_id, [first] = _review(session, user, "sequential", "ann, bob")
    assert first.name == "Review: ann"
    _complete(session, user("mark"), first, {"vote": "yes"})
    [second] = _open(session, case_id)
    assert second.name == "Review: bob"
    _complete(session, user("mark"), second, {"vote": "no"})
    assert _case(session, case_id).status == "completed"


def test_a_collection_that_is_not_a_list_stops_the_case_as_an_incident(session, user):
    _publish(session, "mi_review_parallel.bpmn")
    xml = _xml("mi_review_parallel.bpmn").replace(
        "reviewers = [name.strip() for name in reviewer_names.split(',') if name.strip()]", "reviewers = None")
    definitions.deploy(session, None, xml)
    session.commit()
    case = actions.start_process(session, user("steve"), "mi_review_parallel", {"title": "X", "reviewer_names": "a"})
    session.commit()
    assert case.status == "incident"
    kinds = [e.kind for e in session.scalars(select(Event).where(Event.instance_id == case.id)
                                                          .order_by(Event.id))]
    assert "incident" in kinds


def test_check_resolves_calls_among_the_files_it_is_given(tmp_path, capsys):
    parent, child = DATA / "call_parent_in_out.bpmn", DATA / "call_child_review.bpmn"
    assert check_file(parent.read_bytes(), {"sales_rep": "Sales rep", "marketing_manager": "Marketing"}).verdict \
        == "cannot deploy"
    with pytest.raises(SystemExit) as alone:
        main(["check", str(parent)], standalone_mode=False)
    out = capsys.readouterr().out
    assert alone.value.code == 1
    assert "blocks: [call_check] call activity calls “child_review”: it is not published: publish it first" in out
    with pytest.raises(SystemExit) as together:
        main(["check", str(parent), str(child)], standalone_mode=False)
    out = capsys.readouterr().out
    assert together.value.code == 0, out
    assert f"{parent}: deploys" in out


def test_over_http_a_call_and_a_review(app, login_as):
    with app.extensions["deptflow_sessions"]() as session:
        for name in ("call_child_review.bpmn", "call_parent_in_out.bpmn", "mi_review_parallel.bpmn"):
            _publish(session, name)
    steve, mark = login_as("steve"), login_as("mark")
    started = steve.post("/processes/parent_in_out/start", data={"title": "Desk", "amount": "30"})
    assert started.status_code == 302, started.get_data(as_text=True)[:2000]
    case_url = started.location
    page = mark.get("/").get_data(as_text=True)
    assert "Check the amount (Check an amount version 1)" in page
    task_id = int(page.split('data-element-id="check_amount"')[0].rsplit('data-task-id="', 1)[1].split('"')[0])
    assert mark.post(f"/tasks/{task_id}/claim").status_code == 302
    assert mark.post(f"/tasks/{task_id}/complete", data={"checked_by_hand": "true"}).status_code == 302
    case_page = steve.get(case_url).get_data(as_text=True)
    assert "Check the amount (Check an amount version 1)" in case_page and "Read the verdict" in case_page
    started = steve.post("/processes/mi_review_parallel/start", data={"title": "Flyer", "reviewer_names": "ann,bob"})
    assert started.status_code == 302
    page = mark.get("/").get_data(as_text=True)
    assert "Review: ann" in page and "Review: bob" in page


def _caller(process_id: str, called: str | None) -> str:
    """A process that calls ``called`` (of another file) and nothing else; a plain task when ``called`` is None."""
    step = (f'<bpmn:callActivity id="call_{called}" calledElement="{called}" />' if called
            else '<bpmn:task id="call_nothing" />')
    step_id = f"call_{called}" if called else "call_nothing"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Defs_{process_id}"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="{process_id}_start" />{step}<bpmn:endEvent id="{process_id}_end" />
    <bpmn:sequenceFlow id="{process_id}_f1" sourceRef="{process_id}_start" targetRef="{step_id}" />
    <bpmn:sequenceFlow id="{process_id}_f2" sourceRef="{step_id}" targetRef="{process_id}_end" />
  </bpmn:process>
</bpmn:definitions>"""


def test_processes_of_two_files_calling_each_other_stop_as_an_incident(session, user):
    for xml in (_caller("ping", None), _caller("pong", "ping"), _caller("ping", "pong")):
        for definition in definitions.deploy_file(session, None, xml):
            session.get(Process, definition.process_key).starter_roles = ["sales_rep"]
        session.commit()
    case = actions.start_process(session, user("steve"), "ping", {})
    session.commit()
    assert case.status == "incident"
    [incident] = [e for e in session.scalars(select(Event).where(Event.instance_id == case.id))
                  if e.kind == "incident"]
    assert "nested more than 20 deep" in str(incident.data)
