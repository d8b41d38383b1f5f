"""Helpers shared by the training tests (a small store of pairs, and a deterministic
stand-in for retrieved evidence), with tests of the helpers themselves."""

from __future__ import annotations

import hashlib
import json
import re

from chatbot.pairs import PairRecord

QUESTIONS = [
    (
        "Where is my order? It was supposed to arrive yesterday.",
        "You can track your parcel with the link in your shipping e-mail.",
    ),
    (
        "I would like to return a kettle, how do I do that?",
        "Returns are free within 30 days; start one under Orders.",
    ),
    (
        "My card was declined but the money left my account.",
        "Refunds reach your original payment method within 5-7 working days.",
    ),
    (
        "How do I reset my password?",
        "Please use the reset link on the sign-in page; it arrives within minutes.",
    ),
]
VARIANTS = ["", " Thanks!", " Please help.", " Hi there.", " Any news?", " Cheers."]


def fill_pairs(
    database,
    *,
    n_train: int = 24,
    n_val: int = 6,
    origin: str = "imported",
    source: str = "demo",
    quality: float | None = None,
) -> None:
    """Insert pairs through the ORM (the importer fills them in production)."""
    from chatbot.store.schema import TrainingPair

    rows = []
    for i in range(n_train + n_val):
        question, answer = QUESTIONS[i % len(QUESTIONS)]
        split = "train" if i < n_train else "val"
        context = [{"role": "customer", "text": question + VARIANTS[i % len(VARIANTS)]}]
        if i % 3 == 0:
            context = [
                {"role": "customer", "text": "Hello"},
                {"role": "agent", "text": "Hi, how can I help?"},
            ] + context
        key = hashlib.sha256(json.dumps([source, origin, i]).encode()).hexdigest()
        rows.append(
            TrainingPair(
                source=source,
                origin=origin,
                split=split,
                context=context,
                target=answer,
                quality=quality,
                labels={},
                content_hash=key,
            )
        )
    with database.session() as session:
        session.add_all(rows)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def overlap_evidence(database, k: int = 2):
    """Test stand-in for the retriever: the replies of the k train pairs whose last
    customer message shares the most words with the pair's (ties by lower id), never
    the pair itself. Deterministic; same shape as `retriever_evidence`."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    with database.session() as session:
        rows = session.execute(
            select(TrainingPair.id, TrainingPair.context, TrainingPair.target)
            .where(TrainingPair.split == "train")
            .order_by(TrainingPair.id)
        ).all()
    index = [(r.id, _words(r.context[-1]["text"]), r.target) for r in rows]

    def evidence_for(pair: PairRecord) -> list[str]:
        query = _words(pair.context[-1]["text"])
        scored = sorted(
            ((-len(query & words), pid, target) for pid, words, target in index if pid != pair.id)
        )
        return [target for _, _, target in scored[:k]]

    return evidence_for


def test_overlap_evidence_excludes_the_pair_and_prefers_shared_words(migrated_database):
    fill_pairs(migrated_database, n_train=8, n_val=2)
    evidence_for = overlap_evidence(migrated_database, k=2)
    pair = PairRecord(
        id=1,
        source="demo",
        origin="imported",
        split="train",
        context=[
            {"role": "customer", "text": "Where is my order? It was supposed to arrive yesterday."}
        ],
        target=QUESTIONS[0][1],
    )
    got = evidence_for(pair)
    assert len(got) == 2
    assert got[0] == QUESTIONS[0][1]  # pair 5 asks the same question; pair 1 itself is excluded
