"""Differential harness: one case driven through deptflow and through raw SpiffWorkflow, compared step by step.

deptflow stores a workflow its own way — the state without the spec, the finished part of the task
tree compacted into ``task_archive``, the inbox as a projection, completions on a Core path — and
must still behave as SpiffWorkflow does. :class:`Walk` drives the same case twice: through
``actions.start_process`` / ``actions.complete_task`` / ``worker.fire`` on a real database (the
state reloaded from it at every step), and through a plain ``BpmnWorkflow`` kept in memory, parsed
by SpiffWorkflow's own ``CamundaParser``. Both sides run deptflow's script engine, so conditions
and scripts evaluate alike, and both read the same controlled clock.

A :class:`Chooser` decides each step: which ready user task (or the due timers, or a message for a
catch the case waits at), which form values, how far the clock moves. After every step the ready
user tasks (and their data), the case data, the next timer, the completed path and the outcome
must agree; any difference raises :class:`Divergence` naming the step and showing both sides.

Messages: deptflow correlates them between cases (:mod:`engine.messages`); the raw side models that
with plain ``BpmnWorkflow`` objects — the other pools of the file started by message start events,
what a workflow throws delivered to the one that waits for it — so that a collaboration's messages
and the message catches' subscription rows are compared too.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import string
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from hypothesis import strategies as st
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from support import corpus_dir

from engine import (
    actions,
    definitions,
    forms,
    messages,
    persistence,
    rows,
    running,
    subscriptions,
    timers,
    users,
    worker,
)
from engine.access import check_may_work_on
from engine.core import WorkflowEngine
from engine.db import HumanTask, MessageSubscription, Process, ProcessInstance, User
from engine.errors import InvalidDefinition, NotAllowed, ScriptError
from engine.inbox import COMPLETED_BY_KEY, ROLE_MEMBERS, ready_user_tasks
from engine.vocabulary import InstanceStatus, TaskStatus
from workflows.catalogue import BPMN_DIR, DEMO_USERS, PROCESSES, ROLES

DATA = Path(__file__).parent / "data"
#: a ``camunda:assignee`` that names a person (not an expression)
ASSIGNEE = re.compile(r'camunda:assignee="([^"$#{}]+)"')
#: The starters of diagrams from tests/data (the catalogue names those of bpmn/).
TEST_STARTER_ROLES = ["sales_rep"]
TIMER = "timer"
#: the payload of a message a walk sends from outside
MESSAGE_PAYLOAD = {"message_note": "sent by the walk"}


class Divergence(AssertionError):
    """deptflow and SpiffWorkflow disagree."""


# --- the diagrams ------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagram:
    """A BPMN file the harness runs; ``refused`` holds why the engine will not deploy it."""

    file: str
    xml: str
    process_key: str
    shipped: bool
    refused: str | None = None
    start_timer: bool = False
    #: processes of other files its call activities run: (process id, binding, version tag wanted)
    calls: tuple[tuple[str, str, str], ...] = ()
    #: the diagrams that publish them (transitively, callees first): deployed before it, parsed with it raw
    needs: tuple[Diagram, ...] = ()
    #: the BPMN id of its executable process and its ``camunda:versionTag``
    version_tag: str | None = None

    @property
    def name(self) -> str:
        return self.file.removesuffix(".bpmn")

    @property
    def from_corpus(self) -> bool:
        """A model brought from outside: it may have tasks nobody can do (the walk ends where only those are
        left) and name its people (they are created as users without roles)."""
        return self.file.startswith("corpus/")


def _diagram(path: Path, shipped: bool, label: str | None = None) -> Diagram:
    xml = path.read_text(encoding="utf-8")
    try:
        parsed, problems = definitions.parse_definition(xml, {r.key: r.name for r in ROLES})
    except InvalidDefinition as exc:  # not XML, too large: a corpus file may be anything
        parsed, problems = None, list(exc.problems)
    errors = [p for p in problems if p.severity == "error"]
    label = label or f"{'bpmn' if shipped else 'tests/data'}/{path.name}"
    if parsed is None or errors:
        reason = "; ".join(str(p) for p in (errors or problems))
        return Diagram(label, xml, parsed.process_id if parsed else "?", shipped, refused=reason)
    calls = tuple((b.process_id, b.mode, b.value) for b in parsed.calls.values())
    return Diagram(label, xml, parsed.process_id, shipped, start_timer=parsed.start_timer is not None, calls=calls,
                   version_tag=definitions.version_tag(xml, parsed.process_id))


def corpus_files() -> list[Path]:
    """The BPMN files of the shared corpus (none when it is not there: see tests/test_differential.py)."""
    corpus = corpus_dir()
    if not corpus.is_dir():
        return []
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.name.endswith((".bpmn", ".bpmn20.xml")))


def all_diagrams() -> list[Diagram]:
    """Every shipped diagram, every diagram of tests/data (those made for this harness included), then every
    file of the shared corpus that deploys (the others are not collected: ``deptflow check`` says why)."""
    shipped = {p.file for p in PROCESSES}
    corpus = [_diagram(path, False, f"corpus/{path.relative_to(corpus_dir())}") for path in corpus_files()]
    diagrams = ([_diagram(BPMN_DIR / name, True) for name in sorted(shipped)]
                + [_diagram(path, False) for path in sorted(DATA.glob("*.bpmn"))]
                + [d for d in corpus if not d.refused])
    return [_with_needs(d, diagrams) for d in diagrams]


def _with_needs(diagram: Diagram, diagrams: list[Diagram]) -> Diagram:
    """``diagram`` with the diagrams that publish the processes it calls; refused when one is missing."""
    needs: list[Diagram] = []
    todo, seen = list(diagram.calls), {diagram.process_key}
    while todo:
        process_id, mode, value = todo.pop()
        if process_id in seen:
            continue
        seen.add(process_id)
        provider = next((d for d in diagrams if not d.refused and d.process_key == process_id
                         and (mode != "versionTag" or d.version_tag == value)), None)
        if provider is None:
            return replace(diagram, refused=f"calls {process_id}, which no diagram publishes")
        needs.insert(0, provider)
        todo.extend(provider.calls)
    return replace(diagram, needs=tuple(needs))


def deploy(sessions: sessionmaker, diagram: Diagram) -> None:
    """Deploy a diagram of tests/data or the corpus (the shipped ones are in the template; every process of a
    file with several), after the diagrams of the processes it calls, and let sales reps start it."""
    if diagram.shipped:
        return
    with sessions() as session:
        for needed in diagram.needs:
            if not needed.shipped:
                definitions.deploy_file(session, None, needed.xml)
        definitions.deploy_file(session, None, diagram.xml)
        if diagram.from_corpus:  # Camunda's examples assign tasks to its demo users by name
            for name in sorted(set(ASSIGNEE.findall(diagram.xml))):
                users.ensure_user(session, name, name, secrets.token_urlsafe(12), [])
        session.flush()
        session.get(Process, diagram.process_key).starter_roles = list(TEST_STARTER_ROLES)
        session.commit()


# --- choices ------------------------------------------------------------------------------


class Chooser(Protocol):
    def index(self, label: str, count: int) -> int: ...
    def minutes(self) -> int: ...
    def values(self, label: str, form: forms.Form) -> dict[str, Any]: ...


LETTERS = string.ascii_letters + string.digits
DATE_RANGE = (date(2026, 11, 1), date(2027, 2, 28))
CLOCK_MOVES = [0, 0, 1, 20, 45, 90, 60 * 5, 60 * 30]


def field_strategy(f: forms.FormField) -> st.SearchStrategy:
    """Valid values of one form field, as a browser would send them (typed, or ISO text for dates)."""
    if f.type == "file":  # no file chosen: the optional file fields of the shipped forms stay empty
        return st.none()
    if f.type == "boolean":
        return st.booleans()
    if f.type == "enum":
        return st.sampled_from([option for option, _ in f.options])
    if f.type in ("long", "double"):
        low, high = f.number_bound("min"), f.number_bound("max")
        low = low if low is not None else -1000
        high = high if high is not None else max(low, 0) + 500_000
        if f.type == "long":
            low, high = int(-(-low // 1)), int(high // 1)
            return st.one_of(st.integers(low, min(high, low + 20)), st.integers(low, high))
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if f.type == "date":
        low = f.constraints.get("min")
        high = f.constraints.get("max")
        low_d = max(DATE_RANGE[0], date.fromisoformat(low)) if low and _iso(low) else DATE_RANGE[0]
        high_d = min(DATE_RANGE[1], date.fromisoformat(high)) if high and _iso(high) else DATE_RANGE[1]
        return st.dates(low_d, max(low_d, high_d)).map(date.isoformat)
    shortest, longest = f.int_bound("minlength") or 1, min(f.int_bound("maxlength") or 30, 30)
    pattern = f.constraints.get("pattern")
    if pattern:
        program = forms.compile_pattern(pattern)
        return st.from_regex(pattern, fullmatch=True).filter(
            lambda s: program.fullmatch(s) is not None and s.strip() == s and s != "")
    return st.text(LETTERS, min_size=max(1, shortest), max_size=max(shortest, longest))


def _iso(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def form_strategy(form: forms.Form) -> st.SearchStrategy:
    """Valid values for a whole form; fields that are not required may be left out (their default then)."""
    parts = {}
    for f in form.editable_fields:
        value = field_strategy(f)
        parts[f.id] = value if f.required else st.one_of(st.just(None), value)
    return st.fixed_dictionaries(parts).map(lambda d: {k: v for k, v in d.items() if v is not None})


class HypothesisChooser:
    """Choices drawn by Hypothesis; for its first ``sticky`` steps a walk repeats each task's first values,
    so that a rework choice keeps the case going round its loop (long walks, many compactions)."""

    def __init__(self, data: Any, sticky: int):
        self.data, self.sticky, self.steps = data, sticky, 0
        self._kept: dict[str, dict[str, Any]] = {}

    def index(self, label: str, count: int) -> int:
        self.steps += 1
        return self.data.draw(st.integers(0, count - 1), label=label) if count > 1 else 0

    def minutes(self) -> int:
        return self.data.draw(st.sampled_from(CLOCK_MOVES), label="minutes")

    def values(self, label: str, form: forms.Form) -> dict[str, Any]:
        if self.steps <= self.sticky and label in self._kept:
            return dict(self._kept[label])
        values = self.data.draw(form_strategy(form), label=label)
        self._kept.setdefault(label, values)
        return values


class RandomChooser:
    """Seeded choices without Hypothesis (for walks that must be the same on every run), sticky alike."""

    def __init__(self, seed: int, sticky: int = 0):
        self.rng, self.sticky, self.steps = random.Random(seed), sticky, 0
        self._kept: dict[str, dict[str, Any]] = {}

    def index(self, label: str, count: int) -> int:
        self.steps += 1
        return self.rng.randrange(count)

    def minutes(self) -> int:
        return self.rng.choice(CLOCK_MOVES)

    def values(self, label: str, form: forms.Form) -> dict[str, Any]:
        if self.steps <= self.sticky and label in self._kept:
            return dict(self._kept[label])
        values = _random_form(self.rng, form)
        self._kept.setdefault(label, values)
        return values


def _random_form(rng: random.Random, form: forms.Form) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in form.editable_fields:
        if f.type == "file" or (not f.required and rng.random() < 0.2):  # no file chosen (they are optional)
            continue
        if f.type == "boolean":
            values[f.id] = rng.random() < 0.5
        elif f.type == "enum":
            values[f.id] = rng.choice(f.options)[0]
        elif f.type in ("long", "double"):
            low, high = f.number_bound("min"), f.number_bound("max")
            low = low if low is not None else 0
            high = high if high is not None else low + 500_000
            values[f.id] = rng.randint(int(low), int(high)) if f.type == "long" else rng.uniform(low, high)
        elif f.type == "date":
            values[f.id] = (DATE_RANGE[0] + timedelta(days=rng.randrange(60))).isoformat()
        elif f.constraints.get("pattern"):
            values[f.id] = "2026-11"  # the one pattern of the shipped forms (a month)
        else:
            shortest, longest = f.int_bound("minlength") or 1, min(f.int_bound("maxlength") or 12, 12)
            values[f.id] = "".join(rng.choice(LETTERS) for _ in range(rng.randint(shortest, max(shortest, longest))))
    return values


# --- the raw side: SpiffWorkflow alone, in memory ----------------------------------------


class _RawStop(Exception):
    pass


class RawCase:
    """The case in a plain ``BpmnWorkflow``: parsed by SpiffWorkflow's ``CamundaParser`` with deptflow's
    overrides (:class:`engine.definitions.DeptflowParser`: the call activity that honours
    ``camunda:in``/``camunda:out``), together with the files of the processes it calls, never serialized.

    Started as deptflow starts a case (the start form's values in every first task's data, the
    initiator variable, a timer start event told it fired once); it stops where deptflow reports an
    incident: a failing script or condition, more automatic steps than deptflow allows, call
    activities nested past deptflow's limit.
    """

    def __init__(self, xml: str, process_id: str, called: tuple[str, ...] = ()):
        # fed what deptflow feeds it: the diagram without its documentation-only elements
        parser = definitions.DeptflowParser()
        root = definitions.parse_xml(xml)
        parser.add_bpmn_xml(definitions.runnable_copy(root), filename=f"{process_id}.bpmn")
        for number, other in enumerate(called):
            parser.add_bpmn_xml(definitions.runnable_copy(definitions.parse_xml(other)),
                                filename=f"called{number}.bpmn")
        self.spec, self.subprocess_specs, _starts = _raw_spec(parser, process_id)
        #: the file's processes a message may start (this one included): (process id, specs, message names)
        self.pools = [(pid, *_raw_spec(parser, pid)) for pid in (p.get("id") for p in root.iterfind("bpmn:process",
                      definitions.NS) if definitions.is_executable(p))]
        self.workflow: BpmnWorkflow | None = None
        self.incident: str | None = None
        #: the cases of the other pools that messages started (deptflow's other cases)
        self.others: list[BpmnWorkflow] = []

    def start(self, data: dict[str, Any], start_timer: tuple[str, str, str] | None) -> None:
        self.workflow = BpmnWorkflow(self.spec, self.subprocess_specs, script_engine=WorkflowEngine.script_engine())
        for task in self.workflow.get_tasks():
            task.data.update(data)
        if start_timer is not None:
            actions._fire_start_timer(self.workflow, start_timer)
        self.run()
        if start_timer is not None:
            self.workflow.refresh_timers()
            self.run()

    def run(self, depth: int = 0) -> None:
        steps = 0

        def guard(task: Any) -> None:
            nonlocal steps
            steps += 1
            if steps > running.MAX_AUTOMATIC_STEPS:
                raise _RawStop("too many automatic steps")
            if getattr(task.workflow, "depth", 0) > running.MAX_CALL_DEPTH:
                raise _RawStop("call activities nested too deep")

        if self.incident:
            return
        try:
            self.workflow.do_engine_steps(did_complete_task=guard)
        except Exception as exc:  # noqa: BLE001 - whatever stops SpiffWorkflow stops the case
            self.incident = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return
        self._route(self.workflow, depth)

    def send(self, name: str, payload: dict[str, Any]) -> None:
        """A message from outside, for a catch the case waits at."""
        self.workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload=dict(payload)))
        self.run()

    def _route(self, sender: BpmnWorkflow, depth: int) -> None:
        """Deliver what ``sender`` threw as deptflow does: to the one workflow that waits for it, else start the
        pool whose message start event takes it; one that several would take stops the sender (an incident)."""
        for name, payload in subscriptions.drain(sender):
            if depth >= messages.MAX_HOPS:
                raise Divergence("messages went round without end on the raw side (no diagram here does that)")
            payload = _public(payload)
            waiting = [w for w in [self.workflow, *self.others] if w is not None and not w.is_completed()
                       and name in subscriptions.names(subscriptions.waiting(w))]
            starts = [(spec, subs) for _pid, spec, subs, names in self.pools if name in names.values()]
            if len(waiting) == 1:
                waiting[0].send_event(BpmnEvent(MessageEventDefinition(name), payload=payload))
                self._advance(waiting[0], depth + 1)
            elif not waiting and len(starts) == 1:
                started = BpmnWorkflow(*starts[0], script_engine=WorkflowEngine.script_engine())
                for task in started.get_tasks():
                    task.data.update(payload)
                self.others.append(started)
                self._advance(started, depth + 1)
                started.send_event(BpmnEvent(MessageEventDefinition(name), payload=payload))
                self._advance(started, depth + 1)
            elif not waiting and not starts:
                continue  # nobody takes it: it goes nowhere
            else:  # several take it: the sender stops
                if sender is self.workflow:
                    self.incident = f"several cases take the message {name}"
                return

    def _advance(self, workflow: BpmnWorkflow, depth: int) -> None:
        if workflow is self.workflow:
            self.run(depth)
            return
        try:
            workflow.do_engine_steps()
        except Exception:  # noqa: BLE001 - another pool's case stops; this case is what the walk compares
            return
        self._route(workflow, depth)

    def waiting_messages(self) -> list[tuple[str, str]]:
        return sorted((element, name) for _task, element, name in subscriptions.waiting(self.workflow))

    def ready(self) -> list[Any]:
        return ready_user_tasks(self.workflow)

    def complete(self, task: Any, submitted: dict[str, Any]) -> None:
        task.data.update(submitted)
        try:
            task.run()
        except SpiffWorkflowException as exc:
            raise ScriptError(str(exc)) from exc
        self.run()

    def fire_timers(self) -> None:
        if self.incident:
            return
        self.workflow.refresh_timers()
        self.run()

    def data(self) -> dict[str, Any]:
        last = self.workflow.last_task
        return _json({k: v for k, v in (last.data if last else {}).items() if not k.startswith("_")})

    def completed(self) -> Counter:
        return _completed(self.workflow)


def _raw_spec(parser: definitions.DeptflowParser, process_id: str) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """A process's specs as deptflow runs them, and its message start events."""
    spec, subprocess_specs = parser.get_spec(process_id), parser.get_subprocess_specs(process_id)
    # deptflow's deliberate departures from SpiffWorkflow: a plain bpmn:task passes through (Camunda 7), and every
    # message event is SpiffWorkflow's plain BPMN one (its payload merged into the data; see engine.subscriptions)
    definitions.pass_through_plain_tasks([spec, *subprocess_specs.values()])
    return spec, subprocess_specs, subscriptions.normalise(spec, subprocess_specs).starts


