"""Comments with @mentions, and files of cases (issue 18, parts 1 and 2): in the engine and over HTTP.

A customer complaint (Cathy of customer service starts and classifies it; Paula of production
resolves a quality problem) and a dealer audit (Mark starts it, Amy inspects the store) are the
cases; Fiona of finance takes no part in either.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import actions, attachments, audit, comments, forms
from engine.db import Attachment, Comment, Event, HumanTask, Notification
from engine.errors import InvalidForm, NotAllowed, NotFound
from engine.files import Upload, check

COMPLAINT = {"title": "Wobbly chair, order 5521", "customer_name": "J. Weber", "customer_contact": "0171 555 0101",
             "product_name": "Oak chair", "problem_type": "quality",
             "complaint_description": "Leg came loose after two weeks"}
AUDIT = {"title": "Audit Oakline Hamburg", "dealer_name": "Oakline", "store_name": "Hamburg City",
         "region": "North", "audit_date": "2026-12-03"}
ALL_OK = {"decoration_ok": "true", "price_discipline_ok": "true", "no_cross_region_selling": "true",
          "display_ok": "true"}
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def files_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test stores its files in a directory of its own, with a limit of 1 MB."""
    directory = tmp_path / "attachments"
    monkeypatch.setenv("DEPTFLOW_ATTACHMENTS_DIR", str(directory))
    monkeypatch.setenv("DEPTFLOW_ATTACHMENT_MAX_MB", "1")
    monkeypatch.delenv("DEPTFLOW_ATTACHMENT_TYPES", raising=False)
    return directory


def _blobs(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


def _complaint(session, user) -> int:
    instance = actions.start_process(session, user("cathy"), "customer_complaint", COMPLAINT)
    session.commit()
    return instance.id


def _task(session, instance_id: int, element_id: str) -> int:
    return session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                     HumanTask.element_id == element_id))


# --- comments in the engine ------------------------------------------------------------------


def test_a_mention_notifies_who_may_see_the_case_and_nobody_else(session, user):
    case = _complaint(session, user)
    actions.complete_task(session, user("cathy"), _task(session, case, "classify_complaint"),
                          {"severity": "medium", "confirmed_type": "quality"})
    session.commit()
    comment = comments.add(session, user("cathy"), case, "@paula please check the glue. @fiona FYI, @nobody.")
    session.commit()
    told = {n.user.username: n for n in session.scalars(select(Notification).where(Notification.kind == "mentioned"))}
    assert set(told) == {"paula"}, "fiona may not see the case; nobody is no user"
    assert told["paula"].instance_id == case and "Cathy" in told["paula"].message
    assert "glue" in told["paula"].message
    event = session.scalar(select(Event).where(Event.kind == "commented", Event.instance_id == case))
    assert event.data["text"] == comment.body and event.data["mentioned"] == ["paula"]
    assert comments.mentions("mail me at a@b.de, @Paula. @paula") == ["paula"]


def test_a_comment_is_on_the_case_chain_and_the_chain_verifies(session, user):
    case = _complaint(session, user)
    comments.add(session, user("cathy"), case, "Customer called again.")
    session.commit()
    event = session.scalar(select(Event).where(Event.kind == "commented"))
    assert event.chain == case and event.seq and event.hash == audit.event_hash(event)
    assert audit.verify(session).ok
    event.data = {**event.data, "text": "Customer never called."}  # rewriting a comment breaks the chain
    session.commit()
    assert not audit.verify(session).ok


def test_bad_comments_are_refused_and_nothing_is_saved(session, user):
    case = _complaint(session, user)
    task = _task(session, case, "classify_complaint")
    for body, message in [("  \n ", comments.EMPTY), ("x" * (comments.MAX_COMMENT + 1), comments.TOO_LONG)]:
        with pytest.raises(InvalidForm) as refused:
            comments.add_on_task(session, user("cathy"), task, body)
        assert refused.value.errors == {"body": message}
        session.rollback()
    with pytest.raises(NotAllowed):
        comments.add(session, user("fiona"), case, "Let me in")
    session.rollback()
    with pytest.raises(NotFound):
        comments.add(session, user("cathy"), 999999, "Nowhere")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Comment)) == 0
    assert comments.add(session, user("cathy"), case, "x" * comments.MAX_COMMENT).body


