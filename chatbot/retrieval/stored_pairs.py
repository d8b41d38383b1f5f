"""The store's training pairs as the index sees them: the pairs of some splits as
`PairRecord`s, their (id, content hash) sets, and how two such sets differ. Serving
uses the hashes to refuse an index whose citations would be wrong; `chatbot.indexing`
uses all of it to decide what to (re)build. Which pairs training uses is
`chatbot.training.data`'s job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from chatbot.pairs import PairRecord

if TYPE_CHECKING:
    from chatbot.store.database import Database
    from chatbot.store.schema import TrainingPair


def pair_set_hash(pairs: Iterable[tuple[int, str]]) -> str:
    """One hash of a set of (pair id, content hash)."""
    digest = hashlib.sha256()
    for pair_id, content_hash in sorted(pairs):
        digest.update(f"{pair_id}:{content_hash}\n".encode())
    return digest.hexdigest()


def record_of(row: TrainingPair) -> PairRecord:
    """A stored pair as the index keeps it: the slotted reply (no other customer's name
    or order number) once the importer made one."""
    return PairRecord(
        id=row.id,
        source=row.source,
        origin=row.origin,
        split=row.split,
        context=list(row.context or []),
        target=row.target_slotted if row.target_slotted is not None else row.target,
        quality=row.quality,
        content_hash=row.content_hash,
        conversation_id=row.conversation_id,
        turn_index=row.turn_index,
    )


def load_pairs(
    database: Database, splits: Sequence[str], *, only_ids: Iterable[int] | None = None
) -> list[PairRecord]:
    """The pairs of `splits`, ordered by id."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    query = (
        select(TrainingPair).where(TrainingPair.split.in_(list(splits))).order_by(TrainingPair.id)
    )
    with database.session() as session:
        rows = session.scalars(query).all()
        wanted = set(only_ids) if only_ids is not None else None
        return [record_of(r) for r in rows if wanted is None or r.id in wanted]


def load_pair_hashes(database: Database, splits: Sequence[str]) -> dict[int, str]:
    """{pair id: content hash} of the pairs of `splits`."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    query = select(TrainingPair.id, TrainingPair.content_hash).where(
        TrainingPair.split.in_(list(splits))
    )
    with database.session() as session:
        return {pair_id: content_hash for pair_id, content_hash in session.execute(query)}


def compare_pair_sets(
    indexed: dict[int, str], stored: dict[int, str]
) -> tuple[list[int], list[int], list[int]]:
    """(new ids, deleted ids, changed ids) of the store relative to the index."""
    new = sorted(set(stored) - set(indexed))
    deleted = sorted(set(indexed) - set(stored))
    changed = sorted(i for i in set(indexed) & set(stored) if indexed[i] != stored[i])
    return new, deleted, changed
