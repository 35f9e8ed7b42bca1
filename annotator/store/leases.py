"""Leases: which images a person (or a prelabelling worker) is working on, so that a team is
served different images and several machines share one model run through the database.

A lease is (image, scope, holder, expiry). Scope "label" is the labelling queue; scope
"run:<id>" is one model run's work list. An image is held when it has an unexpired lease; a
holder that dies simply lets its leases expire, and the images return to the queue.

Claiming is race-free on both engines. On PostgreSQL a claim is two statements: the candidate
images are locked with `SELECT ... FOR UPDATE SKIP LOCKED` (concurrent claimers pass each other
by), then one statement checks them again and leases the free ones (a CTE: INSERT ... ON
CONFLICT ... RETURNING); being a fresh statement, it sees every lease committed by whoever held
those rows before (a single statement could not: its snapshot may predate the commit of the
claimer whose row lock it then takes). Both are built once and compiled once, so a claim costs
the client little more than its round trips. On SQLite the whole claim runs in one short write
transaction (BEGIN IMMEDIATE), so claims are serialized. Functions that change leases commit.
Depends on the ORM only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    all_,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from annotator.store import overlap
from annotator.store.models import HistoryEvent, Image, Lease, RunImage, utcnow

LABEL_SCOPE = "label"
# how long a lease lasts without a heartbeat; $ANNOTATOR_LEASE_TTL_S overrides (a team that
# wants a killed session's images back sooner, and the tests)
DEFAULT_TTL_S = float(os.environ.get("ANNOTATOR_LEASE_TTL_S") or 120.0)


def run_scope(run_id: int) -> str:
    """The scope of one model run's work list."""
    return f"run:{run_id}"


def held_by_others(scope: str, holder: str, now: datetime) -> ColumnElement[bool]:
    """True for an image someone else holds an unexpired lease on (to filter a queue). In the
    labelling scope an overlap image takes k people: true when it has no seat left for
    `holder` (k others hold it or are done with it, or `holder` is done with it)."""
    return _held(scope, holder, now, label=scope == LABEL_SCOPE)


def _held(scope: Any, holder: Any, now: Any, label: bool) -> ColumnElement[bool]:
    """`held_by_others` over values or bound parameters; `label`: with the overlap rules."""
    held = exists().where(
        Lease.image_id == Image.id,
        Lease.scope == scope,
        Lease.holder != holder,
        Lease.expires_at > now,
    )
    if not label:
        return held
    return or_(and_(held, ~overlap.is_overlap()), overlap.no_seat(scope, holder, now))


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_LOCKS = "annotator.row_locks"


def note_locked(session: Session, image_id: int) -> None:
    """Note that the session's transaction holds a row lock on the image (a person's queue
    move took it), so that a claim in the same transaction need not lock it again."""
    here = (session.get_transaction(), session.get_nested_transaction())
    found = session.info.get(_LOCKS)
    if found is None or found[0][0] is not here[0] or found[0][1] is not here[1]:
        found = (here, set[int]())
        session.info[_LOCKS] = found
    found[1].add(image_id)


def _locked_before(session: Session) -> set[int]:
    """The images whose rows this transaction (not a savepoint since) has locked already."""
    found = session.info.get(_LOCKS)
    if found is None or found[0][0] is not session.get_transaction():
        return set()
    return set(found[1]) if found[0][1] is session.get_nested_transaction() else set()


def _lock(session: Session, stmt: Select[tuple[int]]) -> list[int]:
    """The ids `stmt` selects, row-locked on PostgreSQL (skipping rows others hold locked)."""
    if _postgres(session):
        stmt = stmt.with_for_update(skip_locked=True, of=Image)
    return list(session.scalars(stmt))


def _free(session: Session, ids: Sequence[int], scope: str, holder: str) -> list[int]:
    """Of `ids`, those nobody else holds now (a fresh statement: sees committed claims)."""
    if not ids:
        return []
    now = utcnow()
    taken = select(Lease.image_id).where(
        Lease.image_id.in_(ids),
        Lease.scope == scope,
        Lease.holder != holder,
        Lease.expires_at > now,
    )
    busy = set(session.scalars(taken))
    if scope == LABEL_SCOPE:  # an overlap image takes up to k holders
        busy = overlap.busy_overlap(session, ids, busy, scope, holder, now)
    return [i for i in ids if i not in busy]


