"""History fusion with the real all-MiniLM-L6-v2: an ambiguous follow-up finds the
right past answer when the history is a paraphrase, not a copy (slow: real model)."""

from __future__ import annotations

import pytest

from chatbot.indexing.builder import update_index
from chatbot.retrieval.retriever import open_retriever
from chatbot.settings import load_settings
from tests.test_retrieval_index import PAIRS, add_pairs

pytestmark = pytest.mark.slow

FOLLOW_UP = "and how long does that take?"
TOPICS = {
    "password": (
        "How do I reset my password?",
        "Use the reset link on the sign-in page.",
        "The reset e-mail arrives within a few minutes.",
    ),
    "refund": (
        "I sent the kettle back, when will I get my money?",
        "We refund once the parcel reaches our warehouse.",
        "Refunds reach your card within 5-7 working days.",
    ),
    "delivery": (
        "I ordered a sofa, when does it come?",
        "Furniture is delivered by our own van.",
        "Delivery takes 2-3 weeks for furniture.",
    ),
}
PARAPHRASED = {
    "password": [
        "I forgot my login password, can I get a new one?",
        "Sure, click 'forgot password' when you sign in.",
    ],
    "refund": [
        "I returned an item. When do I get reimbursed?",
        "As soon as the warehouse receives it.",
    ],
    "delivery": ["When will my couch be delivered?", "Large items come with our delivery team."],
}


def test_history_resolves_an_ambiguous_follow_up(tmp_path, migrated_database):
    settings = load_settings(home=tmp_path / "home", database_url=migrated_database.url)
    ids = {}
    for topic, (question, answer, follow_answer) in TOPICS.items():
        ids[topic] = add_pairs(
            migrated_database,
            [(FOLLOW_UP, follow_answer)],
            source=topic,
            histories={0: [("customer", question), ("agent", answer)]},
        )[0]
    add_pairs(migrated_database, PAIRS)
    update_index(settings.paths, settings.retrieval, settings.dialogue, migrated_database)
    retriever = open_retriever(settings.paths, settings.retrieval, migrated_database)
    for topic, history in PARAPHRASED.items():
        top = retriever.search(FOLLOW_UP, history=history, k=1).hits[0]
        assert top.pair_id == ids[topic], (topic, top.reply_text)
        assert top.citation.source == topic
