"""What the API reads and writes, as marshmallow schemas: the OpenAPI document is generated from them."""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import Schema, fields, validate

from ..params import MAX_PAGE


class UtcDateTime(fields.DateTime):
    """The engine keeps naive UTC times; the API writes them with their offset (RFC 3339)."""

    def _serialize(self, value: datetime | None, attr, obj, **kwargs):
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


#: the most rows one page of a list holds
MAX_PER_PAGE = 200


class Problem(Schema):
    """An error (RFC 9457 ``application/problem+json``)."""

    type = fields.String(metadata={"description": "Always about:blank: the status says what kind of error"})
    title = fields.String(metadata={"description": "The status's phrase"})
    status = fields.Integer()
    detail = fields.String(metadata={"description": "What went wrong, for people"})
    errors = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "A message per invalid field (422)"})
    problems = fields.List(fields.Nested(lambda: BpmnProblem()), metadata={
        "description": "A BPMN file's problems, with their element ids (a diagram that is not BPMN, or that "
                       "cannot be published)"})
    needs_acknowledgement = fields.Boolean(metadata={
        "description": "The diagram has warnings only: publish it with acknowledge_warnings=true"})


# --- processes -------------------------------------------------------------------------


class Process(Schema):
    key = fields.String()
    title = fields.String()
    description = fields.String()


class StartRequest(Schema):
    values = fields.Dict(keys=fields.String(), load_default=dict,
                         metadata={"description": "The start form's fields by id (strings or JSON values)"})
    business_key = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100),
                                 metadata={"description": "The case's key in your system"})


class IdempotencyHeader(Schema):
    idempotency_key = fields.String(data_key="Idempotency-Key", validate=validate.Length(min=1, max=200),
                                    metadata={"description": "Retrying a request with the same key starts no "
                                                             "second case: the answer names the first one"})


# --- tasks -----------------------------------------------------------------------------


class TaskRef(Schema):
    id = fields.Integer()
    name = fields.String()
    element_id = fields.String()


class InboxRow(Schema):
    id = fields.Integer()
    instance_id = fields.Integer()
    element_id = fields.String()
    name = fields.String()
    candidate_roles = fields.List(fields.String())
    due_at = UtcDateTime(allow_none=True)
    priority = fields.Integer()
    assignee_id = fields.Integer(allow_none=True)
    case_title = fields.String()
    process_name = fields.String()


class InboxSection(Schema):
    items = fields.List(fields.Nested(InboxRow))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class Inbox(Schema):
    assigned = fields.Nested(InboxSection, metadata={"description": "Tasks assigned to me"})
    available = fields.Nested(InboxSection, metadata={"description": "Unclaimed tasks of my roles"})


class InboxArgs(Schema):
    assigned_page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    available_page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class FormField(Schema):
    id = fields.String()
    label = fields.String()
    type = fields.String()
    required = fields.Boolean()
    readonly = fields.Boolean()
    options = fields.List(fields.List(fields.String()), metadata={"description": "[id, label] of enum options"})
    help = fields.String()


class TaskDetail(Schema):
    id = fields.Integer()
    name = fields.String()
    element_id = fields.String()
    status = fields.String()
    instance_id = fields.Integer()
    case_title = fields.String()
    assignee = fields.String(allow_none=True)
    candidate_roles = fields.List(fields.String())
    due_at = UtcDateTime(allow_none=True)
    form = fields.List(fields.Nested(FormField))
    values = fields.Dict(keys=fields.String(), metadata={"description": "The form's current values"})
    can_claim = fields.Boolean()
    can_unclaim = fields.Boolean()
    can_complete = fields.Boolean()
    delegates = fields.List(fields.String(), metadata={"description": "Usernames the task may be delegated to"})


class TaskState(Schema):
    id = fields.Integer()
    name = fields.String()
    status = fields.String()
    assignee = fields.String(allow_none=True)


class DelegateRequest(Schema):
    to = fields.String(required=True, validate=validate.Length(min=1, max=80),
                       metadata={"description": "Username of a colleague holding the task's role"})


