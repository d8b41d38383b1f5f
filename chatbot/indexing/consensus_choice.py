"""Whether, and with what weights, the dialogue manager chooses among its retrieved
candidates by consensus (`chatbot.dialogue.consensus`), decided by `chatbot index` on the
company's own validation questions.

For each validation question the manager's retrieved candidates are rebuilt as serving
builds them (the best `dialogue.fuse_retrieved` of `dialogue.retrieve_k` hits, with the
BM25 weight chosen for this version) and judged by the critique. Each weight setting's
pick is compared with the agent's real reply (the mean of ROUGE-L and embedding cosine,
the two figures `chatbot eval replies` reports); the judge's own pick is the
baseline. Consensus is switched on with the best setting only where it beats the judge
by more than CONSENSUS_MIN_STDERRS standard errors of the paired differences. Writing
the choice into the version's meta is `builder`'s job; applying it is the manager's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.dialogue.consensus import choose, pairwise_rouge
from chatbot.dialogue.critique import Scorer, evidence_from_hits, penalties
from chatbot.dialogue.settings import DialogueSettings
from chatbot.pairs import PairRecord
from chatbot.retrieval.embedding import embed_contexts, embed_texts
from chatbot.retrieval.retriever import PairRetriever
from chatbot.retrieval.scope import ScopeCalibration
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.retrieval.types import ConsensusChoice
from chatbot.text.rouge import rouge_l

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

EMBEDDING_WEIGHTS = (0.0, 0.5, 1.0)
JUDGE_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
CONSENSUS_MIN_STDERRS = 1.0


def choose_consensus(
    rs: RetrievalSettings,
    ds: DialogueSettings,
    model: SentenceTransformer,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
    val: Sequence[PairRecord],
    lexical_weight: float,
) -> dict[str, Any] | None:
    """The consensus choice for this company (see the module docstring), or None when
    the validation split is indexed itself, there are too few validation questions, or
    the manager compares fewer than three candidates."""
    pool = min(ds.fuse_retrieved, ds.retrieve_k)
    val = [p for p in val if p.target.strip()]
    if "val" in rs.index_splits or not records or len(val) < rs.min_calibration_pairs or pool < 3:
        return None
    retriever = PairRetriever.from_parts(
        rs,
        records,
        vectors,
        model,
        calibration=ScopeCalibration.uncalibrated(rs.oos_threshold),
    )
    scorer = Scorer(ds)
    row_of = {r.id: row for row, r in enumerate(records)}
    queries = embed_contexts(model, [(p.message, p.history) for p in val], rs)
    questions = []  # (candidate rows, judge scores, penalised) per question
    for pair, vector in zip(val, queries):
        hits = retriever.search_vector(
            vector,
            pair.message,
            history=pair.history,
            k=ds.retrieve_k,
            lexical_weight=lexical_weight,
        ).hits
        evidence = evidence_from_hits(pair.message, pair.history, hits)
        fused = hits[:pool]
        critiques = [scorer.score(h.reply_text, evidence, own_pair_id=h.pair_id) for h in fused]
        questions.append(
            (
                [row_of[h.pair_id] for h in fused],
                [c.score for c in critiques],
                [penalties(c.components) > 0 for c in critiques],
            )
        )
    used = sorted({row for rows, _, _ in questions for row in rows})
    reply_vectors = dict(
        zip(used, embed_texts(model, [records[r].target for r in used], batch_size=rs.batch_size))
    )
    truth = embed_texts(model, [p.target for p in val], batch_size=rs.batch_size)
    settings_tried = [(e, j) for e in EMBEDDING_WEIGHTS for j in JUDGE_WEIGHTS]
    quality: dict[tuple[float, float] | None, list[float]] = {
        s: [] for s in [None, *settings_tried]
    }
    for (rows, judged, penalised), pair, true_vector in zip(questions, val, truth):
        if not rows:
            for values in quality.values():
                values.append(0.0)
            continue
        texts = [records[r].target for r in rows]
        candidate_vectors = np.stack([reply_vectors[r] for r in rows])
        fit = [
            0.5 * (rouge_l(text, pair.target) + float(v @ true_vector))
            for text, v in zip(texts, candidate_vectors)
        ]
        judge_pick = min(range(len(rows)), key=lambda i: (penalised[i], -judged[i]))
        quality[None].append(fit[judge_pick])
        matrix = pairwise_rouge(texts)
        for e, j in settings_tried:
            pick, _ = choose(
                texts, candidate_vectors, judged, penalised, ConsensusChoice(e, j), matrix
            )
            quality[(e, j)].append(fit[pick])
    means = {s: float(np.mean(v)) for s, v in quality.items()}
    best = max(settings_tried, key=lambda s: (round(means[s], 6), -s[1], s[0]))
    diff = np.asarray(quality[best]) - np.asarray(quality[None])
    stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
    gain = float(diff.mean())
    enabled = gain > 0 and gain > CONSENSUS_MIN_STDERRS * stderr
    return {
        "enabled": enabled,
        "embedding_weight": best[0],
        "judge_weight": best[1],
        "gain_over_judge": round(gain, 4),
        "stderr": round(stderr, 4),
        "validation_questions": len(val),
        "candidates": pool,
        "fit_of_judge_pick": round(means[None], 4),
        "fit_by_weights": {f"{e:g}/{j:g}": round(means[(e, j)], 4) for e, j in settings_tried},
        "rule": "fit = mean of ROUGE-L and embedding cosine of the sent candidate and the agent's real reply "
        "on validation questions; consensus (embedding weight/judge weight) is used when its best setting "
        f"beats the judge's own pick by more than {CONSENSUS_MIN_STDERRS:g} standard error(s) of the "
        "paired differences",
    }
