"""The training pair as the stages after the store read it: one record, detached from
the database session, for the index (`chatbot.indexing`, `chatbot.retrieval`) and for
training (`chatbot.training`). Reading pairs from the store and choosing which take
part is each reader's job; this module only says what a pair is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# One turn of a pair's context, as the store keeps it: {"role": ..., "text": ...}.
Turn = dict[str, str]


@dataclass(frozen=True)
class PairRecord:
    """One stored training pair: the customer context and the agent's reply to it."""

    id: int
    source: str
    origin: str  # how the pair came in (imported, corrected, ...); "" where not kept
    split: str  # train, val or test; "" where not kept
    context: list[Turn]  # oldest first; the last turn is the customer message
    target: str  # the agent's reply, in slotted form (chatbot.text.specifics) when it has one
    quality: float | None = None
    weight: float = 1.0  # how much the pair counts in training
    content_hash: str = ""  # changes when the pair's text does (the index compares it)
    conversation_id: int | None = None
    turn_index: int | None = None

    @property
    def texts(self) -> list[str]:
        """The context's texts, oldest first (a turn stored as a bare string counts too)."""
        return [_text(turn) for turn in self.context]

    @property
    def message(self) -> str:
        """The customer message the reply answered ("" without context)."""
        return _text(self.context[-1]) if self.context else ""

    @property
    def history(self) -> list[str]:
        """The texts of the earlier turns, oldest first."""
        return [_text(turn) for turn in self.context[:-1]]

    @property
    def context_text(self) -> str:
        return "\n".join(self.texts)


def _text(turn: Turn | str) -> str:
    return str(turn.get("text", "")) if isinstance(turn, dict) else str(turn)


def context_of(message: str, history: list[str]) -> list[Turn]:
    """A context made of bare texts (no roles): what an index version keeps of a pair."""
    return [{"text": text} for text in [*history, message]]


def answers_opening_message(context: Sequence[object] | None) -> bool:
    """The pair's reply answers its conversation's first customer message (its context
    holds at most one customer turn): what a conversation's topic label is about, so
    only such a pair carries it (a follow-up in a conversation that opened off topic may
    well be in the company's domain)."""
    customer_turns = sum(
        1 for t in context or [] if isinstance(t, dict) and t.get("role") == "customer"
    )
    return customer_turns <= 1