class CompleteRequest(Schema):
    values = fields.Dict(keys=fields.String(), load_default=dict,
                         metadata={"description": "The task form's fields by id"})


class Completed(Schema):
    id = fields.Integer()
    name = fields.String()
    status = fields.String()
    instance_id = fields.Integer()
    instance_title = fields.String()
    created = fields.List(fields.Nested(TaskRef), metadata={"description": "Tasks the step made ready"})


# --- cases -----------------------------------------------------------------------------


class Case(Schema):
    id = fields.Integer()
    process_key = fields.String()
    title = fields.String()
    business_key = fields.String(allow_none=True)
    status = fields.String()
    started_by = fields.String()
    started_at = UtcDateTime()
    ended_at = UtcDateTime(allow_none=True)


class CaseTask(Schema):
    id = fields.Integer()
    name = fields.String()
    element_id = fields.String()
    status = fields.String()
    assignee = fields.String(allow_none=True)
    candidate_roles = fields.List(fields.String())
    created_at = UtcDateTime()
    completed_at = UtcDateTime(allow_none=True)


class CaseDetail(Case):
    version = fields.Integer()
    data = fields.Dict(keys=fields.String())
    tasks = fields.List(fields.Nested(CaseTask))
    actions = fields.List(fields.String(), metadata={"description": "What I may do to the case now"})
    incident = fields.String(allow_none=True, metadata={"description": "Why the case stopped, while it is an incident"})


class Started(Schema):
    """A started case: what the start knows, without reading the case back (its Location has the rest)."""

    id = fields.Integer()
    process_key = fields.String()
    title = fields.String()
    business_key = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "running; completed or incident when the start ran to an end"})
    tasks = fields.List(fields.Nested(TaskRef), metadata={
        "description": "The tasks the start made ready (a replayed answer: the case's tasks open now)"})
    replayed = fields.Boolean(metadata={"description": "True when an earlier request with the same Idempotency-Key "
                                                      "started the case"})


class Event(Schema):
    chain = fields.Integer()
    seq = fields.Integer(allow_none=True)
    at = fields.String()
    kind = fields.String()
    instance_id = fields.Integer(allow_none=True)
    actor_id = fields.Integer(allow_none=True)
    actor = fields.String(allow_none=True, metadata={"description": "The actor's username"})
    task_id = fields.Integer(allow_none=True)
    element_id = fields.String(allow_none=True)
    data = fields.Dict(keys=fields.String())
    prev_hash = fields.String(allow_none=True)
    hash = fields.String(allow_none=True)


class CaseEvents(Schema):
    id = fields.Integer()
    events = fields.List(fields.Nested(Event))


class ReasonRequest(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=2000),
                           metadata={"description": "Why; it goes into the case's history"})


# --- audit -----------------------------------------------------------------------------


class AuditArgs(Schema):
    process_key = fields.String(validate=validate.Length(max=100))
    version = fields.String(validate=validate.Length(max=10))
    status = fields.String(validate=validate.Length(max=20))
    started_from = fields.String(metadata={"description": "YYYY-MM-DD"}, validate=validate.Length(max=10))
    started_to = fields.String(metadata={"description": "YYYY-MM-DD"}, validate=validate.Length(max=10))
    starter = fields.String(validate=validate.Length(max=80))
    participant = fields.String(validate=validate.Length(max=80))
    business_key = fields.String(validate=validate.Length(max=100))
    field = fields.String(validate=validate.Length(max=100), metadata={"description": "A data field's name"})
    value = fields.String(validate=validate.Length(max=200), metadata={"description": "The data field's value"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class ExportArgs(AuditArgs):
    class Meta:
        exclude = ("page", "per_page")

    instance_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1), metadata={"description": "One case"})
    events_from = fields.Date(metadata={"description": "Events on or after this day (YYYY-MM-DD, UTC)"})
    events_to = fields.Date(metadata={"description": "Events on or before this day (YYYY-MM-DD, UTC)"})
    format = fields.String(load_default="jsonl", validate=validate.OneOf(["jsonl", "csv"]),
                           metadata={"description": "jsonl: one event a line (JSON Lines); csv: one row an event"})