def _grant(session: Session, dataset_id: int, ids: Sequence[int], scope: str, holder: str,
           ttl_s: float) -> None:  # fmt: skip
    """Give `holder` a lease on each of `ids` (renewing its own), dropping others' expired ones."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl_s)
    session.execute(delete(Lease).where(
        Lease.image_id.in_(ids), Lease.scope == scope,
        (Lease.holder == holder) | (Lease.expires_at <= now),
    ))  # fmt: skip
    session.add_all(
        Lease(
            dataset_id=dataset_id,
            image_id=i,
            scope=scope,
            holder=holder,
            claimed_at=now,
            expires_at=expires,
        )
        for i in ids
    )


def claim(session: Session, dataset_id: int, image_ids: Sequence[int], holder: str,
          scope: str = LABEL_SCOPE, ttl_s: float = DEFAULT_TTL_S) -> list[int]:  # fmt: skip
    """Lease those of `image_ids` that nobody else holds; returns them, in the order given.
    Commits."""
    if not image_ids:
        return []
    if _postgres(session):
        locked = _locked_before(session)
        if rest := [i for i in image_ids if i not in locked]:
            locked = locked | set(_run(session, ("lock",), _lock_stmt, ids=rest))
        got = _pg_grant(session, dataset_id, [i for i in image_ids if i in locked], scope,
                        holder, ttl_s)  # fmt: skip
    else:
        locked = set(_lock(session, select(Image.id).where(Image.id.in_(image_ids))))
        got = _free(session, [i for i in image_ids if i in locked], scope, holder)
        if got:
            _grant(session, dataset_id, got, scope, holder, ttl_s)
    session.commit()
    return got


def keep_only(session: Session, dataset_id: int, holder: str, keep: Iterable[int],
              scope: str = LABEL_SCOPE) -> None:  # fmt: skip
    """Release `holder`'s leases in `scope` except on `keep` (what it moved past). Commits."""
    session.execute(delete(Lease).where(
        Lease.dataset_id == dataset_id, Lease.scope == scope, Lease.holder == holder,
        Lease.image_id.not_in(list(keep)),
    ))  # fmt: skip
    session.commit()


def heartbeat(session: Session, dataset_id: int, holder: str, scope: str = LABEL_SCOPE,
              ttl_s: float = DEFAULT_TTL_S) -> int:  # fmt: skip
    """Extend every unexpired lease `holder` has in `scope`; how many. Commits."""
    now = utcnow()
    result = session.execute(
        update(Lease)
        .where(
            Lease.dataset_id == dataset_id,
            Lease.scope == scope,
            Lease.holder == holder,
            Lease.expires_at > now,
        )
        .values(expires_at=now + timedelta(seconds=ttl_s))
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def release(session: Session, dataset_id: int, holder: str, scope: str = LABEL_SCOPE) -> None:
    """Give back every lease `holder` has in `scope` (quitting the app, a worker done). Commits."""
    session.execute(delete(Lease).where(
        Lease.dataset_id == dataset_id, Lease.scope == scope, Lease.holder == holder,
    ))  # fmt: skip
    session.commit()


def claim_run_batch(
    session: Session, dataset_id: int, run_id: int, holder: str, size: int,
    only_unlabeled: bool = False, ttl_s: float = DEFAULT_TTL_S,
) -> list[int]:  # fmt: skip
    """The next `size` images of the dataset that run `run_id` has not processed and no other
    worker holds, leased to `holder` (an empty list: nothing left to take). Commits."""
    scope = run_scope(run_id)
    postgres = _postgres(session)
    if not postgres:
        done = exists().where(RunImage.run_id == run_id, RunImage.image_id == Image.id)
        cond = and_(Image.dataset_id == dataset_id, ~done, ~held_by_others(scope, holder, utcnow()))
        if only_unlabeled:
            cond = and_(cond, Image.status == "unlabeled")
    got: list[int] = []
    for _ in range(4):  # rows taken by a racing claimer are dropped: look again
        if postgres:
            ids = _run(session, ("next", only_unlabeled), lambda: _next_stmt(only_unlabeled),
                       dataset_id=dataset_id, run_id=run_id, scope=scope, holder=holder,
                       now=utcnow(), skip=got, n=size - len(got))  # fmt: skip
            fresh = _pg_grant(session, dataset_id, ids, scope, holder, ttl_s, run_id)
        else:
            stmt = select(Image.id).where(cond, Image.id.not_in(got) if got else true())
            ids = _lock(session, stmt.order_by(Image.id).limit(size - len(got)))
            fresh = _free(session, ids, scope, holder)
            if fresh:
                _grant(session, dataset_id, fresh, scope, holder, ttl_s)
        got += fresh
        if not ids or len(got) >= size:
            break
    session.commit()
    return got


# PostgreSQL claims: statements built once, compiled once per dialect, then only executed
_COMPILED: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}


