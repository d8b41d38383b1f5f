"""The judge of candidate replies for one message: the learned ranker's probability that a
reply fits the conversation (less the critique's penalties) when one serves, else the
hand-set critique (`chatbot.dialogue.critique`); and the decision thresholds on the
ranker's scale.

Scoring only: which candidates exist is the stages' job, which one is sent
`chatbot.dialogue.stages.decide`'s."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from chatbot.dialogue.critique import Evidence, Scorer, penalties
from chatbot.dialogue.records import Critique
from chatbot.dialogue.settings import DialogueSettings
from chatbot.errors import ChatbotError

log = logging.getLogger(__name__)


@runtime_checkable
class FitScorer(Protocol):
    """A learned ranker (`chatbot.ranking.model.Ranker`): the probability that each
    candidate fits the conversation. It may also carry the `meta` its version recorded."""

    def score(self, context: Sequence[dict[str, str]], candidates: Sequence[str]) -> list[float]:
        """One probability per candidate."""
        ...


@runtime_checkable
class FitScorerSource(Protocol):
    """Gives the ranker serving now (`chatbot.ranking.model.RankerSource`), or None."""

    def get(self) -> FitScorer | None:
        """The ranker to use for this message, or None."""
        ...


class FixedRanker:
    """A source that always gives the one ranker it was built with."""

    def __init__(self, ranker: FitScorer):
        self.ranker = ranker

    def get(self) -> FitScorer:
        return self.ranker


def ranker_source(ranker: FitScorer | FitScorerSource | None) -> FitScorerSource | None:
    """A ranker, or a source whose get() gives the promoted one, as a source."""
    if ranker is None or isinstance(ranker, FitScorerSource):
        return ranker
    return FixedRanker(ranker)


def serving_ranker(source: FitScorerSource | None) -> FitScorer | None:
    """The ranker serving now, or None (none trained and kept, or it cannot be loaded)."""
    if source is None:
        return None
    try:
        return source.get()
    except ChatbotError as exc:
        log.warning("the ranker is not available (%s); scoring with the critique", exc)
        return None


class Judge:
    """Scores candidates for one message. With a ranker, a candidate's score is the
    ranker's probability that it fits the conversation, less the critique's penalties
    for facts, links or contact details found in no evidence; the critique's parts and
    problems are kept beside it. Without one, the critique's hand-set score."""

    def __init__(
        self,
        scorer: Scorer,
        evidence: Evidence,
        ranker: FitScorer | None,
        context: list[dict[str, str]],
    ):
        self.scorer = scorer
        self.evidence = evidence
        self.ranker = ranker
        self.context = context

    def score_many(
        self, texts: Sequence[str], own_pair_ids: Sequence[int | None] = ()
    ) -> list[Critique]:
        own = list(own_pair_ids) + [None] * (len(texts) - len(own_pair_ids))
        critiques = [self.scorer.score(t, self.evidence, own_pair_id=o) for t, o in zip(texts, own)]
        if self.ranker is None or not texts:
            return critiques
        try:
            probabilities = self.ranker.score(self.context, list(texts))
        except Exception as exc:
            log.warning(
                "the ranker failed (%s: %s); scoring with the critique for this message",
                type(exc).__name__,
                exc,
            )
            self.ranker = None
            return critiques
        for critique, p, text in zip(critiques, probabilities, texts):
            penalty = penalties(critique.components)
            critique.components = {
                **critique.components,
                "critique": critique.score,
                "ranker": round(float(p), 4),
            }
            critique.score = round(max(0.0, float(p) - penalty), 4) if text.strip() else 0.0
        return critiques

    def thresholds(self, settings: DialogueSettings) -> DialogueSettings:
        """The decision thresholds on the ranker's scale (see `ranker_thresholds`), or the settings' own."""
        if self.ranker is None:
            return settings
        found = ranker_thresholds(settings, getattr(self.ranker, "meta", {}) or {})
        return settings if found is None else settings.model_copy(update=found)


def ranker_thresholds(settings: DialogueSettings, meta: dict[str, Any]) -> dict[str, float] | None:
    """Hand-off and answer thresholds for a ranker, from the probabilities its picks got
    on the validation questions (its meta.json): hand off below the
    `ranker_handoff_quantile` of them, send unreviewed from the `ranker_answer_quantile`.
    None when the ranker recorded none."""
    picks = (
        meta.get("val_pick_probability") or {}
    )  # keyed by str(quantile), as `chatbot.training.ranker` writes them

    def quantile(q: float) -> float | None:
        value = picks.get(str(q))
        return float(value) if isinstance(value, (int, float)) else None

    handoff, answer = (
        quantile(settings.ranker_handoff_quantile),
        quantile(settings.ranker_answer_quantile),
    )
    if handoff is None or answer is None:
        return None
    return {
        "handoff_threshold": round(min(handoff, answer), 4),
        "answer_threshold": round(answer, 4),
    }