def _json(value: Any) -> Any:
    """As the database holds it (JSON)."""
    return json.loads(json.dumps(value, default=str))


def _all_tasks(workflow: BpmnWorkflow) -> list[Any]:
    tasks = list(workflow.tasks.values())
    for subprocess in workflow.subprocesses.values():
        tasks.extend(subprocess.tasks.values())
    return tasks


def _completed(workflow: BpmnWorkflow, archived: list[dict[str, Any]] = ()) -> Counter:
    """How many times each BPMN element completed (archived tasks counted too)."""
    done = Counter(getattr(t.task_spec, "bpmn_id", None) for t in _all_tasks(workflow)
                   if t.state == TaskState.COMPLETED)
    done.update(t["bpmn_id"] for t in archived if t["state"] == TaskState.COMPLETED)
    done.pop(None, None)
    return done


# --- the deptflow side: through the engine's actions, on a database -----------------------


@dataclass
class OpenTask:
    row_id: int
    element_id: str
    spiff_id: str
    data: dict[str, Any]


class DeptflowCase:
    """The case through deptflow's actions; every read goes to the database."""

    def __init__(self, sessions: sessionmaker, diagram: Diagram):
        self.sessions, self.diagram = sessions, diagram
        self.instance_id: int | None = None
        #: each walk's case has a key of its own: the messages of its pools find its cases, not an earlier walk's
        self.business_key = f"walk-{random.getrandbits(48):012x}"

    def start(self, starter: str, values: dict[str, Any], occurrence: datetime) -> str:
        """Start the case (a timer-started process as the worker starts it); returns who started it."""
        with self.sessions() as session:
            if self.diagram.start_timer:
                system = users.system_user(session)
                starter = system.username
                row = actions.start_scheduled(session, system, self.diagram.process_key, occurrence)
            else:
                row = actions.start_process(session, users.user_by_name(session, starter),
                                            self.diagram.process_key, values, business_key=self.business_key)
            session.commit()
            self.instance_id = row.id
        return starter

    def parsed(self) -> definitions.ParsedDefinition:
        with self.sessions() as session:
            return definitions.parsed(session, definitions.latest_definition(session, self.diagram.process_key))

    def instance(self) -> ProcessInstance:
        with self.sessions() as session:
            return session.get(ProcessInstance, self.instance_id)

    def open_tasks(self) -> list[OpenTask]:
        """The open rows of the inbox projection, in the order of the task tree loaded from the database.

        :raises Divergence: the rows are not the ready user tasks of the saved workflow
        """
        with self.sessions() as session:
            found = session.execute(select(HumanTask.id, HumanTask.element_id, HumanTask.spiff_task_id).where(
                HumanTask.instance_id == self.instance_id, HumanTask.status == TaskStatus.OPEN)).all()
            workflow = running.RunningInstance.open(session, self.instance_id).workflow
        ready = ready_user_tasks(workflow)
        by_spiff = {row.spiff_task_id: row for row in found}
        if set(by_spiff) != {str(t.id) for t in ready}:
            rows_open = sorted((r.element_id, r.spiff_task_id) for r in found)
            saved = sorted((t.task_spec.bpmn_id, str(t.id)) for t in ready)
            raise Divergence(f"the open task rows {rows_open} are not the saved workflow's ready tasks {saved}")
        return [OpenTask(by_spiff[str(t.id)].id, t.task_spec.bpmn_id, str(t.id), _public(t.data)) for t in ready]

    def complete(self, task: OpenTask, values: dict[str, Any]) -> dict[str, Any]:
        """Complete as the first demo user who may; returns the values the form accepted."""
        with self.sessions() as session:
            actor = self._actor(session, task.row_id)
            if actor is None:
                row = rows.read_task(session, task.row_id)
                raise Divergence(f"no demo user may complete {row.element_id} (roles {row.candidate_roles})")
            rows.retrying(session, lambda: actions.complete_task(session, actor, task.row_id, values))
            session.commit()
            return session.scalar(select(HumanTask.submitted).where(HumanTask.id == task.row_id))

    def actor_of(self, task: OpenTask) -> str:
        """The username of the demo user :meth:`complete` completes ``task`` as ("" when nobody may)."""
        with self.sessions() as session:
            actor = self._actor(session, task.row_id)
            return actor.username if actor is not None else ""

    def may_act(self, task: OpenTask) -> bool:
        with self.sessions() as session:
            return self._actor(session, task.row_id) is not None

    @staticmethod
    def _actor(session: Any, row_id: int) -> User | None:
        """The first user (by name) who may complete the task, if anyone may."""
        row = rows.read_task(session, row_id)
        for candidate in session.scalars(select(User).where(User.active.is_(True)).order_by(User.username)):
            try:
                check_may_work_on(session, candidate, row, row.separated_tasks)
            except NotAllowed:
                continue
            return candidate
        return None

    def fire_timers(self) -> None:
        with self.sessions() as session:
            worker.fire(session, self.instance_id)
            session.commit()

    def waiting_messages(self) -> list[tuple[str, str]]:
        """The case's message subscription rows: (element id, message name)."""
        with self.sessions() as session:
            return sorted(session.execute(select(MessageSubscription.element_id, MessageSubscription.message_name)
                                          .where(MessageSubscription.instance_id == self.instance_id)).all())

    def send(self, name: str, payload: dict[str, Any]) -> None:
        with self.sessions() as session:
            admin = users.user_by_name(session, "admin")
            rows.retrying(session, lambda: messages.correlate_message(session, admin, name, payload=payload,
                                                                      business_key=self.business_key))
            session.commit()

    def completed(self) -> Counter:
        with self.sessions() as session:
            archived = persistence.archived_tasks(session, self.instance_id)
            workflow = running.RunningInstance.open(session, self.instance_id).workflow
        return _completed(workflow, archived)


