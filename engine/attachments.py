"""Files of a case: from a form's ``file`` field or added to the case directly.

The content is stored once per content, under its SHA-256, in ``$DEPTFLOW_ATTACHMENTS_DIR``
(default: ``attachments/`` in :func:`engine.db.data_dir`); the ``attachments`` row and the
``attached`` audit event hold the hash, size, type and original name, so a file changed on disk
is found by :func:`verify` (and refused when downloaded) like an altered event is by the chain.

What is accepted is deliberately narrow: a file's extension must be in the list of known types
(narrowed by ``$DEPTFLOW_ATTACHMENT_TYPES``) and its first bytes must look like that type (a PDF
starts with ``%PDF-``, a text file is UTF-8 without markup). The type served is the one of the
extension, never what the browser claimed, and always as a download.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .access import may_view_case
from .db import Attachment, Event, HumanTask, ProcessInstance, User
from .errors import Conflict, InvalidForm, NotAllowed, NotFound
from .files import CheckedUpload, Settings, Upload, check, clean_name
from .vocabulary import EventKind


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_blob(settings: Settings, sha256: str, data: bytes) -> None:
    """Store ``data`` under its hash, once: the same content uploaded again is not written again
    (a file there that no longer matches its name is replaced). Written beside and renamed: a reader
    never sees half a file."""
    path = settings.path(sha256)
    if path.is_file() and _file_hash(path) == sha256:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def store(session: Session, actor: User, upload: Upload, content_type: str, *, instance_id: int | None,
          task_id: int | None = None, field_id: str | None = None, settings: Settings | None = None) -> Attachment:
    """Write the file (once per content) and its row; the caller checked it (:func:`check`) and records it.

    The file is on disk before the transaction commits: a rolled-back upload leaves an unreferenced
    file, never a row without its file.
    """
    settings = settings or Settings.from_environment()
    sha256 = hashlib.sha256(upload.data).hexdigest()
    _write_blob(settings, sha256, upload.data)
    attachment = Attachment(instance_id=instance_id, task_id=task_id, field_id=field_id,
                            filename=clean_name(upload.filename), content_type=content_type, size=len(upload.data),
                            sha256=sha256, uploaded_by_id=actor.id)
    session.add(attachment)
    session.flush()
    return attachment


def reference(attachment: Attachment) -> dict[str, Any]:
    """What a file field holds in the case data: small, and enough to find and check the file."""
    return {"attachment_id": attachment.id, "name": attachment.filename, "sha256": attachment.sha256}


def record(session: Session, actor: User, attachment: Attachment, instance: Any, task: Any = None) -> None:
    """The ``attached`` event: the file's name, type, size and hash go onto the case's chain."""
    audit.record(session, EventKind.ATTACHED, instance=instance, actor=actor, task=task,
                 attachment_id=attachment.id, filename=attachment.filename, content_type=attachment.content_type,
                 size=attachment.size, sha256=attachment.sha256, field=attachment.field_id)


def store_form_files(session: Session, actor: User, values: dict[str, Any], *, instance_id: int | None,
                     task_id: int | None = None) -> list[Attachment]:
    """Store the files of validated form ``values`` and put their references in their place."""
    stored = []
    for key, value in values.items():
        if isinstance(value, CheckedUpload):
            attachment = store(session, actor, value.upload, value.content_type, instance_id=instance_id,
                               task_id=task_id, field_id=key)
            values[key] = reference(attachment)
            stored.append(attachment)
    return stored


def adopt(session: Session, attachments: list[Attachment], instance_id: int) -> None:
    """Give the files of a start form the case that was just started."""
    for attachment in attachments:
        attachment.instance_id = instance_id
    session.flush()


# --- adding a file to a case directly, downloading -------------------------------------------


def attach_to_case(session: Session, actor: User, instance_id: int, upload: Upload | None) -> Attachment:
    """Add a file to a case that ``actor`` may see.

    :raises InvalidForm: no file, too large or of a refused type (``file``: the message); nothing is stored
    """
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"There is no case {instance_id}.")
    if not _may_see(session, actor, instance_id):
        raise NotAllowed("You took no part in this case.")
    if upload is None or not upload.filename:
        raise InvalidForm({"file": "Choose a file to attach."}, {})
    try:
        content_type = check(upload)
    except ValueError as exc:
        raise InvalidForm({"file": str(exc)}, {}) from None
    attachment = store(session, actor, upload, content_type, instance_id=instance.id)
    record(session, actor, attachment, instance)
    return attachment


def of_case(session: Session, instance_id: int) -> list[Attachment]:
    """The case's files, oldest first (callers have checked that the reader may see the case)."""
    return list(session.scalars(select(Attachment).where(Attachment.instance_id == instance_id)
                                .order_by(Attachment.id)))


def download(session: Session, actor: User, attachment_id: int,
             settings: Settings | None = None) -> tuple[Attachment, bytes]:
    """The row and content of a file, for someone who may see its case; checked against its hash.

    :raises NotFound: no such file, or its case is one ``actor`` may not see (the two are not told apart)
    :raises Conflict: the stored file is missing or no longer matches its hash
    """
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.instance_id is None or not _may_see(session, actor, attachment.instance_id):
        raise NotFound(f"There is no attachment {attachment_id}.")
    path = (settings or Settings.from_environment()).path(attachment.sha256)
    try:
        data = path.read_bytes()
    except OSError:
        raise Conflict(f"The stored file of “{attachment.filename}” is missing; tell your administrator.") from None
    if hashlib.sha256(data).hexdigest() != attachment.sha256:
        raise Conflict(f"The stored file of “{attachment.filename}” no longer matches its recorded SHA-256 "
                       "(it was changed on disk); it is not served. Tell your administrator.")
    return attachment, data


def _may_see(session: Session, actor: User, instance_id: int) -> bool:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        return False
    tasks = list(session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)))
    return may_view_case(actor, instance, tasks, audit.events_of(session, instance_id))


# --- checking the stored files -----------------------------------------------------------------


@dataclass
class FileCheck:
    ok: bool
    count: int
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.ok:
            return f"attachments intact, {self.count} files match their hashes"
        return f"{len(self.problems)} of {self.count} attachments do not match: " + "; ".join(self.problems)


def verify(session: Session, settings: Settings | None = None) -> FileCheck:
    """Every attachment's file against the hash in its row, and its row against its ``attached`` event
    (which the audit chain protects): a file changed or removed on disk, or a row changed, is named."""
    settings = settings or Settings.from_environment()
    recorded = {event.data.get("attachment_id"): event.data for event in session.scalars(
        select(Event).where(Event.kind == EventKind.ATTACHED))}
    problems, count = [], 0
    for attachment in session.scalars(select(Attachment).where(Attachment.instance_id.is_not(None))
                                      .order_by(Attachment.id)):
        count += 1
        name = f"attachment {attachment.id} ({attachment.filename}) of case {attachment.instance_id}"
        event = recorded.get(attachment.id)
        if event is None or (event.get("sha256"), event.get("size")) != (attachment.sha256, attachment.size):
            problems.append(f"{name}: its row does not match its audit event")
            continue
        path = settings.path(attachment.sha256)
        if not path.is_file():
            problems.append(f"{name}: the file is missing")
        elif _file_hash(path) != attachment.sha256:
            problems.append(f"{name}: the file does not match its SHA-256 (changed on disk)")
    return FileCheck(not problems, count, problems)