class CasePage(Schema):
    items = fields.List(fields.Nested(Case))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


# --- tokens and health -----------------------------------------------------------------


class Token(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String(metadata={"description": "The token's first characters"})
    roles = fields.List(fields.String(), metadata={"description": "The scope: the roles the token acts with"})
    created_at = UtcDateTime()
    expires_at = UtcDateTime()
    last_used_at = UtcDateTime(allow_none=True)
    revoked_at = UtcDateTime(allow_none=True)


class NewToken(Token):
    token = fields.String(metadata={"description": "The token: shown this once, keep it secret"})


class TokenRequest(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    roles = fields.List(fields.String(validate=validate.Length(max=64)), load_default=None,
                        validate=validate.Length(max=50),
                        metadata={"description": "A subset of your roles; all of them when left out"})
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=366))


class Health(Schema):
    status = fields.String()


# --- external task workers ---------------------------------------------------------------

#: a worker id or topic: printable text (it is stored, and shown in the case's history)
_NAME = validate.And(validate.Length(min=1, max=200), validate.Regexp(r"^[^\x00-\x1f\x7f]+$"))
_WORKER_ID = fields.String(required=True, validate=_NAME,
                           metadata={"description": "The worker's own name: a lock belongs to it"})


class FetchAndLockRequest(Schema):
    worker_id = _WORKER_ID
    topics = fields.List(fields.String(validate=_NAME), required=True, validate=validate.Length(min=1, max=50),
                         metadata={"description": "The topics (camunda:topic) the worker takes"})
    max_tasks = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100))
    lock_duration = fields.Integer(load_default=300, validate=validate.Range(min=1, max=86400),
                                   metadata={"description": "Seconds the tasks stay the worker's (extend-lock "
                                                            "keeps one longer)"})


class LockedTask(Schema):
    id = fields.Integer()
    instance_id = fields.Integer()
    topic = fields.String()
    element_id = fields.String()
    name = fields.String()
    business_key = fields.String(allow_none=True)
    variables = fields.Dict(keys=fields.String(), metadata={"description": "The case's variables"})
    lock_expires_at = UtcDateTime()
    retries = fields.Integer(allow_none=True, metadata={"description": "What the last failure left (null: "
                                                                       "it never failed)"})


class ExternalCompleteRequest(Schema):
    worker_id = _WORKER_ID
    variables = fields.Dict(keys=fields.String(validate=validate.Length(max=100)), load_default=dict,
                            metadata={"description": "Merged into the case's data (names: letters, digits, _)"})


class FailureRequest(Schema):
    worker_id = _WORKER_ID
    message = fields.String(load_default="", validate=validate.Length(max=2000),
                            metadata={"description": "What went wrong; at zero retries the incident says it"})
    retries = fields.Integer(required=True, validate=validate.Range(min=0, max=1000),
                             metadata={"description": "Retries left (count down from the fetched retries); "
                                                      "0 stops the case as an incident"})
    retry_after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=86400 * 30),
                                 metadata={"description": "Seconds before a worker may fetch the task again"})


class ExtendLockRequest(Schema):
    worker_id = _WORKER_ID
    lock_duration = fields.Integer(required=True, validate=validate.Range(min=1, max=86400),
                                   metadata={"description": "Seconds from now"})


class ExternalTaskState(Schema):
    id = fields.Integer()
    instance_id = fields.Integer()
    name = fields.String()
    status = fields.String()
    worker_id = fields.String(allow_none=True)
    lock_expires_at = UtcDateTime(allow_none=True)
    retries = fields.Integer(allow_none=True)
    incident = fields.Boolean(metadata={"description": "The case stopped as an incident (no retries left)"})


# --- process owners ----------------------------------------------------------------------