def _run(session: Session, key: tuple[Any, ...], build: Callable[[], ClauseElement],
         **params: Any) -> list[int]:  # fmt: skip
    """Execute the statement `build` makes (compiled on first use) with `params`; the ids."""
    conn = session.connection()
    full = (type(conn.dialect), *key)
    found = _COMPILED.get(full)
    if found is None:
        compiled = build().compile(dialect=conn.dialect)
        found = _COMPILED[full] = (str(compiled), dict(compiled.params))
    sql, defaults = found
    return list(conn.exec_driver_sql(sql, {**defaults, **params}).scalars())


def _pg_grant(session: Session, dataset_id: int, ids: list[int], scope: str, holder: str,
              ttl_s: float, run_id: int | None = None) -> list[int]:  # fmt: skip
    """Of `ids` (rows this transaction has locked), lease to `holder` those nobody else holds
    (and, for run `run_id`, that it has not processed), in one statement; returns them in the
    order given."""
    if not ids:
        return []
    now = utcnow()
    label = scope == LABEL_SCOPE
    params = {"run_id": run_id} if run_id is not None else {}
    granted = set(_run(session, ("grant", label, run_id is not None),
                       lambda: _grant_stmt(label, run_id is not None), ids=ids, scope=scope,
                       holder=holder, now=now, dataset_id=dataset_id,
                       expires=now + timedelta(seconds=ttl_s), **params))  # fmt: skip
    return [i for i in ids if i in granted]


def _params() -> tuple[Any, Any, Any]:
    return (bindparam("scope", type_=String), bindparam("holder", type_=String),
            bindparam("now", type_=DateTime(timezone=True)))  # fmt: skip


def _lock_stmt() -> ClauseElement:
    """Lock the images `ids`, skipping those another transaction holds locked."""
    ids = bindparam("ids", type_=ARRAY(Integer))
    stmt = select(Image.id).where(Image.id == any_(ids))
    return stmt.with_for_update(skip_locked=True, of=Image)


def _next_stmt(only_unlabeled: bool) -> ClauseElement:
    """Lock the next `n` images (by id, past `skip`) that a run has not processed and no other
    worker holds, skipping rows others are locking right now."""
    scope, holder, now = _params()
    run = bindparam("run_id", type_=Integer)
    done = exists().where(RunImage.run_id == run, RunImage.image_id == Image.id)
    cond = and_(
        Image.dataset_id == bindparam("dataset_id", type_=Integer),
        ~done,
        ~_held(scope, holder, now, label=False),
        Image.id != all_(bindparam("skip", type_=ARRAY(Integer))),
    )
    if only_unlabeled:
        cond = and_(cond, Image.status == "unlabeled")
    stmt = select(Image.id).where(cond).order_by(Image.id).limit(bindparam("n", type_=Integer))
    return stmt.with_for_update(skip_locked=True, of=Image)


