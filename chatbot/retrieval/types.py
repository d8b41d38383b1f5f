"""The records and the interface that retrieval offers to training and dialogue.

`Retriever.search` is all the rest of the product needs; how the index is built,
fused and calibrated stays inside `chatbot.retrieval`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Citation:
    """Where a retrieved answer came from, in a form a reply can show."""

    pair_id: int
    conversation_id: int | None
    turn_index: int | None
    source: str
    score: float
    snippet: str


@dataclass(frozen=True)
class Hit:
    """One retrieved training pair: the customer context it answered and the agent's reply."""

    pair_id: int
    score: float
    context_text: str
    reply_text: str
    citation: Citation
    scores: dict[str, float] = field(default_factory=dict)  # per-signal scores before fusion


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    out_of_scope: bool  # True when nothing indexed fits the query well enough
    in_scope_score: float  # calibrated, higher = more likely that a hit fits
    scope_score: float | None = None  # the raw score the out-of-scope gate read (its feature)
    outside_domain: bool = False  # the gate's domain check: not the company's kind of question
    # Best cosine to an off-topic question minus best to an indexed one (scope.offtopic_margin).
    offtopic_margin: float | None = None


@dataclass(frozen=True)
class ConsensusChoice:
    """The consensus weights `chatbot index` chose for a company (its meta.json
    `fusion.consensus`), which a retriever carries for the dialogue manager
    (`chatbot.dialogue.consensus` applies them)."""

    embedding_weight: float
    judge_weight: float

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> ConsensusChoice | None:
        """The choice recorded in an index version's fusion meta, or None when consensus
        was not chosen (too few validation questions, or it did not beat the judge)."""
        if not isinstance(meta, Mapping) or not meta.get("enabled"):
            return None
        return cls(float(meta["embedding_weight"]), float(meta["judge_weight"]))


class Retriever(Protocol):
    def search(
        self,
        query: str,
        *,
        history: Sequence[str] = (),
        k: int = 5,
        exclude_pair_ids: Sequence[int] = (),
    ) -> SearchResult:
        """Best past answers for `query`, the customer's latest message; `history` holds
        the earlier turns of the conversation, oldest first, as plain text."""
        ...
