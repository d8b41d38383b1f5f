"""The project's one ROUGE-L: `rouge-score`'s (F-measure, Porter stemming), used while
serving (consensus among candidate replies), by the ranker's validation, by evaluation
and by the benchmarks, so that their figures compare. The other figures of a reply
(BLEU, embedding cosine, latency) are evaluation's (`chatbot.evaluation.metrics`)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer


@lru_cache(maxsize=1)
def _rouge_l_scorer() -> RougeScorer:
    from rouge_score import rouge_scorer  # imported on first use: it pulls in nltk (about 1.5 s)

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F-measure (0-1) of `candidate` against `reference`; 0 when either is empty.

    The project's one ROUGE-L: `rouge-score` with its own tokeniser (lower case, runs of
    ASCII letters and digits) and Porter stemming. Evaluation (`chatbot eval replies`),
    the ranker's validation and the benchmarks all call this, so their figures compare."""
    if not candidate.strip() or not reference.strip():
        return 0.0
    return float(_rouge_l_scorer().score(reference, candidate)["rougeL"].fmeasure)
