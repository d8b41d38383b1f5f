"""Fitting a version's answer classes and question–answer fit model, when `chatbot index`
builds it (what they are and how they are served: `chatbot.retrieval.answer_classes`).

1. **Classes.** The indexed pairs' replies (slotted form) are embedded and grouped by
   average-linkage clustering on the cosine distance (`dialogue.answer_class_distance`):
   replies that say the same thing fall together whichever question they answered; then
   classes the import labelled with the same intent (or topic) and flags are one
   (`dialogue.merge_labelled_classes`). Each class gets a readable label (the majority of its pairs' `intent` or `topic` labels
   where the import had them, else its questions' most distinctive words), its typical
   answer (the reply closest to the others), and flags: its answers depend on the
   customer's own order (most of its customers named one, or its replies hold an
   order-number slot), its agents handed over or declined (labels in
   `dialogue.handoff_topics` / `dialogue.out_of_scope_topics`), or its questions are
   conversation acts (`chatbot.dialogue.acts`).
2. **The fit model.** Every indexed question, and rewordings of it
   (`chatbot.indexing.rewording`: typos, dropped words, synonyms, other orders), is
   searched with its own conversation left out; each class among its hits is a row
   (features: `chatbot.retrieval.answer_classes.FEATURES`), right when it is the class of
   the question's own reply. A logistic regression on those rows is the model; its
   calibration (expected calibration error, reliability bins of the top class) is
   measured on a fifth of the conversations held out from fitting, then the model is
   refitted on all of them.
3. **The company's voice** for what is not an answer: the reply to each conversation act
   (the typical answer of the class its act questions fall into, else a default), the
   decline (the typical answer of the largest declining class, else a default), the
   request for an order number, what the assistant can help with (the largest topics),
   and the company's contact details (`chatbot.dialogue.contact.mine_contact`).

Where its job ends: it returns the dict meta.json keeps ("answer_classes") and the
replies' vectors (`answer_vectors.npy`); writing the version is
`chatbot.indexing.builder`'s job.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.dialogue.acts import Act, default_replies, main_act, recognise
from chatbot.dialogue.contact import mine_contact
from chatbot.dialogue.repository import PairInfo, pair_infos
from chatbot.dialogue.settings import DialogueSettings
from chatbot.indexing.rewording import reword
from chatbot.pairs import PairRecord
from chatbot.retrieval.answer_classes import (
    FEATURES,
    AnswerClass,
    class_features,
    class_rows,
    feature_matrix,
)
from chatbot.retrieval.embedding import embed_contexts, embed_texts
from chatbot.retrieval.retriever import PairRetriever
from chatbot.retrieval.scope import ScopeCalibration, corrected
from chatbot.retrieval.settings import RetrievalSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chatbot.store.database import Database

log = logging.getLogger(__name__)

MIN_PAIRS = 20  # fewer indexed pairs: no classes (the judge decides alone, as before)
MAX_CLUSTERED = 4000  # clustered directly; the rest join their nearest class
MAX_FIT_QUESTIONS = 3000  # indexed questions used to fit (a sample beyond)
REWORDINGS = 2  # per question
CALIBRATION_BINS = 10
ORDER_SLOT = "{order_number}"
_WORD = re.compile(r"[a-z][a-z'-]{2,}")
_LABEL_STOP = set(
    "the and you your for with that this have has was are can could would what when where "
    "how why who which there their them they our out not but get got just like want need "
    "please thanks thank hello dear regards kind hi hey still some any one about from into "
    "been will does did don't i'm it's i've can't isn't".split()
)


# One question the fit model learns from: (text, history, excluded pair ids, its class,
# its group for the held-out fold, row of its index vector or None for a rewording).
Question = tuple[str, list[str], list[int], int, int, int | None]


def build_answer_classes(
    rs: RetrievalSettings,
    ds: DialogueSettings,
    database: Database,
    model: SentenceTransformer,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
    *,
    seed: int = 0,
) -> tuple[dict[str, Any], np.ndarray] | None:
    """The "answer_classes" entry of meta.json (see the module docstring) and the indexed
    replies' vectors (one row per record, for `answer_classes.ANSWER_VECTORS`), or None
    with fewer than MIN_PAIRS indexed pairs."""
    if len(records) < MIN_PAIRS:
        return None
    with database.session() as session:
        infos = pair_infos(session=session, pair_ids=[r.id for r in records])
    answers = embed_texts(model, [r.target for r in records], batch_size=rs.batch_size)
    assigned = cluster(answers, ds.answer_class_distance, seed=seed)
    classes = describe_classes(ds, records, infos, answers, assigned)
    if ds.merge_labelled_classes:
        assigned = merged_by_label(records, infos, classes, assigned)
        classes = describe_classes(ds, records, infos, answers, assigned)
    pair_class = {r.id: int(k) for r, k in zip(records, assigned)}

    retriever = PairRetriever.from_parts(
        rs, records, vectors, model, ScopeCalibration.uncalibrated(rs.oos_threshold)
    )
    retriever.answer_vectors = answers
    questions = _fit_questions(rs, retriever, records, assigned, seed)
    query_vectors = _question_vectors(rs, model, questions, vectors)
    readings = []
    for (text, history, excluded, *_), vector in zip(questions, query_vectors):
        hits = retriever.search_vector(
            vector, text, history=history, k=ds.retrieve_k, exclude_pair_ids=excluded
        ).hits
        rows = class_rows(
            pair_class,
            [h.pair_id for h in hits],
            [h.scores["dense"] for h in hits],
            [h.scores.get("answer") for h in hits],
        )
        readings.append(class_features(rows, ds.answer_class_temperature, classes))
    matrix, keys = feature_matrix(readings)
    truth = np.array([questions[q][3] == k for q, k in keys], dtype=bool)
    groups = np.array([questions[q][4] for q, _ in keys])
    if matrix.shape[0] < 10 or truth.all() or not truth.any():
        log.info("answer classes: too few questions to fit the fit model")
        return None
    weights, bias, report = _fit_and_report(matrix, truth, groups, keys)
    report.update(
        {
            "fitted_questions": len(questions),
            "rewordings_per_question": REWORDINGS,
            "classes": len(classes),
            "classes_of_two_or_more": sum(1 for c in classes if c.size >= 2),
        }
    )
    voice = company_voice(ds, records, infos, classes, assigned)
    log.info(
        "answer classes: %d (%d of two or more pairs); fit model ECE %s on held-out questions",
        len(classes),
        report["classes_of_two_or_more"],
        report.get("ece"),
    )
    meta = {
        "classes": [vars_of(c) for c in classes],
        "pair_class": {str(k): v for k, v in pair_class.items()},
        "fit": {
            "features": list(FEATURES),
            "weights": [round(float(x), 6) for x in weights],
            "bias": round(float(bias), 6),
            "temperature": ds.answer_class_temperature,
        },
        "report": report,
        "voice": voice,
    }
    return meta, answers


def _fit_questions(
    rs: RetrievalSettings,
    retriever: PairRetriever,
    records: Sequence[PairRecord],
    assigned: np.ndarray,
    seed: int,
) -> list[Question]:
    """The indexed questions (a sample beyond MAX_FIT_QUESTIONS) and REWORDINGS of each,
    each excluding its own conversation's pairs from the search."""
    by_conversation: dict[int | None, list[int]] = {}
    for r in records:
        by_conversation.setdefault(r.conversation_id, []).append(r.id)
    rng = np.random.default_rng(seed)
    chosen = list(range(len(records)))
    if len(chosen) > MAX_FIT_QUESTIONS:
        chosen = sorted(rng.choice(len(records), MAX_FIT_QUESTIONS, replace=False).tolist())
    questions: list[Question] = []
    for i in chosen:
        r = records[i]
        excluded = by_conversation.get(r.conversation_id, [r.id]) if r.conversation_id else [r.id]
        group = r.conversation_id if r.conversation_id is not None else -r.id
        questions.append((r.message, r.history, excluded, int(assigned[i]), group, i))
        for text in reword(r.message, REWORDINGS, seed + r.id):
            # searched as serving searches it: shorthand spelt out, misspellings corrected
            if rs.correct_spelling:
                text = corrected(text, retriever.vocabulary)
            questions.append((text, r.history, excluded, int(assigned[i]), group, None))
    return questions


