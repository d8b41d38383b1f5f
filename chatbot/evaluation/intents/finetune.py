"""Fine-tuning the sentence embedder on a company's own labelled texts, for the
`finetune` intent router.

`fine_tune_classifier` pairs every text with another text of the same intent (chosen
at random, seeded) and trains on those pairs with sentence-transformers' trainer and
MultipleNegativesRankingLoss (`chatbot.indexing.contrastive`), under a wall-clock
budget: after it the embedder places requests of one intent close together, which is
what nearest-neighbour routing and the out-of-scope score need. Routing with the
result is `routing`'s job; saving a model is the caller's.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.indexing.contrastive import fine_tune_pairs

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@dataclass
class FineTuneReport:
    epochs_done: float
    steps: int
    seconds: float
    stopped_by_budget: bool
    final_loss: float


def same_intent_pairs(
    texts: Sequence[str], labels: Sequence[int], seed: int = 0
) -> tuple[list[str], list[str]]:
    """(anchors, positives): each text beside another text of its intent; a text whose
    intent has no other text is left out."""
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    anchors, positives = [], []
    for i, label in enumerate(labels):
        others = [j for j in by_label[label] if j != i and texts[j] != texts[i]]
        if others:
            anchors.append(texts[i])
            positives.append(texts[rng.choice(others)])
    return anchors, positives


def fine_tune_classifier(
    model: SentenceTransformer,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    epochs: float = 3.0,
    batch_size: int = 32,
    lr: float = 6e-5,
    max_seconds: float | None = None,
    max_length: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> FineTuneReport:
    """Train `model` in place on (text, label index) pairs; returns what happened.
    Stops early, at a step boundary, once `max_seconds` have passed."""
    anchors, positives = same_intent_pairs(texts, labels, seed)
    run = fine_tune_pairs(
        model,
        anchors,
        positives,
        batch_size=batch_size,
        learning_rate=lr,
        epochs=epochs,
        max_seconds=max_seconds,
        max_seq_length=max_length,
        seed=seed,
        progress=progress,
    )
    return FineTuneReport(
        epochs_done=run.epochs,
        steps=run.steps,
        seconds=run.seconds,
        stopped_by_budget=run.stopped_by == "minutes",
        final_loss=run.losses[-1] if run.losses else math.nan,
    )
