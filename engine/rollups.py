"""Sealed roll-ups of the dashboard's figures: what the days and months that are over add up to, kept so that a
request over a year reads a few thousand rows instead of every task, case and decision of the year.

A :class:`Figure` is a statement that lists its items in a range of time, one row per task, case or decision:
the item's moment, whether it is settled, its group's keys (the first its process), its counts and, for a figure
with percentiles, its value. :func:`collect` splits the requested range into pieces (:func:`pieces`) — whole
months that are over, days that are over, then the rest (today) — and adds up each figure per group over them:

* a piece over is *sealed* once: its items are added up per group (counts summed, values kept) and
  written as one :class:`engine.db.DashboardRollup` row per group, with a :class:`engine.db.DashboardPeriod` mark;
  later requests read those rows;
* the rest is added up from its items on every request.

Exact, not estimated: a group's sealed values are all its values (packed doubles), so percentiles over several
pieces (:func:`percentiles`) are the ones the items give. A piece is sealed only when it is over by :data:`SETTLE` (any
transaction that wrote one of its items has committed) and all its items are settled: a figure whose items can
still change (the status of a running case, the form data it counts) marks them, and a piece holding one is read
from its items until they are. Nothing rewrites or deletes what the figures count (completed tasks, finished
cases, the event log), so a sealed piece stays true.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Select, and_, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .db import DashboardPeriod, DashboardRollup

log = logging.getLogger("deptflow.dashboard")

#: how long after its end a day or month is sealed: every transaction that wrote one of its items has committed
SETTLE = timedelta(hours=1)

#: (since, until, processes or None for all) → rows of (moment, settled, *keys, *counts[, later, earlier])
Items = Callable[[datetime, datetime, "list[str] | None"], Select]


@dataclass(frozen=True)
class Figure:
    """What one figure counts: ``items`` lists them (see :data:`Items`); ``keys`` and ``counts`` say how many
    columns of each follow the moment and the settled flag. ``durations``: the last two columns hold two moments
    and the item's value, kept for percentiles, is the seconds between them (computed here: exact on both
    databases). ``per``: the Monday of the item's week (``YYYY-MM-DD``) or its month (``YYYY-MM``) ends its
    keys."""

    name: str
    items: Items
    keys: int
    counts: int
    durations: bool = False
    per: str | None = None


@dataclass
class Group:
    """A group's counts added up, and its values in runs (one per piece)."""

    counts: list[float]
    runs: list[Any] = field(default_factory=list)

    def add(self, counts: Iterable[float], runs: Iterable[Any] = ()) -> None:
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.runs += [run for run in runs if len(run)]

    def percentiles(self, *fractions: float) -> list[float | None]:
        """The group's values at ``fractions`` (see :func:`percentiles`)."""
        return percentiles(np.concatenate(self.runs) if self.runs else (), *fractions)


def percentiles(values: Any, *fractions: float) -> list[float | None]:
    """As ``percentile_cont``: linear interpolation between the two nearest ranks, over every value. Only those
    ranks are put in place (a partial sort): no order is kept, none is needed."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if not n:
        return [None] * len(fractions)
    positions = [fraction * (n - 1) for fraction in fractions]
    ranks = sorted({rank for p in positions for rank in (int(p), min(int(p) + 1, n - 1))})
    placed = np.partition(values, ranks)
    out: list[float | None] = []
    for position in positions:
        low = float(placed[int(position)])
        high = float(placed[min(int(position) + 1, n - 1)])
        out.append(low + (high - low) * (position - int(position)))
    return out


# --- pieces of a range ---------------------------------------------------------------------------


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _moment(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def pieces(since: date, until: date, now: datetime) -> tuple[list[tuple[str, date]], date]:
    """The sealable pieces of the days ``[since, until)`` — ``("month", first day)`` for a whole month over by
    :data:`SETTLE`, else ``("day", day)`` for a day over by it — and the day the rest starts (``until`` when none)."""
    over = now - SETTLE
    out: list[tuple[str, date]] = []
    day = since
    while day < until:
        month_end = _next_month(day)
        if day.day == 1 and month_end <= until and _moment(month_end) <= over:
            out.append(("month", day))
            day = month_end
        elif _moment(day + timedelta(days=1)) <= over:
            out.append(("day", day))
            day += timedelta(days=1)
        else:
            break
    return out, day


def _end(kind: str, start: date) -> date:
    return _next_month(start) if kind == "month" else start + timedelta(days=1)


def _days(kind: str, start: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((_end(kind, start) - start).days)]


# --- adding up -----------------------------------------------------------------------------------


#: values are stored as little-endian doubles
_VALUES = np.dtype("<f8")


@lru_cache(maxsize=4096)
def _week(day: date) -> str:
    return (day - timedelta(days=day.weekday())).isoformat()


@lru_cache(maxsize=4096)
def _month(day: date) -> str:
    return day.strftime("%Y-%m")


def _add_items(figure: Figure, rows: Iterable[Any], into: dict[tuple, Group]) -> None:
    """Adds up items into groups, each group's values in one run."""
    keys_end = 2 + figure.keys
    counts_end = keys_end + figure.counts
    period = {"week": _week, "month": _month}.get(figure.per or "")
    for row in rows:
        key = tuple(row[2:keys_end])
        if period is not None:
            key = (*key, period(row[0].date()))
        group = into.get(key)
        if group is None:
            group = into[key] = Group([0] * figure.counts, [[]] if figure.durations else [])
        counts = group.counts
        for index, count in enumerate(row[keys_end:counts_end]):
            counts[index] += count
        if figure.durations:
            group.runs[0].append((row[counts_end] - row[counts_end + 1]).total_seconds())