# --- files in the engine ------------------------------------------------------------------------


def test_a_file_field_checks_required_size_type_and_content():
    form = forms.Form([forms.FormField("drawing", "Drawing", "file", constraints={"required": None,
                                                                                  "accept": ".pdf,.dwg"})])
    with pytest.raises(InvalidForm) as refused:
        forms.validate(form, {}, {})
    assert refused.value.errors == {"drawing": "This field is required."}
    with pytest.raises(InvalidForm) as refused:
        forms.validate(form, {"drawing": Upload("plan.png", PNG)}, {})
    assert refused.value.errors["drawing"] == "Files of this type are not accepted; upload .pdf, .dwg."
    with pytest.raises(InvalidForm) as refused:
        forms.validate(form, {"drawing": Upload("plan.pdf", b"<html><script>alert(1)</script>")}, {})
    assert refused.value.errors["drawing"] == "The file's content is not that of a .pdf file."
    assert "drawing" not in refused.value.values, "a file is not kept to re-render"
    with pytest.raises(ValueError, match="larger than the limit of 1 MB"):
        check(Upload("big.pdf", PDF + b"0" * 1024 * 1024))
    with pytest.raises(ValueError, match="not accepted"):
        check(Upload("page.html", b"<html></html>"))
    with pytest.raises(ValueError, match="content is not"):
        check(Upload("notes.txt", b"  <svg onload=alert(1)>"))
    kept = {"attachment_id": 1, "name": "plan.pdf", "sha256": "0" * 64}
    assert forms.validate(form, {}, {"drawing": kept}) == {"drawing": kept}
    assert isinstance(forms.validate(form, {"drawing": Upload("plan.pdf", PDF)}, {})["drawing"],
                      attachments.CheckedUpload)


def test_the_same_content_is_stored_once_and_its_hash_is_on_the_chain(session, user, files_dir):
    case = _complaint(session, user)
    first = attachments.attach_to_case(session, user("cathy"), case, Upload("letter.pdf", PDF))
    second = attachments.attach_to_case(session, user("cathy"), case, Upload("../../copy of letter.pdf", PDF))
    session.commit()
    assert first.id != second.id and first.sha256 == second.sha256 == hashlib.sha256(PDF).hexdigest()
    assert second.filename == "copy of letter.pdf"
    assert len(_blobs(files_dir)) == 1
    stored = _blobs(files_dir)[0]
    events = session.scalars(select(Event).where(Event.kind == "attached").order_by(Event.id)).all()
    assert [e.data["sha256"] for e in events] == [hashlib.sha256(stored.read_bytes()).hexdigest()] * 2
    assert events[0].data["size"] == len(PDF) and events[0].data["content_type"] == "application/pdf"
    assert events[0].chain == case
    assert audit.verify(session).ok and attachments.verify(session).ok


def test_a_file_changed_on_disk_is_found_and_not_served(session, user, files_dir):
    case = _complaint(session, user)
    attachment = attachments.attach_to_case(session, user("cathy"), case, Upload("letter.pdf", PDF))
    session.commit()
    check_before = attachments.verify(session)
    assert check_before.ok and check_before.count == 1
    _blobs(files_dir)[0].write_bytes(PDF.replace(b"Catalog", b"Katalog"))
    result = attachments.verify(session)
    assert not result.ok and "changed on disk" in str(result) and "letter.pdf" in str(result)
    with pytest.raises(Exception, match="no longer matches its recorded SHA-256"):
        attachments.download(session, user("cathy"), attachment.id)
    _blobs(files_dir)[0].write_bytes(PDF)
    attachment.sha256 = hashlib.sha256(b"other").hexdigest()  # a row changed to match another file
    session.commit()
    assert "does not match its audit event" in str(attachments.verify(session))


