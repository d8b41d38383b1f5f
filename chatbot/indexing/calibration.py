"""What `chatbot index` chooses for a version on the company's own validation
questions before writing it: the out-of-scope gate (`calibrate_index_gate`, the cut of
`gate.calibrate_gate`) and the weight of BM25 in the fused score
(`choose_fusion`). Both search an in-memory `PairRetriever` over the version's pairs,
exactly as serving will. Writing the version is `builder`'s job; applying the choices
at search time is the retriever's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.dialogue.settings import DialogueSettings
from chatbot.indexing.domain import fit_domain
from chatbot.indexing.gate import background_questions, calibrate_gate
from chatbot.pairs import PairRecord, answers_opening_message
from chatbot.retrieval.embedding import embed_contexts, embed_texts
from chatbot.retrieval.retriever import PairRetriever
from chatbot.retrieval.scope import ScopeCalibration
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.retrieval.stored_pairs import load_pairs

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chatbot.store.database import Database

log = logging.getLogger(__name__)

CALIBRATION_PAIRS = 500


def pair_topics(database: Database, pair_ids: Iterable[int] | None = None) -> dict[int, str | None]:
    """The `topic` label of each of these pairs (None: of every pair in the store): their
    conversation's, for the pair that answers its opening message
    (`pairs.answers_opening_message`, as the dialogue manager reads it); None for the
    other pairs and unlabelled ones."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    columns = select(TrainingPair.id, TrainingPair.labels, TrainingPair.context)
    if pair_ids is None:
        queries = [columns]
    else:
        ids = sorted(set(pair_ids))
        queries = [
            columns.where(TrainingPair.id.in_(ids[start : start + 500]))
            for start in range(0, len(ids), 500)
        ]
    topics: dict[int, str | None] = {}
    with database.session() as session:
        for query in queries:
            for pair_id, labels, context in session.execute(query):
                labelled = isinstance(labels, dict) and answers_opening_message(context)
                topics[pair_id] = labels.get("topic") if labelled else None
    return topics


def gate_scores(
    rs: RetrievalSettings,
    retriever: PairRetriever,
    questions: Sequence[tuple[str, Sequence[str]]],
    vectors: np.ndarray | None = None,
) -> tuple[np.ndarray, list[int | None]]:
    """The gate's raw score (`retrieval.gate_feature`) of each (message, history) and
    the pair id of its top hit (None when nothing was found); `vectors`: the questions'
    query vectors when the caller has them already."""
    if not questions:
        return np.zeros(0), []
    if vectors is None:
        vectors = embed_contexts(retriever.model, [(m, list(h)) for m, h in questions], rs)
    scores, tops = [], []
    for (message, history), vector in zip(questions, vectors):
        result = retriever.search_vector(vector, message, history=list(history), k=1)
        scores.append(result.scope_score if result.scope_score is not None else 0.0)
        tops.append(result.hits[0].pair_id if result.hits else None)
    return np.asarray(scores, dtype=np.float64), tops


# Lexical weights tried on the company's validation questions (`choose_fusion`).
FUSION_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)
FUSION_MIN_STDERRS = 1.0


def validation_sample(database: Database) -> list[PairRecord]:
    val = load_pairs(database, ["val"])
    if len(val) > CALIBRATION_PAIRS:
        rng = np.random.default_rng(0)
        val = [val[i] for i in sorted(rng.choice(len(val), CALIBRATION_PAIRS, replace=False))]
    return val


