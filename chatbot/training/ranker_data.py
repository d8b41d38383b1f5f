"""What a ranker is trained on: the train pairs and the validation subset from the
store, and the labelled examples built from them (steps 1 and 2 of
`chatbot.training.ranker`): each train pair's context with the agent's real reply
(label 1), hard negatives retrieval finds in other conversations, random replies to top
them up, and suggestions agents rejected in the console (label 0).

Where its job ends: it returns pairs and examples; fitting the cross-encoder on them
and validating it is `chatbot.training.ranker`'s job (`chatbot.training.ranker_validation`
judges a trained ranker on the validation pairs).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chatbot.ranking import RankerError
from chatbot.ranking.model import query_text

if TYPE_CHECKING:
    from chatbot.ranking.settings import RankerSettings
    from chatbot.retrieval.types import Hit, Retriever
    from chatbot.store.database import Database
    from chatbot.training.data import TrainingData
    from chatbot.training.settings import TrainingSettings


@dataclass(frozen=True)
class Example:
    """One training pair for the cross-encoder."""

    query: str
    reply: str
    label: float
    kind: str  # "positive" | "hard" | "random" | "rejected"


class RankerPair(Protocol):
    """What a ranker example needs of a training pair."""

    @property
    def id(self) -> int: ...
    @property
    def context(self) -> list[dict[str, str]]: ...
    @property
    def target(self) -> str: ...


def load_pairs(rs: RankerSettings, training: TrainingSettings, database: Database) -> TrainingData:
    """The train pairs and the validation subset (`TrainingData`), or RankerError; the
    reply model's data settings (`training`) with the ranker's sizes and seed."""
    from chatbot.training import TrainingError
    from chatbot.training.data import load_training_data

    cfg = training.model_copy(
        update={
            "min_train_pairs": 1,
            "min_val_pairs": 1,
            "val_max_pairs": rs.val_max_pairs,
            "seed": rs.seed,
        }
    )
    try:
        data = load_training_data(database, cfg)
    except TrainingError:
        data = None
    if data is None or len(data.train) < rs.min_pairs or len(data.val) < rs.min_val_pairs:
        counts = (
            f"{len(data.train)} train pairs (need {rs.min_pairs}) and {len(data.val)} validation pairs (need {rs.min_val_pairs})"
            if data is not None
            else "no train or no validation pairs"
        )
        raise RankerError(
            f"too few pairs to train a ranker: {counts}; import more transcripts first (chatbot import FILE) "
            "or lower CHATBOT_RANKER__MIN_PAIRS / MIN_VAL_PAIRS"
        )
    return data


def near_copy(candidate: str, target: str, threshold: float) -> bool:
    """A reply that says what the true one says (identical words, or content-word F1 at
    least `threshold`): not a wrong answer, so never a negative."""
    from chatbot.text.measures import normalise, token_f1

    return normalise(candidate) == normalise(target) or token_f1(candidate, target) >= threshold


def candidates_for(
    retriever: Retriever, context: Sequence[dict[str, str]], k: int, exclude: Sequence[int] = ()
) -> list[Hit]:
    """The retriever's hits for a conversation: its last message as the query, the
    earlier turns as history."""
    if not context or k <= 0:
        return []
    query = str(context[-1].get("text") or "")
    history = [str(t.get("text") or "") for t in context[:-1]]
    return list(retriever.search(query, history=history, k=k, exclude_pair_ids=list(exclude)).hits)


def rejected_replies(database: Database) -> list[tuple[list[dict[str, str]], str]]:
    """(conversation, rejected suggestion in slotted form) for every suggestion an agent
    rejected in the console (`chatbot.support.review.rejected_examples`)."""
    from chatbot.dialogue.specifics import SpecificsGuard
    from chatbot.support.review_pairs import rejected_examples

    with database.session() as session:
        rows = rejected_examples(session)
    if not rows:
        return []
    guard = SpecificsGuard(database)
    known = guard.known()
    return [
        (list(r.context), guard.slot(r.text, known)) for r in rows if r.context and r.text.strip()
    ]


def build_examples(
    train: Sequence[RankerPair],
    retriever: Retriever,
    rs: RankerSettings,
    *,
    rejections: Sequence[tuple[list[dict[str, str]], str]] = (),
    seed: int = 0,
) -> tuple[list[Example], dict[str, Any]]:
    """The labelled examples of a run (see the module docstring) and their counts."""
    rng = random.Random(seed)
    replies = [p.target for p in train]
    examples: list[Example] = []
    short = 0
    for pair in train:
        query = query_text(pair.context, rs.history_turns)
        examples.append(Example(query, pair.target, 1.0, "positive"))
        chosen: list[str] = []
        for hit in candidates_for(retriever, pair.context, rs.retrieve_k, exclude=[pair.id]):
            if len(chosen) >= rs.negatives:
                break
            text = hit.reply_text
            if (
                hit.pair_id == pair.id
                or text in chosen
                or near_copy(text, pair.target, rs.near_copy_f1)
            ):
                continue
            chosen.append(text)
        hard = len(chosen)
        if hard < rs.negatives:
            short += 1
            for _ in range(
                4 * rs.negatives
            ):  # top up with random replies; give up on a tiny, repetitive set
                if len(chosen) >= rs.negatives:
                    break
                text = rng.choice(replies)
                if text not in chosen and not near_copy(text, pair.target, rs.near_copy_f1):
                    chosen.append(text)
        examples += [
            Example(query, text, 0.0, "hard" if i < hard else "random")
            for i, text in enumerate(chosen)
        ]
    for context, text in rejections:
        examples.append(Example(query_text(context, rs.history_turns), text, 0.0, "rejected"))
    counts = Counter(e.kind for e in examples)
    stats = {
        "examples": len(examples),
        "positives": counts["positive"],
        "hard_negatives": counts["hard"],
        "random_negatives": counts["random"],
        "rejected_negatives": counts["rejected"],
        "pairs_short_of_hard_negatives": short,
    }
    return examples, stats