def _grant_stmt(label: bool, run: bool = False) -> ClauseElement:
    """Of the locked images `ids`, those nobody else holds (the overlap rules in the labelling
    scope) get a lease for `holder` (its own renewed); others' expired leases on them are
    dropped. `run`: only images run `run_id` has not processed (the lock was taken on a
    snapshot from before another worker finished them and let go). Returns the ids leased."""
    scope, holder, now = _params()
    ids = bindparam("ids", type_=ARRAY(Integer))
    free = select(Image.id).where(Image.id == any_(ids), ~_held(scope, holder, now, label))
    if run:
        run_id = bindparam("run_id", type_=Integer)
        free = free.where(~exists().where(RunImage.run_id == run_id, RunImage.image_id == Image.id))
    free_cte = free.cte("free")
    stale = (
        delete(Lease)
        .where(Lease.image_id.in_(select(free_cte.c.id)), Lease.scope == scope,
               Lease.holder != holder, Lease.expires_at <= now)
        .returning(Lease.id)
        .cte("stale")
    )  # fmt: skip
    rows = select(bindparam("dataset_id", type_=Integer), free_cte.c.id, scope, holder, now,
                  bindparam("expires", type_=DateTime(timezone=True)))  # fmt: skip
    cols = ["dataset_id", "image_id", "scope", "holder", "claimed_at", "expires_at"]
    ins = pg_insert(Lease).from_select(cols, rows)
    ins = ins.on_conflict_do_update(
        index_elements=[Lease.scope, Lease.image_id, Lease.holder],
        set_={"claimed_at": ins.excluded.claimed_at, "expires_at": ins.excluded.expires_at},
    )
    return ins.returning(Lease.image_id).add_cte(stale)


def remaining(session: Session, dataset_id: int, run_id: int, only_unlabeled: bool = False) -> int:
    """Images of the dataset that run `run_id` has not processed yet."""
    done = exists().where(RunImage.run_id == run_id, RunImage.image_id == Image.id)
    cond = and_(Image.dataset_id == dataset_id, ~done)
    if only_unlabeled:
        cond = and_(cond, Image.status == "unlabeled")
    return int(session.scalar(select(func.count()).select_from(Image).where(cond)) or 0)


@dataclass(frozen=True, slots=True)
class Holder:
    """One holder's live leases in a scope, and (for people) today's pace."""

    holder: str
    scope: str
    images: int
    since: datetime
    expires: datetime
    labels_today: int = 0
    labels_per_hour: float = 0.0


def holders(session: Session, dataset_id: int, scope_prefix: str = "") -> list[Holder]:
    """Who holds how many images (unexpired leases), since when, per scope."""
    now = utcnow()
    stmt = (
        select(
            Lease.holder,
            Lease.scope,
            func.count(),
            func.min(Lease.claimed_at),
            func.max(Lease.expires_at),
        )
        .where(
            Lease.dataset_id == dataset_id,
            Lease.expires_at > now,
            Lease.scope.startswith(scope_prefix),
        )
        .group_by(Lease.holder, Lease.scope)
        .order_by(Lease.scope, Lease.holder)
    )
    rows = session.execute(stmt).all()
    return [Holder(h, s, int(n), since, exp) for h, s, n, since, exp in rows]


def pace_today(session: Session, dataset_id: int) -> dict[str, tuple[int, float]]:
    """Per author: label changes made today (UTC) and their rate per hour, measured from the
    author's first change today to now."""
    now = utcnow()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    stmt = (
        select(HistoryEvent.author, func.count(), func.min(HistoryEvent.created_at))
        .where(
            HistoryEvent.dataset_id == dataset_id,
            HistoryEvent.created_at >= start,
            HistoryEvent.action.in_(("create", "edit", "delete", "review", "status")),
            HistoryEvent.group_kind == "do",
            ~HistoryEvent.author.startswith("model:"),
        )
        .group_by(HistoryEvent.author)
    )
    out: dict[str, tuple[int, float]] = {}
    for author, count, first in session.execute(stmt).all():
        first = first if first.tzinfo else first.replace(tzinfo=now.tzinfo)
        hours = max((now - first).total_seconds() / 3600, 1 / 60)
        out[author] = (int(count), int(count) / hours)
    return out