def choose_fusion(
    rs: RetrievalSettings,
    database: Database,
    model: SentenceTransformer,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
) -> dict[str, Any] | None:
    """The weight of BM25 in the fused score for this company, chosen on its own
    validation questions: for each weight in FUSION_WEIGHTS, how close (embedding
    cosine) the top retrieved reply is to the agent's real reply. The best weight
    replaces the configured `retrieval.lexical_weight` only where it beats it by more
    than FUSION_MIN_STDERRS standard errors of the paired differences (a weight set
    explicitly, in the config file or CHATBOT_RETRIEVAL__LEXICAL_WEIGHT, always wins at
    search time). None without enough validation questions."""
    if "val" in rs.index_splits or not records:
        return None
    val = [p for p in validation_sample(database) if p.target.strip()]
    if len(val) < rs.min_calibration_pairs:
        return None
    retriever = PairRetriever.from_parts(
        rs,
        records,
        vectors,
        model,
        calibration=ScopeCalibration.uncalibrated(rs.oos_threshold),
    )
    queries = embed_contexts(model, [(p.message, p.history) for p in val], rs)
    weights = sorted({*FUSION_WEIGHTS, rs.lexical_weight})
    row_of = {r.id: row for row, r in enumerate(records)}
    tops: dict[float, list[int]] = {}
    for weight in weights:
        rows = []
        for pair, vector in zip(val, queries):
            hits = retriever.search_vector(
                vector, pair.message, history=pair.history, k=1, lexical_weight=weight
            ).hits
            rows.append(row_of[hits[0].pair_id] if hits else -1)
        tops[weight] = rows
    used = sorted({r for rows in tops.values() for r in rows if r >= 0})
    reply_vectors = dict(
        zip(used, embed_texts(model, [records[r].target for r in used], batch_size=rs.batch_size))
    )
    truth = embed_texts(model, [p.target for p in val], batch_size=rs.batch_size)
    similarity = {
        w: np.array([float(reply_vectors[r] @ t) if r >= 0 else 0.0 for r, t in zip(rows, truth)])
        for w, rows in tops.items()
    }
    best = max(
        weights, key=lambda w: (round(float(similarity[w].mean()), 6), -abs(w - rs.lexical_weight))
    )
    diff = similarity[best] - similarity[rs.lexical_weight]
    stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
    gain = float(diff.mean())
    chosen = best if gain > 0 and gain > FUSION_MIN_STDERRS * stderr else rs.lexical_weight
    return {
        "lexical_weight": chosen,
        "configured_lexical_weight": rs.lexical_weight,
        "best_weight": best,
        "gain_over_configured": round(gain, 4),
        "stderr": round(stderr, 4),
        "validation_questions": len(val),
        "reply_similarity_by_weight": {
            str(w): round(float(similarity[w].mean()), 4) for w in weights
        },
        "rule": f"embedding cosine of the top retrieved reply and the agent's real reply on validation questions; "
        f"the best weight replaces the configured one when it gains more than {FUSION_MIN_STDERRS:g} standard "
        "error(s) of the paired differences",
    }


@dataclass(frozen=True)
class OffTopic:
    """The off-topic questions the gate is calibrated with (shipped and the company's
    own, `retrieval.gate_background`, `retrieval.gate_background_file`), and their
    vectors as queries: embedded once per index build, for the gate and for the version's
    `offtopic_vectors.npy`."""

    questions: list[str]
    vectors: np.ndarray


def embed_offtopic(rs: RetrievalSettings, model: SentenceTransformer) -> OffTopic:
    """The off-topic questions of `rs`, embedded as the index embeds queries."""
    questions = background_questions(rs.gate_background_file, shipped=rs.gate_background)
    vectors = (
        embed_contexts(model, [(q, []) for q in questions], rs)
        if questions
        else np.zeros((0, 0), dtype=np.float32)
    )
    return OffTopic(questions, vectors)


def _negative_vectors(
    rs: RetrievalSettings,
    model: SentenceTransformer,
    own: list[tuple[str, list[str]]],
    offtopic: OffTopic,
) -> np.ndarray:
    """The gate's negatives' vectors: the company's own out-of-scope questions (embedded
    here), then the off-topic ones (embedded already)."""
    parts = [embed_contexts(model, own, rs)] if own else []
    if offtopic.questions:
        parts.append(offtopic.vectors)
    return np.vstack(parts) if parts else np.zeros((0, 0))


