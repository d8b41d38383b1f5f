"""The agents' half of the loop on SQLite and PostgreSQL, with the real dialogue manager
(tiny models, real index): hand-offs land in the queue with their reason, held and
flagged replies too; two agents taking one conversation at once (exactly one wins);
approve / edit / reject / reply / release / hand back with their ownership rules; the
training pairs they write (provenance, context), which training and the index read; a
rejection kept as a negative example; and an edited answer served from the answer cache
to the next customer who asks the same, before any index rebuild."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from chatbot.dialogue import repository as repo
from chatbot.dialogue.answer_cache import AnswerCatalogue, Vocabulary, compact, features, similarity
from chatbot.errors import AccessDenied, InputError, StoreError
from chatbot.store.conversations import add_message, conversation_messages
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.enums import PairOrigin
from chatbot.store.schema import Conversation, TrainingPair
from chatbot.store.support_schema import AgentAction, User
from chatbot.support import customer, feedback, review, review_pairs
from chatbot.support.queue import conversation_detail, load_queue, reason_group
from chatbot.text.measures import question_similarity
from tests.test_dialogue_support import SHOP, make_manager, shop  # noqa: F401

# The key the tests' conversation tokens are issued with (Services get the same one).
KEY = customer.token_key("test session secret, not used anywhere else")

ORDER_Q = SHOP[0][0]
PASSWORD_Q = SHOP[3][0]
DELIVERY_Q = SHOP[4][0]


@dataclass(frozen=True)
class Actor:
    """What the review functions need of a logged-in account."""

    id: int
    username: str


def add_agent(database, username: str) -> Actor:
    with database.session() as session:
        user = User(username=username, password_hash="not-a-real-hash", role="agent")
        session.add(user)
        session.flush()
        return Actor(user.id, user.username)


@pytest.fixture
def agents(shop):
    database = shop[1]
    return add_agent(database, "alice"), add_agent(database, "bob")


def held_manager(settings, database, retriever):
    """Every answer lands between the thresholds and is held for an agent."""
    return make_manager(
        settings,
        database,
        retriever,
        max_rounds=0,
        answer_threshold=0.99,
        handoff_threshold=0.05,
        review_mode="hold",
    )


def flagging_manager(settings, database, retriever):
    return make_manager(
        settings,
        database,
        retriever,
        max_rounds=0,
        answer_threshold=0.99,
        handoff_threshold=0.05,
        review_mode="flag",
    )


def unsure_manager(settings, database, retriever):
    """Every answer hands off for low confidence (the draft kept for the agent)."""
    return make_manager(
        settings, database, retriever, max_rounds=0, answer_threshold=1.0, handoff_threshold=0.99
    )


def messages_of(database, conversation_id):
    with database.session() as session:
        return [
            (m.role, m.text)
            for m in conversation_messages(session=session, conversation_id=conversation_id)
        ]


def conversation(database, conversation_id) -> Conversation:
    with database.session() as session:
        return session.get(Conversation, conversation_id)


def actions(database, conversation_id=None) -> list[AgentAction]:
    with database.session() as session:
        query = select(AgentAction).order_by(AgentAction.id)
        if conversation_id is not None:
            query = query.where(AgentAction.conversation_id == conversation_id)
        return list(session.scalars(query))


def pair(database, pair_id) -> TrainingPair:
    with database.session() as session:
        return session.get(TrainingPair, pair_id)


def queue_ids(database, reason=None) -> list[int]:
    with database.session() as session:
        return [i.conversation_id for i in load_queue(session, reason=reason).items]


# -- hand-off bookkeeping and the queue ----------------------------------------------------


def test_a_handoff_waits_in_the_queue_with_its_reason(shop, agents):
    settings, database, retriever, _ = shop
    manager = make_manager(settings, database, retriever)
    asked = manager.respond("can i talk to a real person please?")
    unsure = unsure_manager(settings, database, retriever).respond(ORDER_Q)
    row = conversation(database, asked.conversation_id)
    assert (row.state, row.handoff_reason, row.assigned_user_id) == (
        "handed_off",
        "customer_asked_for_human",
        None,
    )
    assert row.handed_off_at is not None
    assert conversation(database, unsure.conversation_id).handoff_reason == "low_confidence"

    with database.session() as session:
        view = load_queue(session)
    assert [i.conversation_id for i in view.items] == [
        asked.conversation_id,
        unsure.conversation_id,
    ]  # oldest first
    first = view.items[0]
    assert (first.state, first.group, first.group_label, first.owner) == (
        "handed_off",
        "customer_asked",
        "customer asked",
        None,
    )
    assert (
        first.preview == "can i talk to a real person please?"
        and first.waiting_since.tzinfo is not None
    )
    assert (
        view.counts["customer_asked"] == 1
        and view.counts["low_confidence"] == 1
        and view.total == 2
    )
    assert queue_ids(database, "low_confidence") == [unsure.conversation_id]
    assert queue_ids(database, "all") == queue_ids(database)
    with pytest.raises(InputError):
        queue_ids(database, "no such reason")

    alice, _ = agents
    review.take_over(database, asked.conversation_id, alice)
    with database.session() as session:
        taken = load_queue(session).items[0]
    assert (taken.owner, taken.owner_id) == ("alice", alice.id)  # still listed, with who has it


def test_reason_groups():
    assert reason_group("customer_asked_for_human") == "customer_asked"
    assert reason_group("out_of_scope: past answers are labelled out_of_scope") == "out_of_scope"
    assert reason_group("past answers hand off (handoff)") == "handoff_topic"
    assert reason_group("loop: asked 3 times") == "loop"
    assert reason_group("assistant_failed") == reason_group("no_candidate") == "assistant_failed"
    assert reason_group("low_confidence") == "low_confidence"
    assert reason_group("taken_over_by_agent") == "taken_over"
    assert reason_group(None) == reason_group("something new") == "other"


def test_the_talk_to_a_person_button_hands_off_once(shop):
    settings, database, retriever, _ = shop
    manager = make_manager(settings, database, retriever)
    first = manager.respond(PASSWORD_Q)
    assert first.decision in ("answer", "answer_flagged")
    assert manager.request_human(first.conversation_id) == manager.settings.handoff_message
    assert (
        manager.request_human(first.conversation_id) is None
    )  # a human is in charge already: no second notice
    messages = messages_of(database, first.conversation_id)
    assert messages[-1] == ("bot", manager.settings.handoff_message) and messages[-2][0] == "bot"
    row = conversation(database, first.conversation_id)
    assert (row.state, row.handoff_reason, row.assigned_user_id) == (
        "handed_off",
        "customer_asked_for_human",
        None,
    )
    # The assistant stays silent now.
    assert manager.respond("hello?", first.conversation_id).decision == "silent"
    with database.session() as session:
        with pytest.raises(StoreError):
            repo.request_human(session=session, conversation_id=999999, message="x")


# -- ownership -----------------------------------------------------------------------------


def test_two_agents_taking_one_conversation_at_once_exactly_one_wins(shop, agents):
    settings, database, retriever, _ = shop
    cid = (
        make_manager(settings, database, retriever)
        .respond("i want to speak to a human")
        .conversation_id
    )
    alice, bob = agents
    for _ in range(3):  # a few rounds, so the race really happens both ways
        barrier = threading.Barrier(2)
        outcomes: dict[str, object] = {}

        def grab(agent, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            try:
                outcomes[agent.username] = review.take_over(database, cid, agent)
            except AccessDenied as exc:
                outcomes[agent.username] = exc

        threads = [threading.Thread(target=grab, args=(a,)) for a in (alice, bob)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [name for name, o in outcomes.items() if isinstance(o, review.ActionResult)]
        losers = [o for o in outcomes.values() if isinstance(o, AccessDenied)]
        assert len(winners) == 1 and len(losers) == 1
        assert str(losers[0]) == f"conversation {cid} is being handled by {winners[0]}"
        winner = alice if winners[0] == "alice" else bob
        assert conversation(database, cid).assigned_user_id == winner.id
        review.release(database, cid, winner)
    taken = [a for a in actions(database, cid) if a.action == "take_over"]
    assert len(taken) == 3  # one per round: the loser wrote nothing


def test_another_agents_conversation_is_refused_and_the_owner_may_take_it_again(shop, agents):
    settings, database, retriever, _ = shop
    alice, bob = agents
    reply = unsure_manager(settings, database, retriever).respond(ORDER_Q)
    cid = reply.conversation_id
    assert review.take_over(database, cid, alice).took_over
    again = review.take_over(database, cid, alice)
    assert not again.took_over and "already yours" in again.message
    refused = [
        lambda: review.take_over(database, cid, bob),
        lambda: review.approve(database, reply.id, bob),
        lambda: review.edit(database, reply.id, bob, "something else"),
        lambda: review.reject(database, reply.id, bob, "wrong"),
        lambda: review.reply(database, cid, bob, "hi, bob here"),
        lambda: review.hand_back(database, cid, bob),
        lambda: review.release(database, cid, bob),
    ]
    for attempt in refused:
        with pytest.raises(AccessDenied, match=f"conversation {cid} is being handled by alice"):
            attempt()
    assert messages_of(database, cid)[-1][0] == "bot"  # bob sent nothing
    assert [a.action for a in actions(database, cid)] == ["take_over"]
    with pytest.raises(StoreError):
        review.take_over(database, 999999, alice)
    with pytest.raises(AccessDenied):
        review.take_over(database, cid, None)


def test_taking_an_open_conversation_hands_it_to_the_human(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    held = held_manager(settings, database, retriever).respond(ORDER_Q)
    assert conversation(database, held.conversation_id).state == "open"
    review.take_over(database, held.conversation_id, alice)
    row = conversation(database, held.conversation_id)
    assert (row.state, row.handoff_reason, row.assigned_user_id) == (
        "handed_off",
        "taken_over_by_agent",
        alice.id,
    )
    taken = actions(database, held.conversation_id)[0]
    assert (taken.action, taken.username, taken.user_id) == ("take_over", "alice", alice.id)
    assert (taken.reply_id, taken.original_text) == (
        held.id,
        held.text,
    )  # the suggestion waiting then


def test_approving_in_a_handed_off_conversation_takes_it_first(shop, agents):
    settings, database, retriever, _ = shop
    alice, bob = agents
    reply = unsure_manager(settings, database, retriever).respond(ORDER_Q)
    result = review.approve(database, reply.id, alice)
    assert (
        result.took_over
        and conversation(database, reply.conversation_id).assigned_user_id == alice.id
    )
    assert [a.action for a in actions(database, reply.conversation_id)] == ["take_over", "approve"]
    # The draft kept for the agent is now what the customer sees.
    assert messages_of(database, reply.conversation_id)[-1] == ("agent", reply.text)
    with pytest.raises(AccessDenied):
        review.reply(database, reply.conversation_id, bob, "me too")


# -- decisions on suggestions ---------------------------------------------------------------


def test_held_replies_are_queued_and_approving_sends_them(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    manager = held_manager(settings, database, retriever)
    held = manager.respond(ORDER_Q)
    assert held.decision == "held" and held.review_status == "pending"
    assert messages_of(database, held.conversation_id)[-1] == ("bot", manager.settings.hold_message)
    with database.session() as session:
        item = load_queue(session).items[0]
    assert (item.conversation_id, item.state, item.group, item.pending_replies) == (
        held.conversation_id,
        "open",
        "held",
        1,
    )
    assert (
        queue_ids(database, "held") == [held.conversation_id]
        and queue_ids(database, "flagged") == []
    )

    result = review.approve(database, held.id, alice)
    assert not result.took_over  # a held reply in an open conversation stays with the assistant
    messages = messages_of(database, held.conversation_id)
    assert messages[-1] == ("agent", held.text)  # what the customer now sees
    assert conversation(database, held.conversation_id).state == "open"
    assert queue_ids(database) == []

    written = pair(database, result.pair_id)
    assert (written.origin, written.source, written.split, written.target) == (
        "agent_approved",
        "agent-review",
        "train",
        held.text,
    )
    assert (
        written.turn_index == len(messages) - 1 and written.conversation_id == held.conversation_id
    )
    assert written.context == [
        {"role": "customer", "text": ORDER_Q}
    ]  # the hold notice is no part of it
    labels = written.labels
    assert (
        labels["agent"],
        labels["original_suggestion"],
        labels["reply_id"],
        labels["action"],
    ) == ("alice", held.text, held.id, "approve")
    assert labels["reviewed_at"]
    action = actions(database, held.conversation_id)[-1]
    assert (
        action.action,
        action.user_id,
        action.username,
        action.text,
        action.original_text,
        action.pair_id,
    ) == ("approve", alice.id, "alice", held.text, held.text, result.pair_id)
    assert action.message_id == result.message_id and action.created_at is not None
    with database.session() as session:
        assert session.get(DialogueReply, held.id).review_status == "approved"

    with pytest.raises(InputError, match="already approved"):
        review.approve(database, held.id, alice)  # a second click sends nothing twice
    assert len(messages_of(database, held.conversation_id)) == len(messages)


def test_approving_a_flagged_reply_does_not_send_it_twice(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    flagged = flagging_manager(settings, database, retriever).respond(ORDER_Q)
    assert flagged.decision == "answer_flagged"
    assert queue_ids(database, "flagged") == [flagged.conversation_id]
    before = messages_of(database, flagged.conversation_id)
    result = review.approve(database, flagged.id, alice)
    assert messages_of(database, flagged.conversation_id) == before
    assert result.message_id == flagged.reply_message_id
    written = pair(database, result.pair_id)
    assert written.turn_index == len(before) - 1 and written.target == flagged.text
    assert queue_ids(database) == []


def test_editing_sends_the_new_text_and_keeps_the_original(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    manager = flagging_manager(settings, database, retriever)
    first = manager.respond(PASSWORD_Q)
    second = manager.respond(ORDER_Q, first.conversation_id)
    assert second.review_status == "pending"
    edited = "  Your parcel is on its way: track it under Orders > Track parcel. <b>not bold</b>  "
    result = review.edit(database, second.id, alice, edited)
    messages = messages_of(database, second.conversation_id)
    assert messages[-1] == ("agent", edited.strip())  # stored as typed, markup and all
    written = pair(database, result.pair_id)
    assert (written.origin, written.target) == ("agent_edited", edited.strip())
    assert (
        written.labels["original_suggestion"] == second.text and written.labels["action"] == "edit"
    )
    # The turns before, oldest first, ending with the customer message it answers.
    assert [t["role"] for t in written.context] == ["customer", "bot", "customer"]
    assert written.context[0]["text"] == PASSWORD_Q and written.context[-1] == {
        "role": "customer",
        "text": ORDER_Q,
    }
    action = actions(database, second.conversation_id)[-1]
    assert (action.action, action.text, action.original_text) == (
        "edit",
        edited.strip(),
        second.text,
    )
    with database.session() as session:
        assert session.get(DialogueReply, second.id).review_status == "edited"


def test_an_edit_that_changes_nothing_is_an_approval(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    held = held_manager(settings, database, retriever).respond(ORDER_Q)
    result = review.edit(database, held.id, alice, f"  {held.text}\n")
    assert result.action == "approve" and pair(database, result.pair_id).origin == "agent_approved"


def test_rejecting_keeps_a_negative_example_and_sends_nothing(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    held = held_manager(settings, database, retriever).respond(ORDER_Q)
    before = messages_of(database, held.conversation_id)
    with pytest.raises(InputError):
        review.reject(database, held.id, alice, "   ")  # a rejection says why
    review.reject(database, held.id, alice, "made up a delivery date")
    assert messages_of(database, held.conversation_id) == before
    action = actions(database, held.conversation_id)[-1]
    assert (action.action, action.original_text, action.reason, action.pair_id) == (
        "reject",
        held.text,
        "made up a delivery date",
        None,
    )
    with database.session() as session:
        assert session.get(DialogueReply, held.id).review_status == "rejected"
        assert (
            session.scalar(
                select(func.count())
                .select_from(TrainingPair)
                .where(TrainingPair.source == "agent-review")
            )
            == 0
        )
        examples = review_pairs.rejected_examples(session)
    assert len(examples) == 1
    context, text = examples[0]
    assert context == [{"role": "customer", "text": ORDER_Q}] and text == held.text
    with pytest.raises(InputError, match="already rejected"):
        review.approve(database, held.id, alice)


def test_a_handoff_without_a_draft_is_answered_by_an_edit(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    asked = make_manager(settings, database, retriever).respond(
        "Can I speak to a human about my order?"
    )
    assert (asked.decision, asked.text) == ("handoff", "")
    result = review.edit(
        database, asked.id, alice, "Of course, I'm here. What is your order number?"
    )
    assert result.action == "edit" and result.took_over
    written = pair(database, result.pair_id)
    assert written.labels["original_suggestion"] == "" and written.context[-1]["role"] == "customer"
    assert messages_of(database, asked.conversation_id)[-1] == (
        "agent",
        "Of course, I'm here. What is your order number?",
    )


def test_bad_text_is_refused_and_nothing_is_written(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    held = held_manager(settings, database, retriever).respond(ORDER_Q)
    for text in ("", "   \n", "x" * (review.MAX_TEXT_CHARS + 1)):
        with pytest.raises(InputError):
            review.edit(database, held.id, alice, text)
        with pytest.raises(InputError):
            review.reply(database, held.conversation_id, alice, text)
    assert (
        actions(database) == []
        and conversation(database, held.conversation_id).assigned_user_id is None
    )
    with pytest.raises(StoreError):
        review.approve(database, 999999, alice)
    asked = make_manager(settings, database, retriever).respond("agent pls")
    with pytest.raises(InputError, match="no suggested text"):
        review.approve(database, asked.id, alice)  # a hand-off on request has nothing to approve


def test_a_free_reply_takes_the_conversation_and_reaches_the_customer(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    cid = make_manager(settings, database, retriever).respond("agent pls").conversation_id
    result = review.reply(
        database, cid, alice, "Hi, Alice here. <script>alert(1)</script> How can I help?"
    )
    assert result.took_over
    assert messages_of(database, cid)[-1] == (
        "agent",
        "Hi, Alice here. <script>alert(1)</script> How can I help?",
    )
    with database.session() as session:
        detail = conversation_detail(session, cid)
    assert detail.owner == "alice" and detail.messages[-1].agent == "alice"
    assert (detail.suggestion.decision, detail.suggestion.text) == (
        "handoff",
        "",
    )  # nothing drafted
    assert [a.action for a in actions(database, cid)] == ["take_over", "reply"]


# -- the loop closes ---------------------------------------------------------------------------


def test_hand_back_then_the_assistant_answers_the_next_message(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    manager = make_manager(settings, database, retriever, max_rounds=0)
    cid = manager.respond("i'd like to talk to a person").conversation_id
    review.reply(database, cid, alice, "Hello! The password reset link is on the sign-in page.")
    assert manager.respond("ok thanks", cid).decision == "silent"
    with pytest.raises(AccessDenied):
        review.release(database, cid, add_agent(database, "carol"))
    review.hand_back(database, cid, alice)
    row = conversation(database, cid)
    assert (row.state, row.assigned_user_id) == ("open", None)
    assert row.handoff_reason == "customer_asked_for_human"  # kept as history
    back = manager.respond(DELIVERY_Q, cid)
    assert back.decision in ("answer", "answer_flagged") and back.sent
    assert messages_of(database, cid)[-1] == ("bot", back.shown_text)
    assert cid not in queue_ids(database) or back.decision == "answer_flagged"
    with pytest.raises(InputError, match="not with a human"):
        review.hand_back(database, cid, alice)
    assert [a.action for a in actions(database, cid)] == ["take_over", "reply", "hand_back"]


def test_an_edited_answer_is_served_from_the_cache_to_the_next_customer(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    question = "Do you ship to Canada?"
    # Nothing in the shop answers it: typically handed off as out of scope, without a draft.
    first = make_manager(settings, database, retriever, max_rounds=0).respond(question)
    answer = "Yes: we ship to Canada in 5-8 working days; duties are paid at delivery."
    result = review.edit(database, first.id, alice, answer)
    written = pair(database, result.pair_id)
    assert (written.origin, written.labels["original_suggestion"]) == ("agent_edited", first.text)
    assert written.context == [{"role": "customer", "text": question}]
    if conversation(database, first.conversation_id).state == "handed_off":
        review.hand_back(database, first.conversation_id, alice)

    # A new customer, the same question (typed differently); the index was not rebuilt.
    manager = make_manager(settings, database, retriever, max_rounds=0)
    served = manager.respond("do you ship to canada")
    assert (served.decision, served.reason, served.sent) == ("answer", "cache_hit", True)
    assert served.text == served.shown_text == answer
    assert served.conversation_id != first.conversation_id
    assert served.citations[0].pair_id == result.pair_id and served.citations[0].snippet == answer
    assert (
        served.candidates[0].origin == "cache"
        and served.confidence >= settings.dialogue.cache_threshold
    )
    assert "retrieve" not in served.timings  # answered before any search
    assert messages_of(database, served.conversation_id) == [
        ("customer", "do you ship to canada"),
        ("bot", answer),
    ]

    # A follow-up question in a conversation with history is not answered from the cache.
    follow_up = manager.respond(question, manager.respond(PASSWORD_Q).conversation_id)
    assert follow_up.reason != "cache_hit"
    # The cache can be switched off.
    assert (
        make_manager(settings, database, retriever, max_rounds=0, cache_enabled=False)
        .respond(question)
        .reason
        != "cache_hit"
    )


def test_a_later_correction_wins_and_a_deleted_pair_is_no_longer_served(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    manager = make_manager(settings, database, retriever, max_rounds=0)
    first = unsure_manager(settings, database, retriever).respond("Do you ship to Canada?")
    review.edit(database, first.id, alice, "Yes, in 5-8 working days.")
    second = unsure_manager(settings, database, retriever).respond("Do you ship to Canada?")
    newer = review.edit(database, second.id, alice, "Yes, in 3-5 working days since March.")
    assert manager.respond("Do you ship to Canada?").text == "Yes, in 3-5 working days since March."
    with database.session() as session:
        session.delete(session.get(TrainingPair, newer.pair_id))
    assert manager.respond("Do you ship to Canada?").text == "Yes, in 5-8 working days."


def test_agents_pairs_feed_training_and_the_index(shop, agents):
    from chatbot.indexing.builder import update_index
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.retrieval.stored_pairs import load_pairs
    from chatbot.training.data import load_training_data
    from chatbot.training.settings import TrainingSettings

    settings, database, retriever, ids = shop
    alice, _ = agents
    held = held_manager(settings, database, retriever).respond("Do you ship to Canada?")
    edited = review.edit(database, held.id, alice, "Yes, we ship to Canada in 5-8 working days.")
    approved = review.approve(
        database, held_manager(settings, database, retriever).respond(ORDER_Q).id, alice
    )
    with database.session() as session:
        session.add(
            TrainingPair(
                source="test-shop",
                origin="imported",
                split="val",
                context=[{"role": "customer", "text": "hi"}],
                target="Hello! How can I help?",
                labels={},
                content_hash="val-pair",
            )
        )

    data = load_training_data(database, TrainingSettings(min_train_pairs=1, min_val_pairs=1))
    weights = {p.id: p.weight for p in data.train}
    cfg = TrainingSettings()
    assert weights[edited.pair_id] == pytest.approx(cfg.origin_weights["agent_edited"])
    assert weights[approved.pair_id] == pytest.approx(cfg.origin_weights["agent_approved"])
    assert data.snapshot["train_by_origin"]["agent_edited"] == 1

    assert {edited.pair_id, approved.pair_id} <= {p.id for p in load_pairs(database, ["train"])}
    from chatbot.models.embedder import load_embedder

    model = load_embedder(settings.paths)
    update_index(
        settings.paths,
        settings.retrieval,
        settings.dialogue,
        database,
        model=model,
        calibrate=False,
    )
    rebuilt = open_retriever(settings.paths, settings.retrieval, database, model=model)
    assert rebuilt.search("Do you ship to Canada?", k=1).hits[0].pair_id == edited.pair_id


# -- customers' thumbs-down ------------------------------------------------------------------


def test_a_cached_answer_the_customer_said_was_wrong_shows_its_pair_to_the_agents(shop, agents):
    settings, database, retriever, _ = shop
    alice, _ = agents
    first = make_manager(settings, database, retriever, max_rounds=0).respond(
        "Do you ship to Canada?"
    )
    answer = "Yes: we ship to Canada in 5-8 working days."
    approved = review.edit(database, first.id, alice, answer)
    if conversation(database, first.conversation_id).state == "handed_off":
        review.hand_back(database, first.conversation_id, alice)

    token = customer.new_token(KEY)
    cid = customer.open_conversation(database, token, KEY)
    served = make_manager(settings, database, retriever, max_rounds=0).respond(
        "do you ship to canada", cid
    )
    assert (served.reason, served.review_status, served.text) == ("cache_hit", None, answer)
    assert cid not in queue_ids(database)
    comment = "You don't: my parcel came back."
    customer.give_feedback(database, token, served.reply_message_id, -1, comment)

    assert queue_ids(database, "customer_said_wrong") == [cid]
    with database.session() as session:
        suggestion = conversation_detail(session, cid).suggestion
        negatives = feedback.customer_negatives(session=session)
    assert suggestion.reply_id == served.id and suggestion.customer_said_wrong
    assert suggestion.feedback.comment == comment
    # Which approved pair it came from, and that pair in full.
    assert suggestion.cached_pair_id == approved.pair_id
    cited = suggestion.citations[0]
    assert (cited.pair_id, cited.origin, cited.answer) == (approved.pair_id, "agent_edited", answer)
    assert [
        (n.context, n.text, n.comment, n.cached_pair_id, n.label, n.review_status, n.reply_id)
        for n in negatives
    ] == [
        (
            [{"role": "customer", "text": "do you ship to canada"}],
            answer,
            comment,
            approved.pair_id,
            "customer_said_wrong",
            "pending",
            served.id,
        )
    ]


def test_a_reply_the_customer_said_was_wrong_is_never_a_good_answer(shop):
    from chatbot.retrieval.stored_pairs import load_pairs
    from chatbot.training.data import load_training_data
    from chatbot.training.settings import TrainingSettings

    settings, database, _, _ = shop
    question = "Can I collect my order at the warehouse?"
    wrong = "Yes, the warehouse is open for collection every Sunday from 6 am."
    token = customer.new_token(KEY)
    cid = customer.open_conversation(database, token, KEY)
    with database.session() as session:
        session.add(
            TrainingPair(
                source="test-shop",
                origin="imported",
                split="val",
                context=[{"role": "customer", "text": "hi"}],
                target="Hello! How can I help?",
                labels={},
                content_hash="val-pair",
            )
        )
        greeting = add_message(session=session, conversation_id=cid, role="customer", text="hi")
        hello = add_message(session=session, conversation_id=cid, role="bot", text="Hello!")
        asked = add_message(session=session, conversation_id=cid, role="customer", text=question)
        shown = add_message(session=session, conversation_id=cid, role="bot", text=wrong)
        for customer_message, bot_message, decision in (
            (greeting, hello, "act"),
            (asked, shown, "answer"),
        ):
            session.add(
                DialogueReply(
                    conversation_id=cid,
                    message_id=customer_message.id,
                    reply_message_id=bot_message.id,
                    decision=decision,
                    reason="confident: retrieved won",
                    text=bot_message.text,
                    shown_text=bot_message.text,
                    sent=True,
                )
            )
        shown_id = shown.id
        pairs_before = session.scalar(select(func.count()).select_from(TrainingPair))

    customer.give_feedback(database, token, shown_id, -1, "There is no collection.")
    with database.session() as session:
        negatives = feedback.customer_negatives(session=session)
        assert session.scalar(select(func.count()).select_from(TrainingPair)) == pairs_before
    assert [(n.context, n.text, n.comment, n.decision, n.cached_pair_id) for n in negatives] == [
        (
            [
                {"role": "customer", "text": "hi"},
                {"role": "bot", "text": "Hello!"},
                {"role": "customer", "text": question},
            ],
            wrong,
            "There is no collection.",
            "answer",
            None,
        )
    ]

    # Training, the index and the answer cache (whatever origins it serves) never take it.
    data = load_training_data(database, TrainingSettings(min_train_pairs=1, min_val_pairs=1))
    assert wrong not in {p.target for p in data.train + data.val}
    assert wrong not in {p.target for p in load_pairs(database, ["train", "val", "test"])}
    catalogue = AnswerCatalogue([str(o) for o in PairOrigin])
    with database.session() as session:
        match = catalogue.lookup(session, question, 0.5)
    assert match is None or match.pair.answer != wrong

    # Taken back: no longer a negative example.
    customer.withdraw_feedback(database, token, shown_id)
    with database.session() as session:
        assert feedback.customer_negatives(session=session) == []


# -- the conversation view ---------------------------------------------------------------------


def test_the_detail_shows_the_suggestion_its_evidence_and_trace(shop, agents):
    settings, database, retriever, ids = shop
    manager = make_manager(
        settings,
        database,
        retriever,
        max_rounds=1,
        answer_threshold=0.99,
        handoff_threshold=0.05,
        review_mode="hold",
    )
    held = manager.respond(ORDER_Q)
    with database.session() as session:
        detail = conversation_detail(session, held.conversation_id)
    assert [m.role for m in detail.messages] == ["customer", "bot"]
    suggestion = detail.suggestion
    assert (suggestion.reply_id, suggestion.text, suggestion.decision) == (
        held.id,
        held.text,
        "held",
    )
    assert (
        suggestion.confidence == pytest.approx(held.confidence) and suggestion.question == ORDER_Q
    )
    assert detail.pending_reply_ids == [held.id] and not suggestion.shown_to_customer
    assert suggestion.trace and suggestion.trace[0]["kind"] == "draft"
    assert suggestion.candidates and suggestion.candidates[0]["score"] == pytest.approx(
        held.confidence
    )
    cited = suggestion.citations
    assert cited and all(c.found for c in cited)
    answers = {question: answer for question, answer, *_ in SHOP}
    for c in cited:
        assert c.answer == answers[c.question] and c.answer.startswith(c.snippet.rstrip("…"))
    with pytest.raises(StoreError):
        with database.session() as session:
            conversation_detail(session, 999999)


# -- the cache's arithmetic --------------------------------------------------------------------


@pytest.mark.parametrize(
    "a,b",
    [
        ("Where is my order?", "where is my order"),
        ("whre is my ordr", "Where is my order? It was late."),
        ("Do you ship to Canada?", "How long does delivery take?"),
        ("", "anything"),
        ("!!!", "???"),
        ("I would like to return a kettle", "return kettle how"),
    ],
)
def test_the_catalogue_measures_similarity_exactly_as_the_dialogue_does(a, b):
    assert similarity(features(a), features(b)) == pytest.approx(question_similarity(a, b))
    # As the catalogue keeps them: the cached question's keys are a shared vocabulary's
    # ints, in a tuple; the query's new words are not added to it.
    vocabulary = Vocabulary()
    cached = compact(features(b, vocabulary))
    size = len(vocabulary)
    assert similarity(features(a, vocabulary, grow=False), cached) == pytest.approx(
        question_similarity(a, b)
    )
    assert len(vocabulary) == size


def test_the_catalogue_keeps_only_the_newest_pairs(shop):
    settings, database, _, ids = shop
    catalogue = AnswerCatalogue(["imported", "agent_approved"], max_pairs=3)
    with database.session() as session:
        catalogue.refresh(session)
        assert len(catalogue) == 3
        newest = sorted(ids.values())[-3:]
        match = catalogue.lookup(session, SHOP[6][0], 0.85)
        assert (
            match is not None
            and match.pair.id == newest[-1]
            and match.similarity == pytest.approx(1.0)
        )
        assert (
            catalogue.lookup(session, ORDER_Q, 0.85) is None
        )  # the oldest pair is beyond the bound


def test_agents_words_reach_their_customer_but_are_never_shared_raw(shop, agents):
    """An agent's edit reaches its own customer as written; the copy kept in the actions
    is redacted with the serving redactor, and the shared copy (a training pair, which
    the cache serves) is never written while it holds a card number: it is held for an
    admin (`chatbot.support.sharing`; the IBAN attack is in test_private_answers)."""
    settings, database, retriever, _ = shop
    alice, _ = agents
    manager = flagging_manager(settings, database, retriever)
    first = manager.respond(PASSWORD_Q)
    second = manager.respond(ORDER_Q, first.conversation_id)
    private = "I wrote to jane.doe@example.com; the refund goes to card 4111 1111 1111 1111."
    result = review.edit(database, second.id, alice, private, redactor=manager.redactor)
    assert messages_of(database, second.conversation_id)[-1][1] == private
    kept = actions(database, second.conversation_id)[-1].text
    assert "jane.doe@example.com" not in kept and "4111" not in kept
    assert result.pair_id is None and result.held_id is not None
    with database.session() as session:
        for p in session.scalars(select(TrainingPair)):
            assert "4111" not in p.target and "jane.doe" not in p.target
    reply_result = review.reply(
        database,
        second.conversation_id,
        alice,
        "Or call me on +44 20 7946 0958.",
        redactor=manager.redactor,
    )
    assert "7946" in messages_of(database, reply_result.conversation_id)[-1][1]
    assert "7946" not in actions(database, second.conversation_id)[-1].text
