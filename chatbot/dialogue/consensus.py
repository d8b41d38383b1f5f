"""Choosing among candidate replies by consensus (minimum Bayes risk): the reply that
agrees most with the other candidates is the one most likely to agree with the reply an
agent would write, since every candidate is a noisy guess at it.

A candidate's consensus is its expected utility against the other candidates,
    U(i) = mean over j != i of  w * cos(e_i, e_j) + (1 - w) * ROUGE-L(c_i, c_j)
(`w` = `embedding_weight`, `e` the embedder's unit vectors). The selection score adds
the judge's score (the critique, or the learned ranker while one serves), both
standardised over the candidates of one message:
    S(i) = z(U)(i) + judge_weight * z(judge)(i)
A candidate whose judge found facts or contact details in no evidence (a penalty) never
beats one without. Both weights are chosen per company on its validation questions by
`chatbot index` (`chatbot.indexing.consensus_choice`), which also decides whether
consensus is used at all, and records them in the index version's meta, which the
retriever carries (`chatbot.retrieval.types.ConsensusChoice`); this module only computes.
Which candidates compete, and what confidence the decision reads, is the dialogue
manager's (`chatbot.dialogue.stages.choose`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chatbot.retrieval.types import ConsensusChoice
from chatbot.text.rouge import rouge_l

MIN_CANDIDATES = 3  # with fewer there is no majority to agree with: the judge decides


def warm() -> None:
    """Load the ROUGE-L scorer now (its first use imports nltk: 1.5 s or more), so that a
    serving process does not make its first customer wait for it."""
    rouge_l("warm", "warm")


def pairwise_rouge(texts: Sequence[str]) -> np.ndarray:
    """Symmetrised ROUGE-L F between every two texts (0 on the diagonal)."""
    n = len(texts)
    matrix = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i, j] = matrix[j, i] = rouge_l(texts[i], texts[j])
    return matrix


def expected_utility(rouge: np.ndarray, vectors: np.ndarray, embedding_weight: float) -> np.ndarray:
    """U(i) for every candidate, from the pairwise ROUGE-L matrix and unit vectors."""
    n = rouge.shape[0]
    if n < 2:
        return np.zeros(n)
    utility = embedding_weight * (vectors @ vectors.T) + (1.0 - embedding_weight) * rouge
    np.fill_diagonal(utility, 0.0)
    return np.asarray(utility.sum(axis=1) / (n - 1), dtype=np.float64)


def _standardised(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


def selection_scores(
    utility: np.ndarray, judge_scores: Sequence[float] | np.ndarray, judge_weight: float
) -> np.ndarray:
    """S(i) (see the module docstring), before the penalty rule."""
    judge = np.asarray(judge_scores, dtype=np.float64)
    return _standardised(utility) + judge_weight * _standardised(judge)


def choose(
    texts: Sequence[str],
    vectors: np.ndarray,
    judge_scores: Sequence[float],
    penalised: Sequence[bool],
    choice: ConsensusChoice,
    rouge: np.ndarray | None = None,
) -> tuple[int, np.ndarray]:
    """(index of the candidate to send, each candidate's consensus U). Fewer than
    MIN_CANDIDATES candidates: the judge's best. `rouge`: the pairwise matrix when the
    caller has it."""
    n = len(texts)
    judge = np.asarray(judge_scores, dtype=np.float64)
    if n < MIN_CANDIDATES:
        order = sorted(range(n), key=lambda i: (penalised[i], -judge[i]))
        return (order[0] if order else -1), np.zeros(n)
    rouge = pairwise_rouge(texts) if rouge is None else rouge
    utility = expected_utility(rouge, vectors, choice.embedding_weight)
    selection = selection_scores(utility, judge, choice.judge_weight)
    best = min(range(n), key=lambda i: (penalised[i], -selection[i], -judge[i]))
    return best, utility
