"""The dialogue manager end to end with tiny real models and the real retriever, on
SQLite and PostgreSQL: every decision path, the human-took-over silence, the loop
detector, smoothing across turns, streaming, int8, and that the customer's message is
stored even when answering fails."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from chatbot.dialogue import repository as repo
from chatbot.errors import InputError, StoreError
from chatbot.store.conversations import conversation_messages
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation
from tests.test_dialogue_support import SHOP, FailingReplySource, make_manager, shop  # noqa: F401

RETURN_Q, RETURN_A = SHOP[1][0], SHOP[1][1]
ORDER_Q, ORDER_A = SHOP[0][0], SHOP[0][1]


def stored(database, conversation_id):
    with database.session() as session:
        messages = [
            (m.role, m.text)
            for m in conversation_messages(session=session, conversation_id=conversation_id)
        ]
        replies = repo.replies_of(session=session, conversation_id=conversation_id)
        state = session.get(Conversation, conversation_id).state
    return messages, replies, state


def test_cache_hit_sends_the_approved_answer(shop):
    settings, database, retriever, ids = shop
    reply = make_manager(settings, database, retriever).respond(RETURN_Q)
    assert (reply.decision, reply.reason, reply.sent) == ("answer", "cache_hit", True)
    assert reply.text == reply.shown_text == RETURN_A
    assert reply.citations[0].pair_id == ids[RETURN_Q] and reply.citations[0].snippet
    assert reply.trace == [] and "draft" not in reply.timings  # no generation on a hit
    messages, replies, _ = stored(database, reply.conversation_id)
    assert messages == [("customer", RETURN_Q), ("bot", RETURN_A)]
    assert (
        replies[0].reason == "cache_hit" and replies[0].reply_message_id == reply.reply_message_id
    )


def test_cache_hit_needs_an_approved_origin_and_can_be_disabled(shop):
    settings, database, retriever, ids = shop
    # The same exact match on an imported (not approved) pair is no cache hit.
    assert (
        make_manager(settings, database, retriever, max_rounds=0).respond(ORDER_Q).reason
        != "cache_hit"
    )
    assert (
        make_manager(settings, database, retriever, cache_enabled=False, max_rounds=0)
        .respond(RETURN_Q)
        .reason
        != "cache_hit"
    )


def test_confident_answer_fuses_drafts_with_retrieved_answers(shop):
    settings, database, retriever, ids = shop
    reply = make_manager(settings, database, retriever, max_rounds=1).respond(ORDER_Q)
    assert reply.decision == "answer" and reply.review_status is None
    origins = {c["origin"] for c in reply.to_dict()["candidates"]}
    assert "retrieved" in origins and origins & {"draft", "revision"}  # both kinds competed
    best = reply.to_dict()["candidates"][0]
    assert reply.confidence == pytest.approx(best["score"]) and reply.text == best["text"]
    assert reply.trace[0].kind == "draft" and len(reply.trace) <= 2
    assert reply.citations and all(c.pair_id in ids.values() for c in reply.citations)
    for stage in ("store", "retrieve", "draft", "critique", "fuse", "persist", "total"):
        assert stage in reply.timings
    _, replies, state = stored(database, reply.conversation_id)
    row = replies[0]
    assert state == "open" and row.confidence == pytest.approx(reply.confidence)
    assert (
        row.trace[0]["kind"] == "draft"
        and row.timings["retrieve"] >= 0
        and row.citations == reply.to_dict()["citations"]
    )


@pytest.mark.parametrize("mode", ["flag", "hold"])
def test_between_thresholds_the_reply_is_flagged_or_held(shop, mode):
    settings, database, retriever, _ = shop
    manager = make_manager(
        settings,
        database,
        retriever,
        max_rounds=0,
        answer_threshold=0.99,
        handoff_threshold=0.05,
        review_mode=mode,
    )
    reply = manager.respond(ORDER_Q)
    assert reply.review_status == "pending"
    messages, _, state = stored(database, reply.conversation_id)
    if mode == "flag":
        assert reply.decision == "answer_flagged" and reply.sent and reply.shown_text == reply.text
        assert messages[-1] == ("bot", reply.text)
    else:
        assert reply.decision == "held" and not reply.sent and reply.text
        assert reply.shown_text == manager.settings.hold_message != reply.text
        assert messages[-1] == ("bot", manager.settings.hold_message)
    assert state == "open"


def test_low_confidence_hands_off_and_then_stays_silent_until_handed_back(shop):
    settings, database, retriever, _ = shop
    manager = make_manager(
        settings, database, retriever, max_rounds=0, answer_threshold=1.0, handoff_threshold=0.99
    )
    first = manager.respond(ORDER_Q)
    assert (first.decision, first.reason) == ("handoff", "low_confidence")
    assert (
        first.shown_text == manager.settings.handoff_message and first.text
    )  # the draft is kept for the agent
    cid = first.conversation_id
    assert stored(database, cid)[2] == "handed_off"

    silent = manager.respond("hello? anyone there?", cid)
    assert (silent.decision, silent.sent, silent.shown_text) == ("silent", False, "")
    messages, replies, _ = stored(database, cid)
    assert messages[-1] == ("customer", "hello? anyone there?")  # stored, not answered
    assert [r.decision for r in replies] == ["handoff", "silent"]

    manager.hand_back(cid)
    answering = make_manager(settings, database, retriever, max_rounds=0)
    back = answering.respond(SHOP[4][0], cid)
    assert back.decision in ("answer", "answer_flagged") and stored(database, cid)[2] == "open"
    with pytest.raises(StoreError):
        answering.hand_back(cid)  # not handed off any more


@pytest.mark.parametrize(
    "message", ["can i talk to a real person please?", "i'd rtaher speak to a human", "agent pls"]
)
def test_asking_for_a_human_hands_off_before_retrieval(shop, message):
    settings, database, retriever, _ = shop
    calls = []

    class Counting:
        def search(self, *args, **kwargs):
            calls.append(args)
            return retriever.search(*args, **kwargs)

    reply = make_manager(settings, database, Counting()).respond(message)
    assert (reply.decision, reply.reason) == ("handoff", "customer_asked_for_human")
    assert calls == [] and "draft" not in reply.timings
    assert stored(database, reply.conversation_id)[2] == "handed_off"


def test_the_same_question_three_times_hands_off(shop):
    settings, database, retriever, _ = shop
    manager = make_manager(
        settings, database, retriever, max_rounds=0, handoff_threshold=0.0, answer_threshold=0.0
    )
    question = SHOP[2][0]
    first = manager.respond(question)
    second = manager.respond(
        question.lower().rstrip("."), first.conversation_id
    )  # the same, typed differently
    third = manager.respond(question, first.conversation_id)
    assert first.decision == second.decision == "answer"
    assert third.decision == "handoff" and third.reason == "loop: asked 3 times"


def test_a_different_question_is_no_loop(shop):
    settings, database, retriever, _ = shop
    manager = make_manager(
        settings, database, retriever, max_rounds=0, handoff_threshold=0.0, answer_threshold=0.0
    )
    cid = None
    for question in (SHOP[2][0], SHOP[3][0], SHOP[4][0]):
        reply = manager.respond(question, cid)
        cid = reply.conversation_id
        assert reply.decision == "answer"


def test_out_of_scope_hands_off(shop):
    settings, database, retriever, ids = shop
    manager = make_manager(settings, database, retriever, max_rounds=0)
    # The best past answer is labelled out of scope.
    labelled = manager.respond(SHOP[5][0])
    assert labelled.decision == "handoff" and labelled.reason.startswith("out_of_scope")
    assert labelled.citations[0].pair_id == ids[SHOP[5][0]]

    # The retriever itself says nothing fits.
    class NothingFits:
        def search(self, query, **kwargs):
            result = retriever.search(query, **kwargs)
            return type(result)(result.hits, True, 0.01)

    flagged = make_manager(settings, database, NothingFits(), max_rounds=0).respond(ORDER_Q)
    assert (flagged.decision, flagged.reason) == ("handoff", "out_of_scope")
    off = make_manager(
        settings, database, NothingFits(), max_rounds=0, handoff_on_out_of_scope=False
    ).respond(ORDER_Q)
    assert off.decision != "handoff"


def test_past_answers_that_hand_off_hand_off(shop):
    settings, database, retriever, _ = shop
    reply = make_manager(settings, database, retriever, max_rounds=0).respond(SHOP[6][0])
    assert reply.decision == "handoff" and reply.reason.startswith("past answers hand off")


def test_the_message_is_stored_when_generation_raises(shop):
    settings, database, retriever, _ = shop
    reply = make_manager(settings, database, retriever, source=FailingReplySource()).respond(
        ORDER_Q
    )
    messages, replies, _ = stored(database, reply.conversation_id)
    assert messages[0] == ("customer", ORDER_Q)
    # Retrieved answers still compete; the failure is on record.
    assert reply.trace == [] and reply.to_dict()["candidates"][-1]["error"].startswith(
        "RuntimeError"
    )
    assert {c.get("origin") for c in reply.to_dict()["candidates"][:-1]} == {
        "retrieved"
    } and replies[0].decision == reply.decision


def test_the_message_is_stored_when_retrieval_raises(shop):
    settings, database, _, _ = shop

    class Broken:
        def search(self, *args, **kwargs):
            raise RuntimeError("index file vanished")

    manager = make_manager(settings, database, Broken())
    with pytest.raises(RuntimeError):
        manager.respond("where is my parcel?")
    with database.session() as session:
        cid = session.scalar(select(Conversation.id).where(Conversation.channel == "live"))
        messages = conversation_messages(session=session, conversation_id=cid)
        assert [(m.role, m.text) for m in messages] == [("customer", "where is my parcel?")]
        assert session.scalar(select(DialogueReply.id)) is None


def test_confidence_is_smoothed_across_turns(shop):
    settings, database, retriever, _ = shop
    manager = make_manager(
        settings, database, retriever, max_rounds=0, smoothing=0.5, handoff_threshold=0.0
    )
    first = manager.respond(ORDER_Q)
    second = manager.respond("thanks, and what about my card?", first.conversation_id)
    assert first.smoothed_confidence == pytest.approx(first.confidence)
    assert second.smoothed_confidence == pytest.approx(
        0.5 * second.confidence + 0.5 * first.smoothed_confidence, abs=1e-3
    )


def test_empty_and_oversized_messages_are_refused(shop):
    settings, database, retriever, _ = shop
    manager = make_manager(settings, database, retriever)
    with pytest.raises(InputError):
        manager.respond("   ")
    with pytest.raises(InputError):
        manager.respond("x" * 5000)


def test_streaming_thinks_then_streams_the_final_text(shop):
    settings, database, retriever, _ = shop
    events = list(make_manager(settings, database, retriever, max_rounds=1).respond_stream(ORDER_Q))
    kinds = [e.kind for e in events]
    assert kinds[-1] == "done" and "stage" in kinds and "round" in kinds
    reply = events[-1].reply
    tokens = [e.text for e in events if e.kind == "token"]
    # The tiny model drafts only line breaks (nothing to show), so the chosen text streams after the rounds.
    assert len(tokens) > 1 and "".join(tokens) == reply.shown_text
    assert max(i for i, k in enumerate(kinds) if k == "round") < kinds.index("token")


def test_int8_model_is_used_when_configured(shop):
    import torch

    settings, database, retriever, _ = shop
    manager = make_manager(settings, database, retriever, quantize="int8", max_rounds=0)
    model, _, version = manager.reply_model()
    assert version.endswith("+int8")
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert manager.reply_model()[0] is model  # quantised once, kept
    from chatbot.dialogue.compress import linear_weight_bytes

    original = manager.reply_source.get()[0]
    assert any(
        type(m) is torch.nn.Linear for m in original.modules()
    )  # the source's model is untouched
    assert linear_weight_bytes(model) * 3 < linear_weight_bytes(original)
    reply = manager.respond(ORDER_Q)
    assert reply.model_version.endswith("+int8") and reply.trace[0].kind == "draft"


def test_a_conversations_topic_label_speaks_for_its_opening_reply_only(shop):
    """A later, in-scope question in a conversation opened off topic (and so labelled
    out_of_scope as a whole) is answered from its reply, not handed off."""
    from chatbot.store.schema import Message, TrainingPair
    from tests.test_dialogue_support import build_retriever

    settings, database, _, _ = shop
    question, answer = (
        "And how do I track the parcel of my kettle order?",
        "Use Orders > select the order > Track parcel.",
    )
    with database.session() as session:
        conversation = Conversation(
            source="test-shop", external_id="shop-mixed", channel="import", split="train"
        )
        session.add(conversation)
        session.flush()
        opening = [
            ("customer", "Which stocks should I buy?"),
            ("agent", "Sorry, I can't help with that."),
            ("customer", question),
            ("agent", answer),
        ]
        session.add_all(
            [
                Message(conversation_id=conversation.id, turn_index=i, role=role, text=text)
                for i, (role, text) in enumerate(opening)
            ]
        )
        context = [{"role": role, "text": text} for role, text in opening[:3]]
        session.add(
            TrainingPair(
                conversation_id=conversation.id,
                turn_index=3,
                source="test-shop",
                origin="imported",
                split="train",
                context=context,
                target=answer,
                labels={"topic": "out_of_scope"},
                content_hash="mixed-conversation-pair",
            )
        )
    retriever = build_retriever(settings, database)
    manager = make_manager(
        settings,
        database,
        retriever,
        max_rounds=0,
        generate=False,
        handoff_threshold=0.0,
        answer_threshold=0.0,
        cache_enabled=False,
    )
    assert retriever.search(question, k=1).hits[0].reply_text == answer
    reply = manager.respond(question)
    assert reply.decision == "answer" and reply.text == answer, reply.reason
    # The opening reply of an off-topic conversation still hands off.
    assert manager.respond(SHOP[5][0]).reason.startswith("out_of_scope")
