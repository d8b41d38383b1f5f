"""Choose: which of the screened candidates is sent. Within an answer class, the answer
whose past question is nearest to this one (`nearest`); otherwise the candidate that
agrees most with the others, with the judge's score beside it
(`chatbot.dialogue.consensus`), where `chatbot index` found that this pays for the
company, else the judge's best. Also what a winner cites, and what the reply keeps of
the candidates that competed.

Where its job ends: the confidence and the decision are the decide stage's."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from chatbot.dialogue import consensus
from chatbot.dialogue.critique import penalties
from chatbot.dialogue.records import Candidate, KeptCandidate, ScoredCandidate
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.turn import Turn
from chatbot.retrieval.types import Citation, Hit, Retriever
from chatbot.text.measures import token_f1

REPLY_VECTOR_CACHE = 4096  # candidate reply vectors kept for consensus (1.5 KB each)


def nearest(candidates: list[Candidate], hits: Sequence[Hit]) -> Candidate:
    """Within the question's answer class, the answer whose past question (and reply)
    is closest to this one: the class says what it is about, the nearest pair which
    of its answers (consensus would send the class's most common answer to every
    question of it). A candidate with the critique's penalties only when all have them."""
    closeness = {
        h.pair_id: float(h.scores.get("dense", h.score)) + float(h.scores.get("answer", 0.0))
        for h in hits
    }
    return max(
        candidates,
        key=lambda c: (
            penalties(c.critique.components) == 0,
            closeness.get(c.pair_id, -1.0) if c.pair_id is not None else -1.0,
            c.score,
        ),
    )


def scored(candidates: list[Candidate]) -> list[KeptCandidate]:
    """What a reply keeps of the candidates that competed: each with its score, best first."""
    return [
        ScoredCandidate(c.origin, c.round, c.pair_id, c.score, c.text, c.critique.components)
        for c in sorted(candidates, key=lambda c: -c.score)
    ]


class Choose:
    def __init__(self, settings: DialogueSettings, retriever: Retriever, evidence_k: int):
        self.settings = settings
        self.retriever = retriever
        self.evidence_k = evidence_k
        self.vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the web app answers on several threads

    def run(self, turn: Turn, candidates: list[Candidate]) -> Candidate:
        """The consensus choice where the index chose it, else the judge's best. The
        confidence stays the judge's score of it."""
        choice = getattr(self.retriever, "consensus", None) if self.settings.consensus else None
        if choice is None or len(candidates) < consensus.MIN_CANDIDATES:
            return max(candidates, key=lambda c: c.score)
        with turn.clock.stage("consensus"):
            texts = [c.text for c in candidates]
            best, utility = consensus.choose(
                texts,
                self._reply_vectors(texts),
                [c.score for c in candidates],
                [penalties(c.critique.components) > 0 for c in candidates],
                choice,
            )
        for candidate, value in zip(candidates, utility, strict=True):
            candidate.critique.components = {
                **candidate.critique.components,
                "consensus": round(float(value), 4),
            }
        return candidates[best]

    def citations(self, winner: Candidate, hits: Sequence[Hit]) -> list[Citation]:
        """A retrieved winner cites itself; a draft cites the past answers it agrees with
        (or, failing that, those it was shown)."""
        if winner.pair_id is not None:
            return [h.citation for h in hits if h.pair_id == winner.pair_id]
        shown = hits[: max(self.evidence_k, 1)]
        agreeing = [h for h in shown if token_f1(winner.text, h.reply_text) >= 0.2]
        return [h.citation for h in (agreeing or shown)]

    def _reply_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The embedder's unit vectors of candidate replies; past answers recur from
        message to message, so the last REPLY_VECTOR_CACHE are kept."""
        from chatbot.retrieval.embedding import embed_texts

        model = self.retriever.model  # type: ignore[attr-defined]
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        embedded: Sequence[np.ndarray] = (  # outside the lock: embedding is the slow part
            list(embed_texts(model, missing)) if missing else []
        )
        with self._lock:
            self.vectors.update(zip(missing, embedded, strict=True))
            found = [self.vectors[t] for t in texts]
            for text in texts:
                self.vectors.move_to_end(text)
            while len(self.vectors) > REPLY_VECTOR_CACHE:
                self.vectors.popitem(last=False)
        return np.stack(found)
