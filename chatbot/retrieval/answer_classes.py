"""Answer classes and the question–answer fit model, as one index version serves them.

`chatbot index` groups the indexed pairs by what their agents answered (pairs whose
replies say the same thing form one class: "returns are free within 30 days", "use
Forgot password?"), gives each class a readable label, and fits a small logistic model of
"this class's answer is right for this question" on the company's own questions, reworded
(`chatbot.indexing.answer_classes`). This module reads that back from meta.json and, for
one search, scores the classes of the retrieved pairs: `read(hits...)` gives the classes
ranked by their calibrated probability of being right, which the dialogue manager uses
to decide between answering, asking which topic is meant, declining and handing off.

The features of a (question, class) are computed here, from the dense similarities of
the retrieved pairs' questions, so that fitting and serving compute them the same way.
Where its job ends: no embedding, no search (the retriever gives the similarities), no
decision (that is the dialogue manager's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FEATURES = (
    "vote",  # softmax-weighted share of the retrieved pairs in the class
    "best",  # the class's best question cosine
    "margin",  # best of the class minus best of any other class
    "top3",  # mean of the class's three best cosines (missing ones count as 0)
    "rank",  # 0 for the class of the top hit, 1 for the next class...
    "size",  # log(1 + pairs in the class)
    "answer",  # the class's best cosine of the question to a retrieved pair's reply
    "answer_margin",  # that, minus the best of any other class
)
ANSWER_VECTORS = "answer_vectors.npy"  # the indexed replies' vectors, beside the index's


@dataclass(frozen=True)
class AnswerClass:
    """Pairs whose agents answered alike: a readable label, the class's typical answer
    (in slotted form), and what the class means for a decision."""

    label: str
    size: int
    answer: str
    case_bound: bool = False  # its answers depend on the customer's own order
    handoff: bool = False  # its agents handed the conversation over
    out_of_scope: bool = False  # its agents declined (the company does not do this)
    act: str | None = None  # its questions are a conversation act (greeting, thanks...)

    @property
    def offerable(self) -> bool:
        """May be offered as a clarification choice: a real topic, not a hand-off,
        a decline or a pleasantry."""
        return not (self.handoff or self.out_of_scope or self.act) and self.size >= 2


@dataclass(frozen=True)
class ClassScore:
    """One class's standing for one question: its index, calibrated probability of being
    right, its features, and the retrieved pairs (ids) in it, best first."""

    index: int
    probability: float
    features: dict[str, float]
    pair_ids: tuple[int, ...]


@dataclass(frozen=True)
class Reading:
    """The classes of one search, most probable first (empty: nothing retrieved)."""

    scores: tuple[ClassScore, ...]

    @property
    def top(self) -> ClassScore | None:
        return self.scores[0] if self.scores else None


@dataclass
class AnswerClasses:
    """What `chatbot index` fitted (see the module docstring)."""

    classes: list[AnswerClass]
    pair_class: dict[int, int]  # indexed pair id -> class index
    weights: list[float]
    bias: float
    temperature: float
    report: dict[str, Any] = field(default_factory=dict)
    # What the assistant says that is not an answer, in the company's words: "acts" (reply
    # per conversation act), "decline", "helps_with" (`chatbot.indexing.answer_classes`).
    voice: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: object) -> AnswerClasses | None:
        """From meta.json's "answer_classes" (None when the version has none). Raises
        ValueError, TypeError or KeyError when it is damaged (the caller names the file)."""
        if not isinstance(meta, dict) or not meta.get("classes"):
            return None
        classes = [AnswerClass(**c) for c in meta["classes"]]
        pair_class = {int(k): int(v) for k, v in meta["pair_class"].items()}
        weights = [float(w) for w in meta["fit"]["weights"]]
        names = list(meta["fit"].get("features") or FEATURES[: len(weights)])
        if len(weights) != len(names) or names != list(FEATURES[: len(names)]):
            raise ValueError(f"{len(weights)} fit weights for the features {names}")
        # A model fitted before later features existed gives them no weight.
        weights += [0.0] * (len(FEATURES) - len(weights))
        if any(not 0 <= c < len(classes) for c in pair_class.values()):
            raise ValueError("a pair's class is out of range")
        return cls(
            classes,
            pair_class,
            weights,
            float(meta["fit"]["bias"]),
            float(meta["fit"]["temperature"]),
            dict(meta.get("report") or {}),
            dict(meta.get("voice") or {}),
        )

    def coverage(self, bar: float) -> tuple[float, float] | None:
        """On the questions held out when the model was fitted: the share whose best class
        reaches `bar`, and the share of those that were right (None: not measured)."""
        held = self.report.get("held_out_top") or []
        if not held:
            return None
        above = [bool(right) for p, right in held if float(p) >= bar]
        precision = sum(above) / len(above) if above else 0.0
        return len(above) / len(held), precision

    def read(
        self,
        pair_ids: Sequence[int],
        cosines: Sequence[float],
        answer_cosines: Sequence[float | None] | None = None,
        *,
        limit: int = 3,
    ) -> Reading:
        """The classes of the retrieved pairs (`pair_ids` with their question cosines and
        the question's cosines to their replies, best first), scored."""
        rows = class_rows(self.pair_class, pair_ids, cosines, answer_cosines)
        scores = []
        for rank, (index, feats, members) in enumerate(
            class_features(rows, self.temperature, self.classes)
        ):
            feats["rank"] = float(rank)
            z = self.bias + sum(w * feats[name] for w, name in zip(self.weights, FEATURES))
            scores.append(ClassScore(index, _sigmoid(z), feats, members))
        scores.sort(key=lambda s: -s.probability)
        return Reading(tuple(scores[:limit]))


def class_rows(
    pair_class: dict[int, int],
    pair_ids: Sequence[int],
    cosines: Sequence[float],
    answer_cosines: Sequence[float | None] | None = None,
) -> list[tuple[int, int, float, float]]:
    """(class, pair id, question cosine, reply cosine) of the retrieved pairs that have a
    class (a reply cosine not known counts as 0)."""
    answers = list(answer_cosines) if answer_cosines is not None else [None] * len(pair_ids)
    return [
        (pair_class[p], p, float(c), float(a or 0.0))
        for p, c, a in zip(pair_ids, cosines, answers)
        if p in pair_class
    ]


def class_features(
    rows: Sequence[tuple[int, int, float, float]],
    temperature: float,
    classes: Sequence[AnswerClass],
) -> list[tuple[int, dict[str, float], tuple[int, ...]]]:
    """The features of each class among `rows` (class, pair id, cosine, reply cosine),
    the classes in order of their best cosine; "rank" is filled by the caller."""
    if not rows:
        return []
    top = max(r[2] for r in rows)
    weight = {i: math.exp((r[2] - top) / temperature) for i, r in enumerate(rows)}
    total = sum(weight.values())
    by_class: dict[int, list[tuple[int, float, float, float]]] = {}
    for i, (k, pair_id, c, a) in enumerate(rows):
        by_class.setdefault(k, []).append((pair_id, c, weight[i], a))
    ordered = sorted(by_class, key=lambda k: -max(m[1] for m in by_class[k]))
    bests = {k: max(m[1] for m in by_class[k]) for k in ordered}
    answer_bests = {k: max(m[3] for m in by_class[k]) for k in ordered}
    out = []
    for k in ordered:
        members = sorted(by_class[k], key=lambda m: -m[1])
        others = [b for j, b in bests.items() if j != k]
        other_answers = [b for j, b in answer_bests.items() if j != k]
        cos = [m[1] for m in members][:3]
        feats = {
            "vote": sum(m[2] for m in members) / total,
            "best": bests[k],
            "margin": bests[k] - (max(others) if others else 0.0),
            "top3": sum(cos) / 3.0,
            "rank": 0.0,
            "size": math.log1p(classes[k].size),
            "answer": answer_bests[k],
            "answer_margin": answer_bests[k] - (max(other_answers) if other_answers else 0.0),
        }
        out.append((k, feats, tuple(m[0] for m in members)))
    return out


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def feature_matrix(
    readings: Sequence[list[tuple[int, dict[str, float], tuple[int, ...]]]],
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Rows of features (with "rank" set) for every (question, class), and which
    (question, class) each row is: what fitting the model reads."""
    matrix, keys = [], []
    for q, classes in enumerate(readings):
        for rank, (k, feats, _) in enumerate(classes):
            feats = {**feats, "rank": float(rank)}
            matrix.append([feats[name] for name in FEATURES])
            keys.append((q, k))
    return np.asarray(matrix, dtype=np.float64).reshape(-1, len(FEATURES)), keys