class BpmnProblem(Schema):
    message = fields.String()
    element_id = fields.String(allow_none=True, metadata={"description": "The BPMN element concerned"})
    severity = fields.String(metadata={"description": "error (blocks publishing), warning (needs an "
                                                      "acknowledgement) or note"})
    kind = fields.String(metadata={"description": "mapping: fixed by mapping a group to a role or a Java "
                                                  "delegate to an external task topic, not by redesigning"})
    group = fields.String(metadata={"description": "The group id an administrator maps to a role, when that "
                                                   "is the fix"})
    delegate = fields.String(metadata={"description": "The Java class name or delegate expression an "
                                                      "administrator maps to an external task topic, when that "
                                                      "is the fix"})


class ProcessRef(Schema):
    key = fields.String()
    name = fields.String()


class FileCheck(Schema):
    """What ``deptflow check`` says of the file."""

    verdict = fields.String(metadata={"description": "deploys or cannot deploy"})
    processes = fields.List(fields.Nested(ProcessRef), metadata={
        "description": "The executable processes the file would publish"})
    needs_mapping = fields.List(fields.Nested(BpmnProblem), metadata={
        "description": "Errors fixed by mapping (groups to roles, Java delegates to external task topics)"})
    blocks = fields.List(fields.Nested(BpmnProblem), metadata={"description": "Errors that block publishing"})
    warnings = fields.List(fields.Nested(BpmnProblem), metadata={
        "description": "Publishing needs acknowledge_warnings=true"})
    notes = fields.List(fields.Nested(BpmnProblem))


class PublishArgs(Schema):
    acknowledge_warnings = fields.Boolean(load_default=False, metadata={
        "description": "Publish although the diagram has warnings (errors always refuse it)"})
    note = fields.String(load_default="", validate=validate.Length(max=2000),
                         metadata={"description": "What changed, for the version list"})
    process_key = fields.String(validate=validate.Length(max=100), metadata={
        "description": "The diagram must be this process (a changed process id is refused)"})


class PublishedVersion(Schema):
    process_key = fields.String()
    version = fields.Integer()


class Published(Schema):
    process_key = fields.String(metadata={"description": "The file's first executable process"})
    version = fields.Integer()
    sha256 = fields.String()
    created = fields.Boolean(metadata={"description": "False: the same content was the latest version already"})
    processes = fields.List(fields.Nested(PublishedVersion), metadata={
        "description": "Every process of the file, each at its own version"})
    warnings = fields.List(fields.Nested(BpmnProblem), metadata={"description": "The warnings acknowledged"})


class Version(Schema):
    version = fields.Integer()
    name = fields.String()
    sha256 = fields.String()
    published_at = UtcDateTime()
    published_by = fields.String(allow_none=True)
    note = fields.String()
    open_cases = fields.Integer(metadata={"description": "Cases running (or stopped) on this version"})


# --- messages --------------------------------------------------------------------------


class MessageRequest(Schema):
    name = fields.String(required=True, validate=validate.And(validate.Length(min=1, max=300),
                                                              validate.Regexp(r"^[^\x00-\x1f\x7f]+$")),
                         metadata={"description": "The message's name (the name of the bpmn:message in the diagram)"})
    business_key = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100),
                                 metadata={"description": "Only the case with this business key; a case the message "
                                                          "starts gets it"})
    correlation = fields.Dict(keys=fields.String(validate=validate.Length(max=100)), load_default=dict,
                              metadata={"description": "Only cases whose variables have these values"})
    variables = fields.Dict(keys=fields.String(validate=validate.Length(max=100)), load_default=dict,
                            metadata={"description": "Merged into the case's data (names: letters, digits, _)"})
    all = fields.Boolean(load_default=False,
                         metadata={"description": "Deliver to every matching case (else several are a 409)"})


class Correlated(Schema):
    instance_id = fields.Integer()
    title = fields.String()
    element_id = fields.String(metadata={"description": "The catch or message start event that took the message"})
    started = fields.Boolean(metadata={"description": "The message started the case (a message start event)"})
