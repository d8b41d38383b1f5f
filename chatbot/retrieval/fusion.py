"""Feature fusion: one score per candidate from its dense cosine and its BM25 score.

    fused = (1 - lexical_weight) * cosine + lexical_weight * bm25 / max_bm25(query)

BM25 is divided by the query's best BM25 score so both signals live in [0, 1]-ish
ranges whatever the query's length. Reciprocal-rank fusion is offered for
comparison (`rrf`). Picking candidates and building hits is the retriever's job.
"""

from __future__ import annotations

import numpy as np


def normalise_lexical(scores: np.ndarray) -> np.ndarray:
    top = float(scores.max()) if scores.size else 0.0
    return scores / top if top > 0 else np.zeros_like(scores)


def weighted(
    dense: np.ndarray, lexical_normalised: np.ndarray, lexical_weight: float
) -> np.ndarray:
    return (1.0 - lexical_weight) * dense + lexical_weight * lexical_normalised


def rrf(rank_lists: list[np.ndarray], n: int, k: int = 60) -> np.ndarray:
    """Reciprocal-rank fusion over `n` items: sum of 1 / (k + rank) over the lists
    (each an array of item positions, best first)."""
    out = np.zeros(n, dtype=np.float32)
    for ranks in rank_lists:
        out[ranks] += 1.0 / (k + np.arange(1, len(ranks) + 1))
    return out


def candidate_rows(
    dense_rows: np.ndarray, lexical_scores: np.ndarray, n_lexical: int
) -> np.ndarray:
    """Union of the dense candidates and the best `n_lexical` BM25 rows with a score > 0."""
    rows = [dense_rows]
    if lexical_scores.size and n_lexical > 0:
        n = min(n_lexical, lexical_scores.size)
        top = np.argpartition(-lexical_scores, n - 1)[:n]
        rows.append(top[lexical_scores[top] > 0])
    return np.unique(np.concatenate(rows).astype(np.int64))
