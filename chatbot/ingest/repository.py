"""SQL for imports and training pairs: finding what is already stored, bulk inserts,
and the read queries behind `chatbot pairs stats|export`. Each function takes the
session as a keyword argument; committing is the caller's `Database.session()` block.
Never touches live conversations (channel "live"): imports only add rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypedDict, TypeVar

from sqlalchemy import ColumnElement, Select, func, insert, select
from sqlalchemy.orm import Session

from chatbot.store.enums import PairOrigin
from chatbot.store.schema import Conversation, Import, Message, TrainingPair

T = TypeVar("T")
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


class PairStats(TypedDict):
    """`pair_stats`: the counts behind `chatbot pairs stats`."""

    pairs: int
    by_split: dict[str, int]
    by_origin: dict[str, int]
    by_source: dict[str, dict[str, int]]  # source -> train, val, test, total
    avg_target_chars: float | None
    with_quality: int
    imported_conversations_by_split: dict[str, int]


class ExportedPair(TypedDict):
    """One pair as `chatbot pairs export` writes it, with its provenance."""

    id: int
    source: str
    split: str
    origin: PairOrigin
    conversation_id: int | None
    external_id: str | None
    turn_index: int | None
    import_id: int | None
    context: list[Any]
    target: str
    quality: float | None
    labels: dict[str, Any]


CHUNK = 500  # bound parameter lists well under every backend's limit


def _chunks(items: list[T], size: int = CHUNK) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def done_import(*, session: Session, file_sha256: str, key: dict[str, Any]) -> Import | None:
    """A finished import of the same bytes with the same source/column options."""
    for item in session.scalars(
        select(Import)
        .where(Import.file_sha256 == file_sha256, Import.status == "done")
        .order_by(Import.id)
    ):
        if (item.settings or {}).get("key") == key:
            return item
    return None


def existing_conversation_hashes(*, session: Session, hashes: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(hashes)):
        found.update(
            session.scalars(
                select(Conversation.content_hash).where(Conversation.content_hash.in_(chunk))
            )
        )
    return found


def existing_pair_hashes(*, session: Session, hashes: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(hashes)):
        found.update(
            session.scalars(
                select(TrainingPair.content_hash).where(TrainingPair.content_hash.in_(chunk))
            )
        )
    return found


def insert_conversations(*, session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Bulk insert; returns the new ids in the order of `rows`."""
    if not rows:
        return []
    statement = insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True)
    return list(session.scalars(statement, rows))


def insert_messages(*, session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(Message), rows)


def insert_pairs(*, session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(TrainingPair), rows)


def _pair_filter(
    statement: S, split: str | None, source: str | None, origin: PairOrigin | None
) -> S:
    if split:
        statement = statement.where(TrainingPair.split == split)
    if source:
        statement = statement.where(TrainingPair.source == source)
    if origin:
        statement = statement.where(TrainingPair.origin == origin)
    return statement


def pair_stats(
    *, session: Session, split: str | None = None, source: str | None = None
) -> PairStats:
    """Counts of pairs by split, source and origin, sizes, and quality coverage."""
    base = _pair_filter(select(TrainingPair), split, source, None).subquery()
    total = session.scalar(select(func.count()).select_from(base)) or 0

    def grouped(column: ColumnElement[Any]) -> dict[str, int]:
        rows = session.execute(select(column, func.count()).group_by(column).order_by(column))
        return {str(key): count for key, count in rows}

    by_split = grouped(base.c.split)
    by_origin = grouped(base.c.origin)
    by_source: dict[str, dict[str, int]] = {}
    for src, spl, count in session.execute(
        select(base.c.source, base.c.split, func.count())
        .group_by(base.c.source, base.c.split)
        .order_by(base.c.source)
    ):
        by_source.setdefault(src, {"train": 0, "val": 0, "test": 0, "total": 0})
        by_source[src][spl] = count
        by_source[src]["total"] += count
    avg_target = session.scalar(select(func.avg(func.length(base.c.target))))
    with_quality = (
        session.scalar(select(func.count()).select_from(base).where(base.c.quality.is_not(None)))
        or 0
    )
    conversations = session.execute(
        select(Conversation.split, func.count())
        .where(Conversation.channel == "import")
        .group_by(Conversation.split)
    )
    return PairStats(
        pairs=total,
        by_split=by_split,
        by_origin=by_origin,
        by_source=by_source,
        avg_target_chars=round(float(avg_target), 1) if avg_target is not None else None,
        with_quality=with_quality,
        imported_conversations_by_split={str(k): v for k, v in conversations},
    )


def iter_pairs(
    *,
    session: Session,
    split: str | None = None,
    source: str | None = None,
    origin: PairOrigin | None = None,
    batch: int = 1000,
) -> Iterator[ExportedPair]:
    """Pairs with their provenance, oldest first, as plain dicts."""
    statement = _pair_filter(
        select(TrainingPair, Conversation.external_id).outerjoin(
            Conversation, TrainingPair.conversation_id == Conversation.id
        ),
        split,
        source,
        origin,
    ).order_by(TrainingPair.id)
    for pair, external in session.execute(statement.execution_options(yield_per=batch)):
        yield ExportedPair(
            id=pair.id,
            source=pair.source,
            split=pair.split,
            origin=pair.origin,
            conversation_id=pair.conversation_id,
            external_id=external,
            turn_index=pair.turn_index,
            import_id=pair.import_id,
            context=pair.context,
            target=pair.target,
            quality=pair.quality,
            labels=pair.labels,
        )