def _public(data: dict[str, Any]) -> dict[str, Any]:
    return _json({k: v for k, v in data.items() if not k.startswith("_")})


# --- the walk -----------------------------------------------------------------------------


@dataclass
class Walk:
    """One case, both sides, step by step; ``log`` says what each step did (shown on a divergence)."""

    sessions: sessionmaker
    diagram: Diagram
    now: Any  # the ``now`` fixture's MovingClock
    chooser: Chooser
    max_steps: int = 60
    log: list[str] = field(default_factory=list)
    steps: int = 0

    def run(self) -> Walk:
        ours = DeptflowCase(self.sessions, self.diagram)
        raw = RawCase(self.diagram.xml, self.diagram.process_key, tuple(d.xml for d in self.diagram.needs))
        parsed = ours.parsed()
        starter = self._starter()
        values = self.chooser.values("start", parsed.start_form) if not self.diagram.start_timer else {}
        self.log.append(f"start as {starter} with {values}")
        starter = ours.start(starter, values, self.now.now)
        data = forms.validate(parsed.start_form, values, {})
        if parsed.initiator_variable:
            data[parsed.initiator_variable] = starter
        if parsed.start_timer is not None and ROLE_MEMBERS in self.diagram.xml:  # who holds each role
            with self.sessions() as session:
                data[ROLE_MEMBERS] = actions.role_members(session)
        raw.start(data, parsed.start_timer)
        self._compare(0, ours, raw)
        for step in range(1, self.max_steps + 1):
            instance = ours.instance()
            if instance.status != InstanceStatus.RUNNING:
                break
            open_tasks = ours.open_tasks()
            options = sorted(range(len(open_tasks)), key=lambda i: open_tasks[i].element_id)
            choices: list[Any] = [open_tasks[i] for i in options
                                  if not self.diagram.from_corpus or ours.may_act(open_tasks[i])]
            if instance.next_timer_at is not None:
                choices.append(TIMER)
            choices.extend(("message", name) for name in sorted({n for _e, n in ours.waiting_messages()}))
            if not choices:
                break
            self.now.advance(minutes=self.chooser.minutes())
            choice = choices[self.chooser.index(f"step {step}", len(choices))]
            if choice == TIMER:
                self.now.now = max(self.now.now, ours.instance().next_timer_at + timedelta(seconds=1))
                self.log.append(f"{step}: timers at {self.now.now:%Y-%m-%d %H:%M}")
                ours.fire_timers()
                raw.fire_timers()
            elif isinstance(choice, tuple):
                self.log.append(f"{step}: message {choice[1]!r} at {self.now.now:%Y-%m-%d %H:%M}")
                ours.send(choice[1], MESSAGE_PAYLOAD)
                raw.send(choice[1], MESSAGE_PAYLOAD)
            else:
                self._complete(step, ours, raw, parsed, choice, open_tasks)
            self.steps = step
            self._compare(step, ours, raw)
        self._compare_end(ours, raw)
        return self

    def _starter(self) -> str:
        roles = (next(p.starter_roles for p in PROCESSES if p.key == self.diagram.process_key)
                 if self.diagram.shipped else TEST_STARTER_ROLES)
        return next(u.username for u in DEMO_USERS if set(u.roles) & set(roles)) if roles else "admin"

    def _complete(self, step: int, ours: DeptflowCase, raw: RawCase, parsed: definitions.ParsedDefinition,
                  task: OpenTask, open_tasks: list[OpenTask]) -> None:
        same = [t for t in open_tasks if t.element_id == task.element_id]
        position = same.index(task)
        raw_same = [t for t in raw.ready() if t.task_spec.bpmn_id == task.element_id]
        raw_task = raw_same[position]
        info = parsed.user_tasks.get(task.element_id)
        form = info.form if info else forms.Form()
        values = self.chooser.values(task.element_id, form)
        self.log.append(f"{step}: {task.element_id}[{position}] at {self.now.now:%Y-%m-%d %H:%M} with {values}")
        outcome: dict[str, str | None] = {}
        completer = ours.actor_of(task)

        def raw_complete() -> None:  # deptflow notes who completed the task (privately)
            raw_task.data[COMPLETED_BY_KEY] = actions.completed_by(raw_task.data, task.element_id, completer)
            raw.complete(raw_task, forms.validate(form, values, raw_task.data))

        for side, act in (("deptflow", lambda: ours.complete(task, values)), ("raw", raw_complete)):
            try:
                act()
                outcome[side] = None
            except ScriptError as exc:
                outcome[side] = str(exc)
        if (outcome["deptflow"] is None) != (outcome["raw"] is None):
            self._fail(step, "the completion failed on one side only", outcome["deptflow"], outcome["raw"])

    def _compare(self, step: int, ours: DeptflowCase, raw: RawCase) -> None:
        instance = ours.instance()
        if (instance.status == InstanceStatus.INCIDENT) != (raw.incident is not None):
            self._fail(step, "incident", instance.status, raw.incident)
        if raw.incident:
            return
        open_tasks = ours.open_tasks()
        ready = raw.ready()
        mine = sorted(t.element_id for t in open_tasks)
        theirs = sorted(t.task_spec.bpmn_id for t in ready)
        if mine != theirs:
            self._fail(step, "ready user tasks", mine, theirs)
        mine_data = sorted((t.element_id, json.dumps(t.data, sort_keys=True)) for t in open_tasks)
        theirs_data = sorted((t.task_spec.bpmn_id, json.dumps(_public(t.data), sort_keys=True)) for t in ready)
        if mine_data != theirs_data:
            self._fail(step, "data of the ready user tasks", mine_data, theirs_data)
        if instance.data != raw.data():
            self._fail(step, "case data", instance.data, raw.data())
        if instance.status == InstanceStatus.RUNNING and ours.waiting_messages() != raw.waiting_messages():
            self._fail(step, "message catches waiting", ours.waiting_messages(), raw.waiting_messages())
        raw_next = timers.next_timer_at(raw.workflow) if not raw.workflow.is_completed() else None
        if instance.next_timer_at != raw_next and not (
                raw_next is not None and instance.next_timer_at is not None and raw_next <= self.now.now
                and instance.next_timer_at <= self.now.now + timedelta(seconds=1)):
            self._fail(step, "next timer", instance.next_timer_at, raw_next)
        if (instance.status == InstanceStatus.COMPLETED) != raw.workflow.is_completed():
            self._fail(step, "finished", instance.status, raw.workflow.is_completed())

    def _compare_end(self, ours: DeptflowCase, raw: RawCase) -> None:
        mine, theirs = ours.completed(), raw.completed()
        if mine != theirs:
            self._fail(self.steps, "completed path (element: times)", dict(sorted(mine.items())),
                       dict(sorted(theirs.items())))
        self._compare(self.steps, ours, raw)

    def _fail(self, step: int, what: str, deptflow: Any, raw: Any) -> None:
        trail = "\n  ".join(self.log[-15:])
        raise Divergence(f"{self.diagram.file}, step {step}: {what} differ\n"
                         f"  deptflow:        {deptflow}\n  SpiffWorkflow:   {raw}\n"
                         f"last steps:\n  {trail}")
