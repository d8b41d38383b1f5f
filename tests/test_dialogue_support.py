"""Helpers for the dialogue tests: a small shop seeded into the store as training pairs,
the real retriever (`chatbot.retrieval`) indexed over it with the tiny embedder, and the
tiny reply model as a reply-model source. Plus a check that the helpers do what the
dialogue tests rely on."""

from __future__ import annotations

import hashlib

import pytest

from chatbot.dialogue.manager import DialogueManager
from chatbot.dialogue.sources import BaseReplyModelSource
from chatbot.store.schema import Conversation, Message, TrainingPair
from chatbot.text.prompt import PromptFormat

# (customer question, agent answer, origin, topic)
SHOP = [
    (
        "Where is my order? It was supposed to arrive yesterday.",
        "You can track your parcel with the link in your dispatch e-mail or under Orders > Track parcel.",
        "imported",
        "delivery",
    ),
    (
        "I would like to return a kettle, how do I do that?",
        "Returns are free within 30 days; start one under Orders > select the order > Return items.",
        "agent_approved",
        "returns",
    ),
    (
        "My card was declined but the money left my account.",
        "That is a pending authorisation; your bank releases it within 5 working days.",
        "imported",
        "payments",
    ),
    (
        "How do I reset my password?",
        "Please use 'Forgot password?' on the sign-in page; the reset link is valid for 24 hours.",
        "imported",
        "account",
    ),
    (
        "How long does delivery take?",
        "Standard delivery takes 3-5 working days and is free on orders over 40 EUR.",
        "imported",
        "delivery",
    ),
    (
        "Can you recommend a stock to invest in?",
        "Sorry, that's not something I can help with. Ask me about orders, deliveries or returns.",
        "imported",
        "out_of_scope",
    ),
    (
        "I want to make a complaint about my delivery.",
        "I'm sorry to hear that. I'm passing you to a colleague who will look into it.",
        "imported",
        "handoff",
    ),
]


def seed_shop(database, rows=SHOP) -> dict[str, int]:
    """Store each row as an imported conversation and a training pair; question -> pair id."""
    ids = {}
    with database.session() as session:
        for i, (question, answer, origin, topic) in enumerate(rows):
            conversation = Conversation(
                source="test-shop", external_id=f"shop-{i}", channel="import", split="train"
            )
            session.add(conversation)
            session.flush()
            session.add_all(
                [
                    Message(
                        conversation_id=conversation.id,
                        turn_index=0,
                        role="customer",
                        text=question,
                    ),
                    Message(
                        conversation_id=conversation.id, turn_index=1, role="agent", text=answer
                    ),
                ]
            )
            pair = TrainingPair(
                conversation_id=conversation.id,
                turn_index=1,
                source="test-shop",
                origin=origin,
                split="train",
                context=[{"role": "customer", "text": question}],
                target=answer,
                labels={"topic": topic},
                content_hash=hashlib.sha256(f"{question}|{answer}".encode()).hexdigest(),
            )
            session.add(pair)
            session.flush()
            ids[question] = pair.id
    return ids


def build_retriever(settings, database):
    from chatbot.indexing.builder import update_index
    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval.retriever import open_retriever

    model = load_embedder(settings.paths)
    update_index(
        settings.paths,
        settings.retrieval,
        settings.dialogue,
        database,
        model=model,
        calibrate=False,
    )
    return open_retriever(settings.paths, settings.retrieval, database, model=model)


class TinyReplySource(BaseReplyModelSource):
    """The tiny reply model of `tiny_settings` (same loader as the base model)."""


class FailingReplySource:
    def get(self):
        raise RuntimeError("the reply model crashed")


def make_manager(settings, database, retriever, source="tiny", **overrides) -> DialogueManager:
    """The manager over the shop. These tests exercise generation, so unless a test says
    otherwise a confident retrieved answer does not skip it (`send_retrieved_at` 1.0; the
    decide-before-generating path has its own tests)."""
    overrides.setdefault("send_retrieved_at", 1.0)
    dialogue = settings.dialogue.model_copy(update=overrides)
    type(dialogue).model_validate(dialogue.model_dump())  # the overrides must be valid settings
    reply_source = TinyReplySource(settings.paths) if source == "tiny" else source
    return DialogueManager(
        dialogue, database, retriever, reply_source, PromptFormat.from_settings(settings.prompt)
    )


@pytest.fixture
def shop(tiny_settings, migrated_database):
    ids = seed_shop(migrated_database)
    return tiny_settings, migrated_database, build_retriever(tiny_settings, migrated_database), ids


def test_the_retriever_finds_a_seeded_question_first(shop):
    settings, database, retriever, ids = shop
    question = SHOP[3][0]
    result = retriever.search(question, k=3)
    assert result.hits[0].pair_id == ids[question]
    assert result.hits[0].reply_text == SHOP[3][1]