def _question_vectors(
    rs: RetrievalSettings,
    model: SentenceTransformer,
    questions: Sequence[Question],
    vectors: np.ndarray,
) -> np.ndarray:
    """The questions' query vectors: the indexed questions' own vectors are the index's;
    only the rewordings are embedded."""
    reworded = [i for i, q in enumerate(questions) if q[5] is None]
    query_vectors = np.empty((len(questions), vectors.shape[1]), dtype=np.float32)
    if reworded:
        query_vectors[reworded] = embed_contexts(
            model, [(questions[i][0], questions[i][1]) for i in reworded], rs
        )
    for i, q in enumerate(questions):
        if q[5] is not None:
            query_vectors[i] = vectors[q[5]]
    return query_vectors


def _fit_and_report(
    matrix: np.ndarray, truth: np.ndarray, groups: np.ndarray, keys: list[tuple[int, int]]
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """(weights, bias, report): the calibration measured on the held-out fold of
    conversations, then the fit model refitted on every row."""
    held_out = np.array([_hash_fold(g) == 0 for g in groups])
    report: dict[str, Any] = {}
    if held_out.any() and (~held_out).any() and truth[~held_out].any():
        w, b = _fit(matrix[~held_out], truth[~held_out])
        report = calibration_report(
            _predict(matrix[held_out], w, b),
            truth[held_out],
            [keys[i] for i in np.flatnonzero(held_out)],
        )
    weights, bias = _fit(matrix, truth)
    report["fitted_rows"] = int(matrix.shape[0])
    return weights, bias, report


def vars_of(c: AnswerClass) -> dict[str, Any]:
    return asdict(c)


def cluster(answers: np.ndarray, distance: float, *, seed: int = 0) -> np.ndarray:
    """A class index per reply vector: average-linkage clusters at this cosine distance
    (on a sample of MAX_CLUSTERED; the others join the nearest class's centroid, or
    start their own)."""
    from sklearn.cluster import AgglomerativeClustering

    n = len(answers)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    sample = np.arange(n)
    if n > MAX_CLUSTERED:
        sample = np.sort(np.random.default_rng(seed).choice(n, MAX_CLUSTERED, replace=False))
    fitted = AgglomerativeClustering(
        n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average"
    ).fit(answers[sample])
    labels = np.full(n, -1, dtype=np.int64)
    labels[sample] = fitted.labels_
    if n > len(sample):
        k = int(labels.max()) + 1
        centroids = np.stack([answers[labels == j].mean(axis=0) for j in range(k)])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        for i in np.flatnonzero(labels < 0):
            sims = centroids @ answers[i]
            j = int(np.argmax(sims))
            if sims[j] >= 1 - distance:
                labels[i] = j
            else:
                labels[i] = k
                centroids = np.vstack([centroids, answers[i][None, :]])
                k += 1
    # Number the classes by size, largest first (stable labels for the same data).
    sizes = Counter(labels.tolist())
    order = {
        old: new for new, (old, _) in enumerate(sorted(sizes.items(), key=lambda x: (-x[1], x[0])))
    }
    return np.array([order[x] for x in labels.tolist()], dtype=np.int64)


def merged_by_label(
    records: Sequence[PairRecord],
    infos: dict[int, PairInfo],
    classes: Sequence[AnswerClass],
    assigned: np.ndarray,
) -> np.ndarray:
    """The classes renumbered so that those the import labelled alike (the same intent or
    topic label, and the same flags: an act, a hand-off, a decline) are one: replies worded
    differently for one topic ("returns are free within 30 days" / "you have 30 days to
    send it back") are one answer to understand, whichever the customer gets. Classes
    labelled by their own words only stay apart. Renumbered largest first."""
    labelled = {k: False for k in range(len(classes))}
    for i, k in enumerate(assigned.tolist()):
        info = infos.get(records[i].id)
        if info is not None and (info.labels.get("intent") or info.labels.get("topic")):
            labelled[k] = True
    group: dict[object, int] = {}
    merged = np.empty_like(assigned)
    for k, c in enumerate(classes):
        key: object = (c.label, c.act, c.handoff, c.out_of_scope) if labelled[k] else ("own", k)
        merged[assigned == k] = group.setdefault(key, len(group))
    sizes = Counter(merged.tolist())
    order = {
        old: new for new, (old, _) in enumerate(sorted(sizes.items(), key=lambda x: (-x[1], x[0])))
    }
    return np.array([order[x] for x in merged.tolist()], dtype=np.int64)


def describe_classes(
    ds: DialogueSettings,
    records: Sequence[PairRecord],
    infos: dict[int, PairInfo],
    answers: np.ndarray,
    assigned: np.ndarray,
) -> list[AnswerClass]:
    members: dict[int, list[int]] = {}
    for i, k in enumerate(assigned.tolist()):
        members.setdefault(k, []).append(i)
    keywords = _distinctive_words(records, members)
    classes = []
    for k in range(len(members)):
        rows = members[k]
        labels = [infos[records[i].id].labels for i in rows if records[i].id in infos]
        intents = Counter(str(lab["intent"]) for lab in labels if lab.get("intent"))
        topics = Counter(str(lab["topic"]) for lab in labels if lab.get("topic"))
        if intents:
            label = _readable(intents.most_common(1)[0][0])
        elif topics:
            label = _readable(topics.most_common(1)[0][0])
        else:
            label = " · ".join(w.capitalize() for w in keywords.get(k, [])[:2]) or "Other"
        topic = topics.most_common(1)[0][0] if topics else None
        centroid = answers[rows].mean(axis=0)
        typical = rows[int(np.argmax(answers[rows] @ centroid))]
        case = sum(
            1
            for i in rows
            if (records[i].id in infos and infos[records[i].id].case_bound)
            or ORDER_SLOT in records[i].target
        )
        acts = Counter(main_act(recognise(records[i].message)) for i in rows)
        top_act, act_count = acts.most_common(1)[0]
        classes.append(
            AnswerClass(
                label=label,
                size=len(rows),
                answer=records[typical].target,
                case_bound=case * 2 > len(rows),
                handoff=topic in ds.handoff_topics,
                out_of_scope=topic in ds.out_of_scope_topics,
                act=str(top_act) if top_act is not None and act_count * 2 > len(rows) else None,
            )
        )
    return classes


def company_voice(
    ds: DialogueSettings,
    records: Sequence[PairRecord],
    infos: dict[int, PairInfo],
    classes: Sequence[AnswerClass],
    assigned: np.ndarray,
) -> dict[str, Any]:
    """What the assistant says that is not an answer, in the company's words where its
    history has them (see the module docstring)."""
    topic_sizes: Counter[str] = Counter()
    for r in records:
        info = infos.get(r.id)
        if info is not None and info.opening and info.labels.get("topic"):
            topic_sizes[str(info.labels["topic"])] += 1
    excluded = {*ds.handoff_topics, *ds.out_of_scope_topics}
    topics = [t for t, _ in topic_sizes.most_common() if t not in excluded][:5]
    if not topics:
        topics = [c.label.lower() for c in classes if c.offerable][:5]
    helps_with = _listing(topics) if topics else "questions about our service"
    acts = {str(act): text for act, text in default_replies(None, helps_with).items()}
    mined = {}
    for c in classes:
        if c.act is not None and c.size >= 2 and c.act not in mined:
            mined[c.act] = c.answer
    acts.update({k: v for k, v in mined.items() if k in (Act.THANKS, Act.GOODBYE)})
    declines = [c for c in classes if c.out_of_scope and c.size >= 2]
    decline = (
        max(declines, key=lambda c: c.size).answer
        if declines
        else f"Sorry, that's not something I can help with. I can help with {helps_with}."
    )
    replies = (
        (r.conversation_id if r.conversation_id is not None else r.id, r.target) for r in records
    )
    return {
        "acts": acts,
        "acts_from_history": sorted(mined),
        "contact": mine_contact(replies),
        "decline": decline,
        "decline_from_history": bool(declines),
        "helps_with": helps_with,
        "topics": topics,
    }


def calibration_report(
    probabilities: np.ndarray, truth: np.ndarray, keys: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """Expected calibration error and reliability bins of the top class of each question
    (its probability against whether it was the right class)."""
    top: dict[int, tuple[float, bool]] = {}
    for (q, _), p, t in zip(keys, probabilities.tolist(), truth.tolist()):
        if q not in top or p > top[q][0]:
            top[q] = (p, t)
    p = np.array([v[0] for v in top.values()])
    right = np.array([v[1] for v in top.values()], dtype=float)
    return {
        "held_out_questions": len(top),
        **reliability(p, right),
        # each held-out question's top probability and whether it was right: what serving
        # reads to tell whether its answer bar leaves the model anything to answer
        "held_out_top": [[round(float(a), 4), bool(b)] for a, b in zip(p, right)],
    }


def reliability(p: np.ndarray, right: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """ECE and per-bin (mean probability, accuracy, count) for probabilities `p` of being right."""
    edges = np.linspace(0, 1, bins + 1)
    table = []
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        n = int(inside.sum())
        if n:
            mean_p, acc = float(p[inside].mean()), float(right[inside].mean())
            ece += n / len(p) * abs(mean_p - acc)
            table.append(
                {
                    "from": round(float(lo), 2),
                    "to": round(float(hi), 2),
                    "mean_probability": round(mean_p, 4),
                    "accuracy": round(acc, 4),
                    "n": n,
                }
            )
    return {
        "ece": round(ece, 4) if len(p) else None,
        "bins": table,
        "accuracy": round(float(right.mean()), 4) if len(p) else None,
    }


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y.astype(int))
    return model.coef_[0], float(model.intercept_[0])


def _predict(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    z = np.clip(x @ w + b, -30, 30)
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _hash_fold(group: int, folds: int = 5) -> int:
    return (group * 2654435761) % 2**32 % folds


def _readable(label: str) -> str:
    text = label.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def _listing(items: Sequence[str]) -> str:
    items = [i.replace("_", " ") for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _distinctive_words(
    records: Sequence[PairRecord], members: dict[int, list[int]]
) -> dict[int, list[str]]:
    """Per class, its questions' words ranked by class-based TF-IDF."""
    counts = {
        k: Counter(
            w
            for i in rows
            for w in _WORD.findall(records[i].message.lower())
            if w not in _LABEL_STOP
        )
        for k, rows in members.items()
    }
    df: Counter[str] = Counter()
    for c in counts.values():
        df.update(set(c))
    n = len(counts)
    return {
        k: [w for w, _ in sorted(c.items(), key=lambda x: -x[1] * math.log(1 + n / df[x[0]]))[:3]]
        for k, c in counts.items()
    }