def test_a_refused_file_stores_nothing(session, user, files_dir):
    case = _complaint(session, user)
    with pytest.raises(InvalidForm) as refused:
        attachments.attach_to_case(session, user("cathy"), case, Upload("run.exe", b"MZ\x90\x00"))
    assert "not accepted" in refused.value.errors["file"]
    session.rollback()
    with pytest.raises(NotAllowed):
        attachments.attach_to_case(session, user("fiona"), case, Upload("letter.pdf", PDF))
    session.rollback()
    assert _blobs(files_dir) == [] and session.scalar(select(func.count()).select_from(Attachment)) == 0


# --- over HTTP ---------------------------------------------------------------------------------


def _start_complaint(client, evidence: tuple[bytes, str] | None = None):
    data: dict = dict(COMPLAINT)
    if evidence is not None:
        data["evidence"] = (io.BytesIO(evidence[0]), evidence[1])
    return client.post("/processes/customer_complaint/start", data=data, content_type="multipart/form-data")


def test_a_start_form_file_is_downloaded_by_participants_only(app, login_as, files_dir):
    cathy = login_as("cathy")
    form = cathy.get("/processes/customer_complaint/start").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in form and 'type="file"' in form and 'name="evidence"' in form
    response = _start_complaint(cathy, (PDF, "letter.pdf"))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    case = int(response.location.rsplit("/", 1)[1])
    page = cathy.get(f"/instances/{case}").get_data(as_text=True)
    link = re.search(r'href="/attachments/(\d+)"[^>]*>letter.pdf<', page)
    assert link, "the case data shows the file as a download link"
    url = f"/attachments/{link.group(1)}"
    download = cathy.get(url)
    assert download.status_code == 200 and download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "letter.pdf" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.mimetype == "application/pdf"
    assert login_as("fiona").get(url).status_code == 404
    assert login_as("fiona").get("/attachments/999999").status_code == 404
    assert login_as("alice").get(url).status_code == 200, "the auditor reads every case"
    history = cathy.get(f"/history/{case}").get_data(as_text=True)
    assert hashlib.sha256(PDF).hexdigest()[:16] in history and "attached" in history


def test_a_task_form_file_and_a_file_added_to_the_case(app, login_as, files_dir):
    mark, amy = login_as("mark"), login_as("amy")
    response = mark.post("/processes/dealer_audit/start", data=AUDIT)
    case = int(response.location.rsplit("/", 1)[1])
    task = re.search(r'data-task-id="(\d+)" data-element-id="inspect_dealer"', amy.get("/").get_data(as_text=True))
    task_id = int(task.group(1))
    assert amy.post(f"/tasks/{task_id}/claim").status_code == 302
    refused = amy.post(f"/tasks/{task_id}/complete", content_type="multipart/form-data",
                       data={**ALL_OK, "store_photos": (io.BytesIO(PDF), "store.exe")})
    assert refused.status_code == 422
    assert re.search(r'data-field="store_photos">.*?Files of this type are not accepted',
                     refused.get_data(as_text=True), re.S)
    too_big = amy.post(f"/tasks/{task_id}/complete", content_type="multipart/form-data",
                       data={**ALL_OK, "store_photos": (io.BytesIO(PNG + b"0" * 1024 * 1024), "front.png")})
    assert too_big.status_code == 422 and "larger than the limit of 1 MB" in too_big.get_data(as_text=True)
    assert _blobs(files_dir) == [], "nothing stored for refused files"
    done = amy.post(f"/tasks/{task_id}/complete", content_type="multipart/form-data",
                    data={**ALL_OK, "store_photos": (io.BytesIO(PNG), "front.png")})
    assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    page = mark.get(f"/instances/{case}").get_data(as_text=True)
    assert ">front.png</a>" in page

    direct = mark.post(f"/instances/{case}/attachments", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(b"Region;Score\nNorth;9\n"), "scores.csv")})
    assert direct.status_code == 302
    refused = mark.post(f"/instances/{case}/attachments", content_type="multipart/form-data",
                        data={"file": (io.BytesIO(b"<html><script>x</script></html>"), "scores.csv")})
    assert refused.status_code == 422 and "not that of a .csv file" in refused.get_data(as_text=True)
    assert mark.post(f"/instances/{case}/attachments", data={}).status_code == 422
    outsider = login_as("fiona").post(f"/instances/{case}/attachments", content_type="multipart/form-data",
                                      data={"file": (io.BytesIO(PDF), "x.pdf")})
    assert outsider.status_code == 403
    assert len(_blobs(files_dir)) == 2
    page = mark.get(f"/instances/{case}").get_data(as_text=True)
    csv_link = re.search(r'href="/attachments/(\d+)" download>scores.csv<', page)
    download = amy.get(f"/attachments/{csv_link.group(1)}")
    assert download.status_code == 200 and download.headers["Content-Disposition"].startswith("attachment;")
    assert download.mimetype == "text/csv"