def calibrate_index_gate(
    rs: RetrievalSettings,
    ds: DialogueSettings,
    database: Database,
    model: SentenceTransformer,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
    offtopic: OffTopic,
) -> dict[str, Any] | None:
    """The out-of-scope gate (`gate.calibrate_gate`), chosen on
    validation questions (never test) as positives and the off-topic questions
    (`offtopic`, plus validation questions the company labelled out of scope) as
    negatives; a negative whose best match is a pair labelled out of scope or hand-off
    (`dialogue.out_of_scope_topics`, `dialogue.handoff_topics`) is handed off by the
    dialogue manager whatever the cut. None when nothing is indexed, the validation
    split is indexed itself, or there are no validation pairs at all."""
    if "val" in rs.index_splits or not records:
        return None
    val = validation_sample(database)
    if not val:
        log.warning(
            "out-of-scope gate not calibrated: no validation pairs; using retrieval.oos_threshold"
        )
        return None
    handing_off = set(ds.out_of_scope_topics) | set(ds.handoff_topics)
    val_topics = pair_topics(database, [p.id for p in val])
    own_out = [p for p in val if val_topics.get(p.id) in ds.out_of_scope_topics]
    inside = [p for p in val if val_topics.get(p.id) not in handing_off]

    probe = replace(ScopeCalibration.uncalibrated(rs.oos_threshold), feature=rs.gate_feature)
    retriever = PairRetriever.from_parts(rs, records, vectors, model, calibration=probe)
    pos, pos_tops = gate_scores(rs, retriever, [(p.message, p.history) for p in inside])
    own_negatives = [(p.message, p.history) for p in own_out]
    negatives = own_negatives + [(q, []) for q in offtopic.questions]
    neg_vectors = _negative_vectors(rs, model, own_negatives, offtopic)
    neg, neg_tops = gate_scores(rs, retriever, negatives, neg_vectors)
    # Every top hit is an indexed pair: one lookup serves them and the domain check.
    top_topics = pair_topics(database, [r.id for r in records])
    neg_by_topic = np.array(
        [t is None or top_topics.get(t) in handing_off for t in neg_tops], dtype=bool
    )
    # Words the history never uses: used only where they spare the company's own questions.
    pos_named = np.array([retriever.terms_unknown(p.message) for p in inside], dtype=bool)
    names_rate = float(pos_named.mean()) if pos_named.size else 0.0
    use_names = (
        rs.gate_unknown_terms
        and pos_named.size >= rs.min_calibration_pairs
        and names_rate <= rs.gate_unknown_terms_max
    )
    neg_questions = [p.message for p in own_out] + offtopic.questions
    neg_named = (
        np.array([retriever.terms_unknown(q) for q in neg_questions], dtype=bool)
        if use_names
        else np.zeros(len(neg_questions), bool)
    )
    calibration = calibrate_gate(
        pos[~pos_named] if use_names else pos,
        neg,
        negatives_handled=neg_by_topic | neg_named,
        prior_threshold=rs.gate_prior_threshold,
        prior_strength=rs.gate_prior_strength,
        min_positives=rs.min_calibration_pairs,
        resamples=rs.gate_resamples,
        feature=rs.gate_feature,
        n_background=len(offtopic.questions),
        unknown_terms=use_names,
    )
    domain = (
        _fit_domain_check(
            rs, records, top_topics, vectors, neg_vectors[len(own_out) :], handing_off
        )
        if rs.gate_domain
        else None
    )
    if domain is not None:
        calibration = replace(
            calibration,
            domain_weights=domain["weights"],
            domain_bias=domain["bias"],
            domain_threshold=domain["threshold"],
        )
    result = calibration.to_dict()
    result["domain"] = (
        {k: v for k, v in domain.items() if k != "weights"} if domain is not None else None
    )
    result["method"] = (
        f"top {'dense cosine' if rs.gate_feature == 'dense' else 'fused score'}; positives: in-domain "
        "validation questions; negatives: shipped off-topic questions and validation questions labelled "
        "out of scope; Youden's J cut pulled towards the prior threshold; 95% percentile-bootstrap interval"
    )
    result["prior_strength"] = rs.gate_prior_strength
    result["validation_questions"] = len(val)
    result["own_out_of_scope"] = len(own_out)
    result["positives_handed_off_by_topic"] = int(
        sum(t is not None and top_topics.get(t) in handing_off for t in pos_tops)
    )
    result["negatives_handed_off_by_topic"] = int(neg_by_topic.sum())
    result["unknown_terms_validation_rate"] = round(names_rate, 4)
    result["negatives_caught_by_unknown_terms"] = int((neg_named & ~neg_by_topic).sum())
    return result


def _fit_domain_check(
    rs: RetrievalSettings,
    records: Sequence[PairRecord],
    topics: dict[int, str | None],
    vectors: np.ndarray,
    background_vectors: np.ndarray,
    handing_off: set[str],
) -> dict[str, Any] | None:
    """The domain check (`domain.fit_domain`) on the indexed questions, as the index
    embeds them, against the off-topic questions' vectors; pairs whose topic (`topics`,
    by pair id) is handed off by design are left out. None when there is too little to
    fit it on."""
    own = [row for row, r in enumerate(records) if topics.get(r.id) not in handing_off]
    if not own or len(background_vectors) == 0:
        return None
    fit = fit_domain(
        vectors[own],
        [records[row].conversation_id for row in own],
        background_vectors,
        quantile=rs.gate_domain_quantile,
        regularisation=rs.gate_domain_regularisation,
        min_questions=rs.gate_domain_min_pairs,
    )
    if fit is None:
        log.info(
            "domain check not fitted: %d indexed questions (retrieval.gate_domain_min_pairs %d)",
            len(own),
            rs.gate_domain_min_pairs,
        )
        return None
    return {
        "weights": fit.weights,
        "bias": fit.bias,
        "threshold": round(fit.threshold, 6),
        "quantile": fit.quantile,
        "regularisation": fit.regularisation,
        "questions": fit.questions,
        "conversations": fit.conversations,
        "background": fit.background,
        "background_rejected_out_of_fold": round(fit.background_rejected, 4),
        "method": "logistic regression on the query vectors, indexed questions vs the off-topic ones; "
        "the cut is the quantile of the indexed questions' out-of-fold probabilities (folds by conversation)",
    }
