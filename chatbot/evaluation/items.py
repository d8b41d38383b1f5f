"""Which turns are evaluated: every customer turn an agent answered in the test
conversations, read back from a store the test files were imported into (so test text
goes through the same cleaning, merging and PII redaction as the training data, and
the same filters: greeting-only and bare "DM us" replies are no targets), with the
document the agent sent where the source records one. `sample` picks `--limit` turns
deterministically. Producing replies for them is `variants`' job."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbot.store.database import Database


@dataclass(frozen=True)
class EvalItem:
    """One evaluated turn: the conversation so far (oldest first, the customer's message
    last) and the agent's real reply to it."""

    key: str  # "<source>/<conversation id>#<turn>": stable across runs and stores
    source: str
    conversation: str
    turn_index: int
    context: list[dict[str, str]]
    reference: str
    doc_id: str | None = None
    doc_url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.context[-1]["text"]

    @property
    def history(self) -> list[dict[str, str]]:
        return self.context[:-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source,
            "conversation": self.conversation,
            "turn_index": self.turn_index,
            "message": self.message,
            "history_turns": len(self.history),
            "reference": self.reference,
            "doc_id": self.doc_id,
            "doc_url": self.doc_url,
        }


def doc_of(meta: dict[str, Any] | None) -> tuple[str | None, str | None]:
    meta = meta or {}
    doc_id = meta.get("doc_id")
    doc_url = meta.get("doc_url")
    return (str(doc_id) if doc_id not in (None, "") else None, str(doc_url) if doc_url else None)


def load_items(database: Database, splits: Sequence[str]) -> list[EvalItem]:
    """The training pairs of `splits` in `database` as evaluation items, ordered by key."""
    from sqlalchemy import select

    from chatbot.store.schema import Conversation, TrainingPair

    query = (
        select(TrainingPair, Conversation)
        .join(Conversation, TrainingPair.conversation_id == Conversation.id)
        .where(TrainingPair.split.in_(list(splits)))
        .order_by(TrainingPair.id)
    )
    items = []
    with database.session() as session:
        for pair, conversation in session.execute(query):
            context = [
                {"role": str(t.get("role")), "text": str(t.get("text", ""))}
                for t in pair.context or []
                if isinstance(t, dict)
            ]
            if not context or context[-1]["role"] != "customer":
                continue
            ident = (
                conversation.external_id or (conversation.content_hash or str(conversation.id))[:16]
            )
            doc_id, doc_url = doc_of(conversation.meta)
            items.append(
                EvalItem(
                    key=f"{conversation.source}/{ident}#{pair.turn_index}",
                    source=conversation.source,
                    conversation=ident,
                    turn_index=int(pair.turn_index or 0),
                    context=context,
                    reference=pair.target,
                    doc_id=doc_id,
                    doc_url=doc_url,
                )
            )
    items.sort(key=lambda item: (item.source, item.conversation, item.turn_index))
    return items


def sample(items: Sequence[EvalItem], limit: int | None, *, seed: int = 0) -> list[EvalItem]:
    """At most `limit` items, chosen by a hash of (seed, key): the same files, limit and
    seed always give the same turns, whatever order the files list them in, and a
    smaller limit gives a subset of a larger one. Returned in key order."""
    if limit is None or limit >= len(items):
        return list(items)

    def rank(item: EvalItem) -> str:
        return hashlib.sha256(f"{seed}\x1f{item.key}".encode()).hexdigest()

    chosen = sorted(items, key=rank)[:limit]
    return sorted(chosen, key=lambda item: (item.source, item.conversation, item.turn_index))
