"""What mappings of groups to roles (:mod:`engine.groups`) and of Java delegates to external task topics
(:mod:`engine.delegates`) have in common: where the published diagrams and drafts name what is mapped, the
overview of mapped and unmapped names, and saving and removing a mapping (audited). A :class:`Kind` says what
differs; the two modules check their own input and say what a mapping means.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from . import definitions as defs
from .clock import utcnow
from .db import DelegateMapping, GroupMapping, Process, ProcessDraft, User
from .errors import InvalidDefinition, NotFound
from .permissions import require
from .vocabulary import EventKind, Permission

Mapping = GroupMapping | DelegateMapping


@dataclass(frozen=True)
class Kind:
    """One kind of mapping."""

    model: type[GroupMapping] | type[DelegateMapping]
    #: the model's columns: what diagrams name, and what it is mapped to
    name_column: str
    target_column: str
    #: the audit events and their fields for the two
    mapped_event: EventKind
    unmapped_event: EventKind
    name_field: str
    target_field: str
    #: what is mapped, in messages ("group")
    noun: str
    #: why a user who may not administer cannot map
    admin_only: str
    #: (element, name) for each name the elements of an executable process name: (document root, process)
    named: Callable[[etree._Element, etree._Element], Iterable[tuple[etree._Element, str]]]
    #: names compare as :func:`engine.definitions.group_key` does (case, spaces and ``_`` do not count) and sort
    #: ignoring case; else exactly
    loose: bool = False

    def key(self, name: str) -> str:
        return defs.group_key(name) if self.loose else name


@dataclass(frozen=True)
class Use:
    """One element of a diagram that names something a kind of mapping maps."""

    name: str
    process_key: str
    #: "version 3" or "draft #12"
    source: str
    element_id: str
    element_name: str


@dataclass
class Mapped:
    mapping: Mapping
    uses: list[Use] = field(default_factory=list)
    #: the target's own name, where it has one (a role's)
    target_name: str | None = None


@dataclass
class Overview:
    #: name → the elements that name it, for names that are not mapped (and not left out)
    unmapped: dict[str, list[Use]]
    mapped: list[Mapped]


def require_admin(actor: User | None, kind: Kind) -> None:
    """``actor`` None is the operator at the console."""
    if actor is not None:
        require(actor, Permission.ADMINISTER, kind.admin_only)


def checked_text(value: str, name: str, limit: int, errors: dict[str, str], empty: str,
                 control: str = "No control characters, please.") -> str:
    """``value`` stripped; what is wrong with it in ``errors[name]`` (empty, longer than ``limit``, control
    characters)."""
    value = (value or "").strip()
    if not value:
        errors[name] = empty
    elif len(value) > limit:
        errors[name] = f"Use at most {limit} characters."
    elif any(unicodedata.category(c).startswith("C") for c in value):
        errors[name] = control
    return value


# --- what diagrams name ----------------------------------------------------------------------------


def uses(kind: Kind, xml: str, process_key: str, source: str) -> list[Use]:
    """What the executable processes of a diagram name of ``kind``. A file that cannot be read names nothing."""
    try:
        root = defs.parse_xml(xml)
    except InvalidDefinition:
        return []
    found = []
    for process in root.iterfind("bpmn:process", defs.NS):
        if defs.is_executable(process):
            for node, name in kind.named(root, process):
                element_id = node.get("id") or ""
                found.append(Use(name, process_key, source, element_id, node.get("name") or element_id))
    return found


def diagrams(session: Session) -> list[tuple[str, str, str]]:
    """(xml, process key, source) of the latest published version of every process and of the newest
    draft of every process key (a new process may exist only as drafts)."""
    found = []
    for process in session.scalars(select(Process).order_by(Process.key)):
        definition = defs.latest_definition(session, process.key, required=False)
        if definition is not None:
            found.append((definition.xml, process.key, f"version {definition.version}"))
    newest = (select(func.max(ProcessDraft.id).label("id")).group_by(ProcessDraft.process_key).subquery())
    for draft in session.scalars(select(ProcessDraft).join(newest, ProcessDraft.id == newest.c.id)
                                 .order_by(ProcessDraft.process_key)):
        found.append((draft.xml, draft.process_key, f"draft #{draft.id}"))
    return found


def overview(session: Session, kind: Kind, ignored: Callable[[str], bool] = lambda name: False) -> Overview:
    """The unmapped names of the published diagrams and drafts (but the ``ignored`` ones) with the elements that
    name them, and the mappings with where they are used."""
    column = getattr(kind.model, kind.name_column)
    mapped = [Mapped(m) for m in session.scalars(select(kind.model).order_by(func.lower(column) if kind.loose
                                                                              else column))]
    by_key = {kind.key(getattr(m.mapping, kind.name_column)): m for m in mapped}
    unmapped: dict[str, list[Use]] = {}
    for xml, process_key, source in diagrams(session):
        for use in uses(kind, xml, process_key, source):
            if ignored(use.name):
                continue
            found = by_key.get(kind.key(use.name))
            if found is not None:
                found.uses.append(use)
            else:
                unmapped.setdefault(use.name, []).append(use)
    order = (lambda item: item[0].lower()) if kind.loose else (lambda item: item[0])
    return Overview(dict(sorted(unmapped.items(), key=order)), mapped)


# --- changes ---------------------------------------------------------------------------------------


def find(session: Session, kind: Kind, name: str) -> Mapping | None:
    """The mapping of ``name`` as diagrams find it."""
    if not kind.loose:
        return session.get(kind.model, name)
    wanted = kind.key(name)
    return next((m for m in session.scalars(select(kind.model)) if kind.key(getattr(m, kind.name_column)) == wanted),
                None)


def save(session: Session, actor: User | None, kind: Kind, name: str, target: str) -> Mapping:
    """Map ``name`` to ``target``, or a mapped one to another target (checked by the caller); audited."""
    mapping = find(session, kind, name)
    before = getattr(mapping, kind.target_column) if mapping is not None else None
    if mapping is None:
        mapping = kind.model(**{kind.name_column: name, kind.target_column: target})
        session.add(mapping)
    elif before == target:
        return mapping
    setattr(mapping, kind.target_column, target)
    mapping.mapped_by_id = actor.id if actor is not None else None
    mapping.mapped_at = utcnow()
    session.flush()  # known_roles reads through the connection: the next parse sees it
    audit.record(session, kind.mapped_event, actor=actor, **{kind.name_field: getattr(mapping, kind.name_column),
                                                             kind.target_field: target}, before=before)
    return mapping


def existing(session: Session, kind: Kind, name: str) -> Mapping:
    """The mapping of ``name``.

    :raises NotFound: ``name`` is not mapped
    """
    mapping = find(session, kind, name)
    if mapping is None:
        raise NotFound(f"The {kind.noun} “{name}” is not mapped.")
    return mapping


def remove(session: Session, actor: User | None, kind: Kind, mapping: Mapping) -> Mapping:
    """Delete a mapping (audited)."""
    session.delete(mapping)
    session.flush()
    audit.record(session, kind.unmapped_event, actor=actor, **{kind.name_field: getattr(mapping, kind.name_column),
                                                               kind.target_field: getattr(mapping, kind.target_column)})
    return mapping
