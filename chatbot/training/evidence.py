"""The retrieved past answers that go into each training prompt, so that training sees
what serving will see. A run takes evidence through one callable,
`evidence_for(pair) -> list[str]`; this module builds it from the project's retriever
(excluding the pair itself) and computes it once per pair. Retrieval itself is
`chatbot.retrieval`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from chatbot.errors import ChatbotError
from chatbot.pairs import PairRecord

if TYPE_CHECKING:
    from chatbot.config import DataPaths
    from chatbot.retrieval.settings import RetrievalSettings
    from chatbot.retrieval.types import Retriever
    from chatbot.store.database import Database

log = logging.getLogger(__name__)

EvidenceFn = Callable[[PairRecord], list[str]]


def retriever_evidence(retriever: Retriever, k: int) -> EvidenceFn:
    """Evidence from a `chatbot.retrieval.types.Retriever`: the replies of the best
    hits for the pair's last customer message and its earlier turns, never the pair itself."""

    def evidence_for(pair: PairRecord) -> list[str]:
        if k <= 0 or not pair.context:
            return []
        query = pair.context[-1]["text"]
        history = [t["text"] for t in pair.context[:-1]]
        result = retriever.search(query, history=history, k=k, exclude_pair_ids=[pair.id])
        return [hit.reply_text for hit in result.hits if hit.pair_id != pair.id][:k]

    return evidence_for


def open_evidence(
    paths: DataPaths, rs: RetrievalSettings, k: int, database: Database
) -> tuple[EvidenceFn | None, str]:
    """The evidence callable (the replies of the `k` best hits, `prompt.evidence_k`) from
    the installed retriever, or None and the reason why training goes without retrieved
    context (no retriever module, no index yet)."""
    if k == 0:
        return None, "prompt.evidence_k is 0: training without retrieved context"
    try:
        from chatbot.retrieval.retriever import open_retriever
    except ImportError:
        return (
            None,
            "no retriever is installed (chatbot.retrieval.retriever): training without retrieved context",
        )
    try:
        retriever = open_retriever(paths, rs, database)
    except ChatbotError as exc:
        return (
            None,
            f"no retrieval index ({exc}): training without retrieved context; run `chatbot index` first to train with it",
        )
    return retriever_evidence(retriever, k), "retrieved context from the current index"


def compute_evidence(
    pairs: Iterable[PairRecord], evidence_for: EvidenceFn | None
) -> dict[int, list[str]]:
    """Evidence for every pair, computed once (it does not change between epochs)."""
    if evidence_for is None:
        return {p.id: [] for p in pairs}
    return {p.id: list(evidence_for(p)) for p in pairs}
