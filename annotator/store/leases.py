"""Leases: which images a person (or a prelabelling worker) is working on, so that a team is
served different images and several machines share one model run through the database.

A lease is (image, scope, holder, expiry). Scope "label" is the labelling queue; scope
"run:<id>" is one model run's work list. An image is held when it has an unexpired lease; a
holder that dies simply lets its leases expire, and the images return to the queue.

Claiming is race-free on both engines. On PostgreSQL the candidate images are locked with
`SELECT ... FOR UPDATE SKIP LOCKED` (concurrent claimers pass each other by), then checked again
with a fresh statement, which sees every lease committed by whoever held those rows before. On
SQLite the whole claim runs in one short write transaction (BEGIN IMMEDIATE), so claims are
serialized. Functions that change leases commit. Depends on the ORM only."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, or_, select, true, update
from sqlalchemy.orm import Session

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
    held = exists().where(
        Lease.image_id == Image.id,
        Lease.scope == scope,
        Lease.holder != holder,
        Lease.expires_at > now,
    )
    if scope != LABEL_SCOPE:
        return held
    return or_(and_(held, ~overlap.is_overlap()), overlap.no_seat(scope, holder, now))


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


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
    done = exists().where(RunImage.run_id == run_id, RunImage.image_id == Image.id)
    cond = and_(Image.dataset_id == dataset_id, ~done, ~held_by_others(scope, holder, utcnow()))
    if only_unlabeled:
        cond = and_(cond, Image.status == "unlabeled")
    got: list[int] = []
    for _ in range(4):  # rows taken by a racing claimer are dropped: look again
        stmt = select(Image.id).where(cond, Image.id.not_in(got) if got else true())
        ids = _lock(session, stmt.order_by(Image.id).limit(size - len(got)))
        if not ids:
            break
        fresh = _free(session, ids, scope, holder)
        if fresh:
            _grant(session, dataset_id, fresh, scope, holder, ttl_s)
        got += fresh
        if len(got) >= size:
            break
    session.commit()
    return got


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
