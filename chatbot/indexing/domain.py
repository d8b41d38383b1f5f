"""The hand-off gate's domain check, fitted when `chatbot index` builds a version: a
logistic regression on the query vectors that tells the company's own customer questions
(the indexed pairs, as the index embeds them) from the shipped generic off-topic
questions. The top match score cannot tell a bank's "why was my card payment declined?"
from a shop's own question when both use the same words; the direction of the whole
vector can.

Its cut is a quantile of the company's own questions' out-of-fold probabilities (folds
by conversation, so a question is never scored by a model that saw its conversation):
`retrieval.gate_domain_quantile` of them would be handed off, whatever the size of the
history. Below `retrieval.gate_domain_min_pairs` indexed questions nothing is fitted
and the score gate decides alone. Applying the check at search time is
`chatbot.retrieval.scope.ScopeCalibration.outside_domain`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FOLDS = 5


@dataclass(frozen=True)
class DomainFit:
    """A fitted domain check and what it was fitted on."""

    weights: list[float]
    bias: float
    threshold: float  # hand off below this probability of being the company's own question
    quantile: float
    regularisation: float
    questions: int
    conversations: int
    background: int
    background_rejected: float  # out of fold, at the threshold


def fit_domain(
    own_vectors: np.ndarray,
    own_groups: Sequence[int | None],
    background_vectors: np.ndarray,
    *,
    quantile: float,
    regularisation: float,
    min_questions: int,
    seed: int = 0,
) -> DomainFit | None:
    """Fit the domain check on the company's question vectors (with the conversation
    each came from) against the background questions' vectors; None when there are
    fewer than `min_questions` own questions, fewer than FOLDS conversations or no
    background questions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    groups_own = np.array(
        [g if g is not None else -(i + 1) for i, g in enumerate(own_groups)], dtype=np.int64
    )
    if (
        len(own_vectors) < min_questions
        or len(background_vectors) == 0
        or len(set(groups_own.tolist())) < FOLDS
    ):
        return None
    x = np.vstack([own_vectors, background_vectors]).astype(np.float64)
    y = np.r_[np.ones(len(own_vectors)), np.zeros(len(background_vectors))]
    # Each background question is its own group, apart from every conversation's.
    offset = int(groups_own.max()) + 1 if groups_own.size else 0
    groups = np.r_[groups_own, offset + np.arange(len(background_vectors))]

    def model() -> LogisticRegression:
        return LogisticRegression(
            C=regularisation, class_weight="balanced", max_iter=5000, random_state=seed
        )

    out_of_fold = np.zeros(len(y))
    for train, held in GroupKFold(n_splits=FOLDS).split(x, y, groups):
        out_of_fold[held] = model().fit(x[train], y[train]).predict_proba(x[held])[:, 1]
    threshold = float(np.quantile(out_of_fold[y == 1], quantile))
    fitted = model().fit(x, y)
    return DomainFit(
        weights=[round(float(w), 7) for w in fitted.coef_[0]],
        bias=float(fitted.intercept_[0]),
        threshold=threshold,
        quantile=quantile,
        regularisation=regularisation,
        questions=len(own_vectors),
        conversations=len(set(groups_own.tolist())),
        background=len(background_vectors),
        background_rejected=float((out_of_fold[y == 0] < threshold).mean()),
    )
