"""Choosing the reply by consensus (`chatbot.dialogue.consensus`): the arithmetic on
candidates, the per-company choice `chatbot index` makes on validation questions
(`chatbot.indexing.consensus_choice`, real store, real retriever, tiny embedder), and the
dialogue manager sending the candidate the others agree with, where it was chosen.

The store below holds, for each topic, three agents answering differently phrased
questions the same way, and one conversation whose question is word for word the
validation question but whose answer is unlike any other. The critique favours that
exact match; consensus favours the answer the agents agree on. Which one the validation
conversations' agents actually wrote decides whether consensus is switched on."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from chatbot.dialogue.consensus import choose, expected_utility, pairwise_rouge
from chatbot.retrieval.types import ConsensusChoice

# topic: (validation question, [(train question, agreed answer)] * 3, the exact match's own answer)
TOPICS = {
    "parcel": (
        "My parcel has not arrived, where is it?",
        [
            (
                "Where is my parcel? The tracking has not moved.",
                "Your parcel is with the courier; track it with the link in your dispatch e-mail.",
            ),
            (
                "The parcel I ordered is late, can you check?",
                "Your parcel is with the courier; you can track it with the link in your dispatch e-mail.",
            ),
            (
                "Is my parcel lost? It should be here by now.",
                "The parcel is with the courier; please track it with the link in the dispatch e-mail.",
            ),
        ],
        "Our warehouse team in Leeds works Monday to Saturday.",
    ),
    "refund": (
        "When will I get my refund for the returned shoes?",
        [
            (
                "How long does a refund take after a return?",
                "Refunds reach your card 5 to 7 working days after the return is received.",
            ),
            (
                "I returned the shoes, where is my refund?",
                "Your refund reaches your card 5 to 7 working days after we receive the return.",
            ),
            (
                "Refund still missing for my returned order",
                "Refunds reach the card you paid with 5 to 7 working days after the return arrives.",
            ),
        ],
        "Shoes should be sent back in their original box with all tags.",
    ),
    "password": (
        "I forgot my password and cannot sign in.",
        [
            (
                "How can I reset my password?",
                "Use 'Forgot password?' on the sign-in page; the reset link is valid for 24 hours.",
            ),
            (
                "The sign in page rejects my password",
                "Please use 'Forgot password?' on the sign-in page; the reset link is valid for 24 hours.",
            ),
            (
                "Password reset e-mail, how does it work?",
                "Choose 'Forgot password?' on the sign-in page; the link we send is valid for 24 hours.",
            ),
        ],
        "Accounts are locked after five attempts for your security.",
    ),
    "address": (
        "Can I change the delivery address on my order?",
        [
            (
                "I moved, how do I change my delivery address?",
                "You can change the delivery address under Orders while the order is still Processing.",
            ),
            (
                "Wrong delivery address on the order, help",
                "The delivery address can be changed under Orders while the order is still Processing.",
            ),
            (
                "Need a new delivery address for my order",
                "Change the delivery address under Orders as long as the order is still Processing.",
            ),
        ],
        "We deliver to the United Kingdom and Ireland only.",
    ),
    "voucher": (
        "My voucher code does not work at checkout.",
        [
            (
                "The voucher is rejected at checkout",
                "Voucher codes work once per customer and only before their expiry date shown in the e-mail.",
            ),
            (
                "Why is my discount voucher invalid?",
                "Each voucher code works once per customer and only before the expiry date in the e-mail.",
            ),
            (
                "Checkout says the voucher code is wrong",
                "A voucher code works once per customer, and only before the expiry date shown in the e-mail.",
            ),
        ],
        "Gift cards can be bought in any amount from 10 to 200 pounds.",
    ),
    "size": (
        "The jacket is too small, can I swap the size?",
        [
            (
                "Can I exchange a jacket for another size?",
                "Start an exchange under Orders > Return items and pick the new size; it ships when we receive the old one.",
            ),
            (
                "Swap the size of my jacket please",
                "Start an exchange under Orders > Return items and choose the new size; we ship it when the old one arrives.",
            ),
            (
                "I need a bigger size of the jacket",
                "Please start an exchange under Orders > Return items and pick the size; it ships once we receive the old one.",
            ),
        ],
        "Our jackets are made in Portugal from recycled wool.",
    ),
}


def seed(database, *, truth_is_the_exact_match: bool) -> dict[str, str]:
    """The store above; the validation conversations' agents wrote the agreed answer, or
    (`truth_is_the_exact_match`) the exact match's own answer. Gives question -> what the
    critique would send (the exact match's answer)."""
    from chatbot.store.schema import Conversation, Message, TrainingPair

    rows = []
    for question, agreed, own in TOPICS.values():
        rows += [(q, a, "train") for q, a in agreed]
        rows.append((question, own, "train"))
        rows.append((question, own if truth_is_the_exact_match else agreed[0][1], "val"))
    with database.session() as session:
        for i, (question, answer, split) in enumerate(rows):
            conversation = Conversation(
                source="shop", external_id=f"c{i}", channel="import", split=split
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
            session.add(
                TrainingPair(
                    conversation_id=conversation.id,
                    turn_index=1,
                    source="shop",
                    origin="imported",
                    split=split,
                    context=[{"role": "customer", "text": question}],
                    target=answer,
                    content_hash=hashlib.sha256(f"{i}|{question}|{answer}".encode()).hexdigest(),
                )
            )
    return {question: own for question, _, own in TOPICS.values()}


def test_the_candidate_the_others_agree_with_wins_unless_the_judge_weighs_more():
    texts = [
        "Refunds reach your card 5 to 7 working days after the return arrives.",
        "Your refund reaches the card 5 to 7 working days after we receive the return.",
        "Refunds reach your card within 5 to 7 working days of the return arriving.",
        "Please call our shop in Leeds.",
    ]
    vectors = np.eye(4)  # orthogonal: only ROUGE-L tells them apart below
    judge = [0.5, 0.4, 0.45, 0.9]  # the judge prefers the odd one out
    matrix = pairwise_rouge(texts)
    utility = expected_utility(matrix, vectors, embedding_weight=0.0)
    assert utility[3] < min(utility[:3])
    pick, _ = choose(texts, vectors, judge, [False] * 4, ConsensusChoice(0.0, 0.0))
    assert pick in (0, 1, 2)
    assert pick == int(np.argmax(utility))
    # a heavy judge weight gives the judge's favourite back
    assert choose(texts, vectors, judge, [False] * 4, ConsensusChoice(0.0, 50.0))[0] == 3
    # a candidate with invented facts never beats one without, however central it is
    penalised = [i == pick for i in range(4)]
    assert choose(texts, vectors, judge, penalised, ConsensusChoice(0.0, 0.0))[0] != pick
    # fewer than three candidates: nothing to agree on, the judge decides
    assert (
        choose(texts[2:], vectors[2:, 2:], judge[2:], [False] * 2, ConsensusChoice(0.0, 0.0))[0]
        == 1
    )


def test_the_embedding_weight_blends_cosine_into_the_agreement():
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    rouge = np.zeros((3, 3))
    assert expected_utility(rouge, vectors, 1.0).tolist() == [0.5, 0.5, 0.0]
    assert expected_utility(rouge, vectors, 0.0).tolist() == [0.0, 0.0, 0.0]


def _choice(settings, database):
    from chatbot.indexing.calibration import validation_sample
    from chatbot.indexing.consensus_choice import choose_consensus
    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval.embedding import embed_contexts
    from chatbot.retrieval.stored_pairs import load_pairs

    model = load_embedder(settings.paths)
    records = load_pairs(database, settings.retrieval.index_splits)
    vectors = embed_contexts(model, [(r.message, r.history) for r in records], settings.retrieval)
    return choose_consensus(
        settings.retrieval,
        settings.dialogue,
        model,
        records,
        vectors,
        validation_sample(database),
        1.0,
    )


@pytest.mark.parametrize("truth_is_the_exact_match", [False, True])
def test_consensus_is_switched_on_only_where_the_validation_questions_say_it_pays(
    tiny_settings, migrated_database, truth_is_the_exact_match
):
    seed(migrated_database, truth_is_the_exact_match=truth_is_the_exact_match)
    found = _choice(tiny_settings, migrated_database)
    assert found is not None and found["validation_questions"] == len(TOPICS)
    assert found["candidates"] == tiny_settings.dialogue.fuse_retrieved
    best = f"{found['embedding_weight']:g}/{found['judge_weight']:g}"
    gain = found["fit_by_weights"][best] - found["fit_of_judge_pick"]
    assert gain == pytest.approx(found["gain_over_judge"], abs=2e-4)
    if truth_is_the_exact_match:  # the agents answered this very question their own way
        assert not found["enabled"] and ConsensusChoice.from_meta(found) is None
    else:
        assert found["enabled"] and found["gain_over_judge"] > found["stderr"] > 0


@pytest.mark.parametrize("use_consensus", [True, False])
def test_the_manager_sends_the_agreed_answer_where_consensus_was_chosen(
    tiny_settings, migrated_database, use_consensus, monkeypatch
):
    from chatbot.dialogue.manager import DialogueManager
    from chatbot.text.prompt import PromptFormat
    from tests.test_dialogue_support import build_retriever

    # BM25 alone finds the candidates, as the choice was made (the tiny embedder's
    # vectors carry no meaning)
    settings = tiny_settings.model_copy(
        update={"retrieval": tiny_settings.retrieval.model_copy(update={"lexical_weight": 1.0})}
    )
    exact_match_answer = seed(migrated_database, truth_is_the_exact_match=False)
    choice = ConsensusChoice.from_meta(_choice(settings, migrated_database))
    assert choice is not None
    retriever = build_retriever(settings, migrated_database)
    retriever.consensus = choice
    dialogue = settings.dialogue.model_copy(
        update={
            "generate": False,
            "cache_enabled": False,
            "consensus": use_consensus,
            "handoff_threshold": 0.0,
            "answer_threshold": 0.0,
        }
    )
    manager = DialogueManager(
        dialogue, migrated_database, retriever, None, PromptFormat.from_settings(settings.prompt)
    )
    question = TOPICS["refund"][0]
    reply = manager.respond(question)
    scored = [c for c in reply.to_dict()["candidates"] if "score" in c and "blocked" not in c]
    judges_best = max(scored, key=lambda c: c["score"])
    assert judges_best["text"] == exact_match_answer[question]  # what the critique alone sends
    assert reply.decision == "answer"
    if use_consensus:
        agreed = [a for _, a in TOPICS["refund"][1]]
        assert reply.text in agreed
        sent = next(c for c in scored if c["text"] == reply.text)
        assert reply.confidence == pytest.approx(
            sent["score"]
        )  # the judge's score of what was sent
        assert max(scored, key=lambda c: c["components"]["consensus"])["text"] in agreed
        # the candidates' vectors are kept for the next message, up to the cache's bound
        assert reply.text in manager.choose.vectors
        monkeypatch.setattr("chatbot.dialogue.stages.choose.REPLY_VECTOR_CACHE", 3)
        again = manager.respond(question)
        assert again.text == reply.text and len(manager.choose.vectors) == 3
    else:
        assert reply.text == exact_match_answer[question]
        assert all("consensus" not in c["components"] for c in scored)


def test_chatbot_index_records_the_choice_and_serving_reads_it(tiny_settings, migrated_database):
    from chatbot.dialogue.sources import following_retriever
    from chatbot.indexing.builder import update_index
    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval.retriever import open_retriever

    settings = tiny_settings.model_copy(
        update={"retrieval": tiny_settings.retrieval.model_copy(update={"lexical_weight": 1.0})}
    )
    seed(migrated_database, truth_is_the_exact_match=False)
    model = load_embedder(settings.paths)
    report = update_index(
        settings.paths, settings.retrieval, settings.dialogue, migrated_database, model=model
    )
    recorded = report.fusion["consensus"]
    assert recorded["enabled"] and recorded["validation_questions"] == len(TOPICS)
    serving = following_retriever(
        settings.paths,
        settings.retrieval,
        open_retriever(settings.paths, settings.retrieval, migrated_database, model=model),
    )
    assert serving.consensus == ConsensusChoice.from_meta(recorded)
    assert serving.model is model
