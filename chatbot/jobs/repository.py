"""Queries on the `jobs` table. Functions take the session as a keyword argument and
never commit; deciding what a job is, starting processes and reading liveness is
`control`'s job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select, update

from chatbot.jobs.records import ACTIVE_STATES
from chatbot.store.support_schema import Job

if TYPE_CHECKING:
    from sqlalchemy import CursorResult
    from sqlalchemy.orm import Session


def insert_job(
    *, session: Session, kind: str, params: dict[str, Any], created_by: str | None
) -> Job:
    row = Job(
        kind=kind,
        status="queued",
        params=dict(params),
        progress={},
        result={},
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def job_row(*, session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def job_rows(
    *, session: Session, kind: str | None = None, status: str | None = None, limit: int | None = 50
) -> list[Job]:
    """Jobs, newest first."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query).all())


def active_rows(*, session: Session, kind: str | None = None) -> list[Job]:
    query = select(Job).where(Job.status.in_(ACTIVE_STATES)).order_by(Job.id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query).all())


def update_if(
    *, session: Session, job_id: int, states: tuple[str, ...] = ACTIVE_STATES, **values: object
) -> bool:
    """Set `values` on the job only while its status is one of `states`; True when it
    was. A conditional UPDATE, so a job that a worker finished meanwhile is not
    overwritten by a stale reader."""
    result = session.execute(  # an UPDATE gives a CursorResult, which has rowcount
        update(Job)
        .where(Job.id == job_id, Job.status.in_(states))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(cast("CursorResult[Any]", result).rowcount)