def merge_group(into: dict[Any, Group], key: Any, counts: Iterable[float], runs: Iterable[Any]) -> None:
    """Adds a group's counts and values to ``into[key]`` (a copy, when it is the first)."""
    mine = into.get(key)
    if mine is None:
        into[key] = Group(list(counts), [run for run in runs if len(run)])
    else:
        mine.add(counts, runs)


def _merge(into: dict[tuple, Group], groups: dict[tuple, Group]) -> None:
    for key, group in groups.items():
        merge_group(into, key, group.counts, group.runs)


def _insert(session: Session, model: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING: two requests sealing the same piece write the same rows."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).on_conflict_do_nothing()


@dataclass
class _Sealing:
    """The rows and marks of pieces added up, to be written together (:func:`_store`)."""

    rollups: list[dict] = field(default_factory=list)
    marks: list[dict] = field(default_factory=list)


def _seal(session: Session, figure: Figure, missing: list[tuple[str, date]], sealing: _Sealing,
          ) -> dict[tuple[str, date], dict]:
    """Adds up the items of the ``missing`` pieces (contiguous runs of them, one statement each) and adds the
    settled pieces' rows and marks to ``sealing``; returns every piece's groups (settled or not)."""
    found: dict[tuple[str, date], dict[tuple, Group]] = {}
    runs: list[list[tuple[str, date]]] = []
    for piece in missing:
        if runs and _end(*runs[-1][-1]) == piece[1]:
            runs[-1].append(piece)
        else:
            runs.append([piece])
    unsettled: set[tuple[str, date]] = set()
    for run in runs:
        buckets: dict[tuple[str, date], list[Any]] = {piece: [] for piece in run}
        piece_of = {day: piece for piece in run for day in _days(*piece)}
        # Core rows (no ORM loading per row): a year of items is about a million rows
        rows = session.connection().execute(figure.items(_moment(run[0][1]), _moment(_end(*run[-1])), None)).all()
        for row in rows:
            piece = piece_of[row[0].date()]
            buckets[piece].append(row)
            if not row[1]:
                unsettled.add(piece)
        for piece, items in buckets.items():
            groups: dict[tuple, Group] = {}
            _add_items(figure, items, groups)
            found[piece] = groups
    for (kind, start), groups in found.items():
        if (kind, start) in unsettled:
            continue
        sealing.marks.append({"figure": figure.name, "kind": kind, "start": start})
        sealing.rollups += [
            {"figure": figure.name, "kind": kind, "start": start, "key": json.dumps(key), "process_key": key[0],
             "counts": json.dumps(group.counts),
             "packed_values": np.asarray(group.runs[0], dtype=_VALUES).tobytes() if figure.durations else None}
            for key, group in groups.items()]
    return found


def _store(session: Session, sealing: _Sealing) -> int:
    """Writes the sealed pieces and commits; returns how many. Sealing only spares later requests work: when the
    database refuses the write (read-only, or locked past its timeout), it is left to a later request and this
    one's figures, already added up, stand."""
    try:
        if sealing.rollups:
            session.execute(_insert(session, DashboardRollup), sealing.rollups)
        if sealing.marks:
            session.execute(_insert(session, DashboardPeriod), sealing.marks)
        session.commit()
    except DBAPIError:
        session.rollback()
        log.warning("dashboard: %d pieces not sealed this time", len(sealing.marks), exc_info=True)
        return 0
    return len(sealing.marks)


def _sealed(session: Session, names: Iterable[str], since: date, until: date) -> set[tuple[str, str, date]]:
    """The (figure, kind, start) of the pieces sealed between two days."""
    p = DashboardPeriod
    return {tuple(row) for row in session.execute(select(p.figure, p.kind, p.start).where(
        p.figure.in_(list(names)), p.start >= since, p.start < until))}


def seal(session: Session, figures: Iterable[Figure], since: date, until: date, now: datetime) -> int:
    """Seals the pieces over in the days ``[since, until)`` that are not sealed yet, and commits; returns how many
    it sealed (pieces whose items are not all settled stay as they are)."""
    sealable, rest = pieces(since, until, now)
    if not sealable:
        return 0
    figures = list(figures)
    sealed = _sealed(session, [figure.name for figure in figures], sealable[0][1], rest)
    sealing = _Sealing()
    for figure in figures:
        missing = [piece for piece in sealable if (figure.name, *piece) not in sealed]
        if missing:
            _seal(session, figure, missing, sealing)
    return _store(session, sealing)


def forget(session: Session) -> int:
    """Deletes every sealed piece (after rows were changed by hand or a backup restored: the next requests add
    them up again); returns how many marks there were."""
    count = session.execute(delete(DashboardPeriod)).rowcount
    session.execute(delete(DashboardRollup))
    session.commit()
    return count


def _rows(session: Session, query: Select) -> list[Any]:
    """The rows of ``query``; on PostgreSQL in the binary format, which sends the packed values as they are — the
    text format doubles them into hex, and reading a year's values took three times as long (measured: 37–43 ms
    against 10–12 ms for 2,100 rows, 5.9 MB)."""
    if session.get_bind().dialect.name != "postgresql":
        return list(session.execute(query))
    compiled = query.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    with session.connection().connection.driver_connection.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()


def collect(session: Session, figures: dict[Figure, list[str] | None], since: date, until: date, now: datetime,
            ) -> dict[str, dict[tuple, Group]]:
    """Each figure's groups over the days ``[since, until)``, for its processes only (``None``: all): sealed
    pieces from their rows, pieces over but not sealed yet sealed now (committed here), the rest from the items."""
    sealable, rest = pieces(since, until, now)
    out: dict[str, dict[tuple, Group]] = {figure.name: {} for figure in figures}
    wanted = {figure.name: None if keys is None else set(keys) for figure, keys in figures.items()
              if keys is None or keys}

    def shown(name: str, key: tuple) -> bool:
        return wanted[name] is None or key[0] in wanted[name]

    sealed: set[tuple[str, str, date]] = set()
    if sealable and wanted:
        sealed = _sealed(session, wanted, sealable[0][1], rest)
        r = DashboardRollup
        # only the pieces of this range: not the days of a month sealed whole, which a range cut inside it reads
        months = [start for kind, start in sealable if kind == "month"]
        days = [start for kind, start in sealable if kind == "day"]
        query = select(r.figure, r.key, r.counts, r.packed_values).where(
            r.figure.in_(wanted), or_(and_(r.kind == "month", r.start.in_(months)),
                                      and_(r.kind == "day", r.start.in_(days))))
        if None not in wanted.values():
            query = query.where(r.process_key.in_(set().union(*wanted.values())))
        loads = lru_cache(maxsize=None)(json.loads)  # keys and counts repeat from piece to piece
        for name, key, counts, values in _rows(session, query):
            key = tuple(loads(key))
            if not shown(name, key):
                continue
            runs = [] if values is None else [np.frombuffer(values, dtype=_VALUES)]
            merge_group(out[name], key, loads(counts), runs)
    sealing = _Sealing()
    for figure, processes in figures.items():
        if figure.name not in wanted:
            continue
        missing = [piece for piece in sealable if (figure.name, *piece) not in sealed]
        if missing:
            for groups in _seal(session, figure, missing, sealing).values():
                _merge(out[figure.name], {k: g for k, g in groups.items() if shown(figure.name, k)})
        if rest < until:
            groups = {}
            items = figure.items(_moment(rest), _moment(until), processes)
            _add_items(figure, session.connection().execute(items).all(), groups)
            _merge(out[figure.name], groups)
    if sealing.marks:
        _store(session, sealing)
    return out


def process_in(column: Any, processes: list[str] | None) -> list[Any]:
    """The condition an :data:`Items` statement adds for its processes (none: all)."""
    return [] if processes is None else [column.in_(processes)]