def test_comments_over_http(app, login_as):
    cathy = login_as("cathy")
    case = int(_start_complaint(cathy).location.rsplit("/", 1)[1])
    assert cathy.post(f"/instances/{case}/comments", data={"body": "Photos follow, @paula."}).status_code == 302
    empty = cathy.post(f"/instances/{case}/comments", data={"body": "  "})
    assert empty.status_code == 422 and comments.EMPTY in empty.get_data(as_text=True)
    long = cathy.post(f"/instances/{case}/comments", data={"body": "y" * 4001})
    assert long.status_code == 422 and comments.TOO_LONG in long.get_data(as_text=True)
    page = cathy.get(f"/instances/{case}").get_data(as_text=True)
    task = re.search(r'href="/tasks/(\d+)">Classify', page) or re.search(r'href="/tasks/(\d+)"', page)
    task_id = int(task.group(1))
    assert cathy.post(f"/tasks/{task_id}/comments", data={"body": "Classifying now"}).status_code == 302
    task_page = cathy.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Photos follow, @paula." in task_page and "Classifying now" in task_page
    assert login_as("fiona").post(f"/instances/{case}/comments", data={"body": "hi"}).status_code == 403
    assert login_as("fiona").post(f"/tasks/{task_id}/comments", data={"body": "hi"}).status_code == 403
    assert cathy.post("/instances/999999/comments", data={"body": "hi"}).status_code == 404
    history = cathy.get(f"/history/{case}").get_data(as_text=True)
    assert "Classifying now" in history and 'data-kind="commented"' in history


def test_audit_verify_checks_the_files_too(sqlite_url, workflow_engine, monkeypatch, files_dir):
    from click.testing import CliRunner

    from engine.db import make_engine
    from engine.users import user_by_name
    from web.cli import main

    engine = make_engine(sqlite_url)
    with workflow_engine.session_factory(engine)() as session:
        cathy = user_by_name(session, "cathy")
        case = actions.start_process(session, cathy, "customer_complaint", COMPLAINT)
        attachments.attach_to_case(session, cathy, case.id, Upload("letter.pdf", PDF))
        session.commit()
    engine.dispose()
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", sqlite_url)
    intact = CliRunner().invoke(main, ["audit", "verify"])
    assert intact.exit_code == 0 and "attachments intact, 1 files" in intact.output, intact.output
    _blobs(files_dir)[0].write_bytes(b"%PDF-1.7 something else")
    broken = CliRunner().invoke(main, ["audit", "verify"])
    assert broken.exit_code == 1 and "changed on disk" in broken.output
