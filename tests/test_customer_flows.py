"""What a customer is told, turn by turn (docs/customer_answers.md), through the real
dialogue manager over a small shop: real SQLite, the tiny real embedder, a real FAISS index
built by `chatbot index`'s own code with its answer classes, and the store's real orders
table behind the SQL order connector. No reply model: every answer is a past one.

The tiny embedder's vectors are random, so the fit model fitted on them ranks classes by
noise. The index's fitted classes, labels, flags and company voice are kept as built; only
the fit model's weights are set by hand so that its probability falls with the class's
rank by best question cosine: a question the history holds word for word (cosine 1)
makes its own class the likeliest. The verdicts are then forced with the settings' bars:
`fit_answer_at=0.0` answers from the likeliest class, `fit_answer_at=1.0` with
`fit_clarify_at=0.0` asks a clarifying question about every in-domain question."""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from chatbot.dialogue.acts import Act, default_replies
from chatbot.dialogue.case import claimed_states
from chatbot.dialogue.handoff import asks_for_human
from chatbot.dialogue.manager import DialogueManager
from chatbot.dialogue.records import Decision, Reply
from chatbot.orders.records import Order, OrderStatus
from chatbot.retrieval.answer_classes import FEATURES
from chatbot.settings import Settings, load_settings
from chatbot.store.database import Database
from chatbot.store.schema import Conversation, Message
from chatbot.text.prompt import PromptFormat

ORDER_PATTERN = r"NW-\d{6}"
DISPATCHED = "NW-100001"
PROCESSING = "NW-100002"
UNKNOWN = "NW-999999"
PLACEHOLDER = re.compile(r"<[A-Z_]+>|\{\w+\}")

# Topic -> (questions, the one reply every agent gave): one answer class per topic.
HISTORY = {
    "delivery": (
        [
            "Where is my parcel?",
            "My parcel has not arrived yet",
            "When will my package come?",
            "How long does shipping take?",
            "My delivery is late",
        ],
        "You can track your parcel with the link in your dispatch e-mail or under Orders.",
    ),
    "returns": (
        [
            "How do I return a kettle?",
            "Can I send back a toaster?",
            "I want to return my shoes",
            "How do returns work?",
            "Can I return something I bought?",
        ],
        "Returns are free within 30 days; start one under Orders > Return items.",
    ),
    "order_status": (
        [
            "What is the status of my order?",
            "Has my order shipped yet?",
            "Can you check on my order?",
            "Is my order on its way?",
        ],
        "Your order {order_number} is on its way.",
    ),
    "not_ours": (
        [
            "Can you recommend a stock?",
            "What is the weather tomorrow?",
            "Do you sell cars?",
            "Can you book me a flight?",
        ],
        "Sorry, that's not something I can help with. Ask me about orders or returns.",
    ),
    "handoff": (
        ["I want to make a complaint", "Let me speak to a manager", "I want a person now"],
        "I'm sorry to hear that. I'm passing you to a colleague who will look into it.",
    ),
    "smalltalk": (
        ["thanks!", "thank you so much", "cheers"],
        "You're very welcome, have a lovely day!",
    ),
    # One customer's case: true of the order its agents had looked up, of no other.
    "cancel": (
        [
            "Can I still cancel my order?",
            "I want to cancel the order I placed",
            "Please stop my purchase",
            "Is it too late to cancel?",
        ],
        "Good news: it hasn't been dispatched yet, so you can still cancel it under "
        "Orders > Cancel order.",
    ),
    # A phone number the import redacted: the placeholder must never reach a customer.
    "contact": (
        ["What is your phone number?", "How can I call you?", "Is there a number I can ring?"],
        "You can call our team on <PHONE> any weekday.",
    ),
}
REPLY = {topic: reply for topic, (_, reply) in HISTORY.items()}
NOT_YET_DISPATCHED = "hasn't been dispatched"


@dataclasses.dataclass
class Shop:
    settings: Settings
    database: Database
    retriever: Any  # chatbot.retrieval.retriever.PairRetriever

    def manager(self, *, orders: bool = True, **dialogue) -> DialogueManager:
        from chatbot.orders.sql import SqlOrderConnector

        # the bars are set by each test; the model decides however few held-out questions
        # the tiny embedder let it be sure of (a test of that gate sets it itself)
        s = self.settings.dialogue.model_copy(update={"fit_min_coverage": 0.0, **dialogue})
        type(s).model_validate(s.model_dump())  # the overrides must be valid settings
        return DialogueManager(
            s,
            self.database,
            self.retriever,
            None,
            PromptFormat.from_settings(self.settings.prompt),
            orders=SqlOrderConnector(self.database) if orders else None,
            order_number_pattern=ORDER_PATTERN,
        )

    def answering(self, **dialogue) -> DialogueManager:
        """The likeliest class is always answered from."""
        return self.manager(fit_answer_at=0.0, **dialogue)

    def clarifying(self, **dialogue) -> DialogueManager:
        """No class is sure, every offerable class is likely enough to be offered."""
        return self.manager(fit_answer_at=1.0, fit_clarify_at=0.0, **dialogue)

    def state(self, conversation_id: int) -> str:
        with self.database.session() as session:
            return session.get(Conversation, conversation_id).state

    def queued(self, conversation_id: int) -> bool:
        """The conversation waits in the agents' queue (the agent console's own query)."""
        from chatbot.support.queue import load_queue

        with self.database.session() as session:
            return conversation_id in {i.conversation_id for i in load_queue(session).items}

    def bot_messages(self, conversation_id: int) -> list[str]:
        """What the customer was shown, as the store keeps it."""
        with self.database.session() as session:
            return list(
                session.scalars(
                    select(Message.text)
                    .where(Message.conversation_id == conversation_id, Message.role == "bot")
                    .order_by(Message.turn_index)
                )
            )


@pytest.fixture(scope="module")
def shop(tmp_path_factory, tiny_embedder_dir):
    """The shop's history stored, its orders in the orders table, and the index built with
    its answer classes, once for the module: each test talks in conversations of its own
    and nothing a test does changes what another reads (no answer cache, no approvals)."""
    from chatbot.indexing.builder import update_index
    from chatbot.models.embedder import load_embedder
    from chatbot.orders.repository import upsert_orders
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.store.migrations import upgrade
    from tests.test_dialogue_support import seed_shop

    home = tmp_path_factory.mktemp("customer-flows")
    with pytest.MonkeyPatch.context() as env:  # the function-scoped isolation runs later
        for key in [k for k in os.environ if k.startswith("CHATBOT_")]:
            env.delenv(key)
        env.setenv("XDG_DATA_HOME", str(home / "xdg"))
        url = f"sqlite:///{home / 'store.db'}"
        upgrade(url)
        database = Database(url)
        base = load_settings(home=home / "home", embedder_path=tiny_embedder_dir)
        settings = base.model_copy(
            update={
                "dialogue": base.dialogue.model_copy(
                    update={
                        # replies group only when identical: one class per topic
                        "answer_class_distance": 0.001,
                        "out_of_scope_topics": ["not_ours"],
                        "generate": False,
                        "cache_enabled": False,
                    }
                )
            }
        )
        seed_shop(
            database,
            [(q, reply, "imported", topic) for topic, (qs, reply) in HISTORY.items() for q in qs],
        )
        placed = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        with database.session() as session:
            upsert_orders(
                session=session,
                orders=[
                    Order(
                        DISPATCHED,
                        OrderStatus.DISPATCHED,
                        placed,
                        dispatched_at=datetime(2026, 3, 3, 9, 0, tzinfo=UTC),
                    ),
                    Order(PROCESSING, OrderStatus.PROCESSING, placed),
                ],
            )
        model = load_embedder(settings.paths)
        update_index(settings.paths, settings.retrieval, settings.dialogue, database, model=model)
        retriever = open_retriever(settings.paths, settings.retrieval, database, model=model)
    fitted = retriever.answer_classes
    assert fitted is not None, "the shop's answer classes were not fitted"
    # The fitted classes, labels, flags and voice stay; the probability is 1 - 3 * rank
    # through the sigmoid: 0.73 for the class of the closest question, 0.12, then 0.007.
    by_rank = [0.0] * len(FEATURES)
    by_rank[FEATURES.index("rank")] = -3.0
    retriever.answer_classes = dataclasses.replace(fitted, weights=by_rank, bias=1.0)
    yield Shop(settings, database, retriever)
    database.dispose()


def label_of(shop: Shop, topic: str) -> str:
    """The readable label `chatbot index` gave the topic's class."""
    classes = shop.retriever.answer_classes
    (label,) = {c.label for c in classes.classes if c.answer == REPLY[topic]}
    return label


def test_the_index_holds_the_shops_classes(shop):
    """What the other tests build on: one class per topic, flagged as the docs say."""
    classes = {c.answer: c for c in shop.retriever.answer_classes.classes}
    assert set(classes) == set(REPLY.values())
    assert classes[REPLY["order_status"]].case_bound
    assert classes[REPLY["not_ours"]].out_of_scope
    assert classes[REPLY["handoff"]].handoff
    assert classes[REPLY["smalltalk"]].act == Act.THANKS
    assert not classes[REPLY["cancel"]].case_bound  # no slot: nothing marks it but its words


# -- 1. conversation acts -----------------------------------------------------------------


def assert_open_and_unqueued(shop: Shop, reply: Reply) -> None:
    assert shop.state(reply.conversation_id) == "open"
    assert not shop.queued(reply.conversation_id)


def test_hello_is_a_greeting_answered_without_a_hand_off(shop):
    reply = shop.answering().respond("hello")
    assert reply.decision == Decision.ACT
    assert reply.reason == "act: greeting"
    assert reply.sent and reply.shown_text.strip()
    assert shop.bot_messages(reply.conversation_id) == [reply.shown_text]
    assert_open_and_unqueued(shop, reply)


def test_thanks_after_an_answer_gets_the_historys_own_thanks(shop):
    manager = shop.answering()
    answer = manager.respond("How do returns work?")
    assert answer.decision == Decision.ANSWER and answer.shown_text == REPLY["returns"]
    # The index mined the thanks reply from the history (not the default's words).
    voice = shop.retriever.answer_classes.voice
    assert Act.THANKS in voice["acts_from_history"]
    assert REPLY["smalltalk"] != default_replies(None, "x")[Act.THANKS]
    thanks = manager.respond("thanks!", answer.conversation_id)
    assert thanks.decision == Decision.ACT and thanks.reason == "act: thanks"
    assert thanks.shown_text == REPLY["smalltalk"]
    assert_open_and_unqueued(shop, thanks)


@pytest.mark.parametrize("message", ["are you a bot?", "Am I talking to a person or a bot?"])
def test_asking_what_the_assistant_is_is_an_act_not_a_hand_off(shop, message):
    reply = shop.answering().respond(message)
    assert reply.decision == Decision.ACT
    assert reply.reason == "act: bot_question"
    assert reply.sent and "person" in reply.shown_text  # it says a person is available
    assert_open_and_unqueued(shop, reply)


@pytest.mark.parametrize("message", ["Am I talking to a human?", "Is this a real person or a bot?"])
def test_a_bot_question_that_reads_as_a_request_for_a_person_is_still_an_act(shop, message):
    """The request-for-a-person check alone would hand these off; the act check keeps them."""
    assert asks_for_human(message)
    reply = shop.answering().respond(message)
    assert reply.decision == Decision.ACT
    assert reply.reason == "act: bot_question"
    assert_open_and_unqueued(shop, reply)


def test_a_real_request_for_a_person_still_hands_off(shop):
    reply = shop.answering().respond("I want to talk to a person")
    assert reply.decision == Decision.HANDOFF
    assert reply.reason.startswith("customer_asked_for_human")
    assert shop.queued(reply.conversation_id)


# -- 2. decline ---------------------------------------------------------------------------


def test_a_declined_topic_is_declined_with_a_person_offered_and_yes_hands_off(shop):
    manager = shop.answering()
    declined = manager.respond("Can you recommend a stock?")
    assert declined.decision == Decision.DECLINE
    assert declined.reason.startswith("out_of_domain")
    assert declined.sent
    assert declined.shown_text.startswith(REPLY["not_ours"])
    assert shop.settings.dialogue.person_offer in declined.shown_text
    assert_open_and_unqueued(shop, declined)

    taken = manager.respond("yes", declined.conversation_id)
    assert taken.decision == Decision.HANDOFF
    assert taken.reason.startswith("customer_asked_for_human")
    assert shop.state(taken.conversation_id) == "handed_off"
    assert shop.queued(taken.conversation_id)


# -- 3. clarify ---------------------------------------------------------------------------


def test_an_unsure_question_gets_numbered_choices(shop):
    asked = shop.clarifying().respond("How do returns work?")
    assert asked.decision == Decision.CLARIFY
    assert asked.reason.startswith("unsure")
    assert 2 <= len(asked.options) <= 4
    assert asked.options[-1] == shop.settings.dialogue.clarify_other  # "Something else" last
    assert asked.options[0] == label_of(shop, "returns")  # its own class first
    assert len(set(asked.options)) == len(asked.options)
    lines = asked.shown_text.splitlines()
    assert lines[0] == shop.settings.dialogue.clarify_message
    assert lines[1:] == [f"{i}. {o}" for i, o in enumerate(asked.options, 1)]
    # Only real topics are offered: no decline, hand-off or pleasantry.
    assert not {label_of(shop, t) for t in ("not_ours", "handoff", "smalltalk")} & set(
        asked.options
    )
    assert_open_and_unqueued(shop, asked)


@pytest.mark.parametrize("pick", ["1", "label"])
def test_the_customers_choice_is_answered(shop, pick):
    manager = shop.clarifying()
    asked = manager.respond("How do returns work?")
    assert asked.decision == Decision.CLARIFY
    choice = asked.options[0] if pick == "label" else pick
    answer = manager.respond(choice, asked.conversation_id)
    assert answer.decision == Decision.ANSWER
    assert "chosen by the customer" in answer.reason
    assert answer.sent and answer.shown_text == REPLY["returns"]
    assert_open_and_unqueued(shop, answer)


def test_a_number_takes_the_option_at_that_place(shop):
    manager = shop.clarifying()
    first = manager.respond("How do returns work?")
    assert len(first.options) >= 2
    by_number = manager.respond("2", first.conversation_id)
    second = manager.respond("How do returns work?")
    assert second.options == first.options
    by_label = manager.respond(first.options[1], second.conversation_id)
    assert (by_number.decision, by_number.shown_text) == (by_label.decision, by_label.shown_text)
    assert by_number.shown_text != REPLY["returns"]  # not the first option's answer
    plain = {label_of(shop, t): REPLY[t] for t in ("delivery", "returns")}
    if first.options[1] in plain:
        assert by_number.decision == Decision.ANSWER
        assert by_number.shown_text == plain[first.options[1]]


@pytest.mark.parametrize("answer", ["other", "none of these", "Neither, thanks"])
def test_something_else_hands_the_question_to_a_person(shop, answer):
    manager = shop.clarifying()
    asked = manager.respond("How do returns work?")
    assert asked.decision == Decision.CLARIFY
    other = shop.settings.dialogue.clarify_other
    if answer == "other":
        answer = str(len(asked.options))  # the last choice's number
    assert asked.shown_text.endswith(f"{len(asked.options)}. {other}")
    taken = manager.respond(answer, asked.conversation_id)
    assert taken.decision == Decision.HANDOFF
    assert taken.reason.startswith("clarification_failed")
    assert "none of the topics" in taken.reason
    assert shop.queued(taken.conversation_id)


def test_a_second_unsure_question_after_a_clarification_hands_off(shop):
    manager = shop.clarifying()
    asked = manager.respond("How do returns work?")
    assert asked.decision == Decision.CLARIFY
    again = manager.respond("My parcel has not arrived yet", asked.conversation_id)
    assert again.decision == Decision.HANDOFF
    assert again.reason == "clarification_failed"
    assert shop.queued(again.conversation_id)
    # The same question in a fresh conversation is a clarification, not a hand-off.
    fresh = manager.respond("My parcel has not arrived yet")
    assert fresh.decision == Decision.CLARIFY


# -- 4. the customer's own case ----------------------------------------------------------


def ask_order_status(manager: DialogueManager) -> Reply:
    asked = manager.respond("What is the status of my order?")
    assert asked.decision == Decision.CLARIFY
    assert asked.reason.startswith("needs_case")
    assert "order number" in asked.shown_text.lower()
    assert asked.options == []
    assert not PLACEHOLDER.search(asked.shown_text)
    # the agents can see why the class's answers were not sent
    withheld = [c.to_json() for c in asked.candidates]
    assert withheld and all("another customer's case" in c["blocked"] for c in withheld)
    return asked


def test_an_order_question_asks_for_the_order_number(shop):
    asked = ask_order_status(shop.answering())
    assert asked.shown_text == shop.settings.dialogue.order_number_message
    assert_open_and_unqueued(shop, asked)


def test_the_order_number_given_is_looked_up_and_answered_for(shop):
    manager = shop.answering()
    asked = ask_order_status(manager)
    answer = manager.respond(DISPATCHED, asked.conversation_id)
    assert answer.decision == Decision.ANSWER
    assert answer.sent
    assert answer.shown_text.startswith(f"I've found order {DISPATCHED}")
    assert claimed_states(answer.shown_text) == {OrderStatus.DISPATCHED}
    assert not PLACEHOLDER.search(answer.shown_text)
    assert f"Your order {DISPATCHED} is on its way." in answer.shown_text  # its slot filled
    assert_open_and_unqueued(shop, answer)


def test_an_unknown_order_number_is_said_to_be_not_found(shop):
    manager = shop.answering()
    asked = ask_order_status(manager)
    missing = manager.respond(UNKNOWN, asked.conversation_id)
    assert missing.decision == Decision.CLARIFY
    assert missing.reason.startswith("needs_case")
    assert "couldn't find" in missing.shown_text and UNKNOWN in missing.shown_text
    assert not claimed_states(missing.shown_text)
    assert_open_and_unqueued(shop, missing)


def test_without_an_order_system_the_number_goes_to_an_agent(shop):
    manager = shop.manager(orders=False, fit_answer_at=0.0)
    asked = ask_order_status(manager)
    handed = manager.respond(UNKNOWN, asked.conversation_id)
    assert handed.decision == Decision.HANDOFF
    assert UNKNOWN in handed.reason and handed.reason.startswith("needs_case")
    assert shop.queued(handed.conversation_id)


# -- 5. never another case's state ------------------------------------------------------


def test_an_answer_about_another_customers_order_is_not_sent(shop):
    reply = shop.answering().respond("Can I still cancel my order?")
    assert NOT_YET_DISPATCHED not in reply.shown_text
    assert all(NOT_YET_DISPATCHED not in t for t in shop.bot_messages(reply.conversation_id))
    # Its class was the sure one, and every answer of it was withheld: an agent looks.
    assert reply.decision == Decision.HANDOFF
    assert reply.reason.startswith("needs_case")


def test_nor_as_one_of_two_questions(shop):
    reply = shop.answering().respond("How do returns work and can I still cancel my order?")
    assert NOT_YET_DISPATCHED not in reply.shown_text
    assert all(NOT_YET_DISPATCHED not in t for t in shop.bot_messages(reply.conversation_id))


@pytest.mark.parametrize(
    ("number", "sent"),
    [(PROCESSING, True), (DISPATCHED, False), (UNKNOWN, False)],
)
def test_a_state_is_asserted_only_when_the_order_system_established_it(shop, number, sent):
    reply = shop.answering().respond(f"Can I still cancel my order {number}?")
    assert (NOT_YET_DISPATCHED in reply.shown_text) is sent
    if sent:
        assert reply.decision == Decision.ANSWER
    allowed = {OrderStatus.PROCESSING} if number == PROCESSING else set()
    assert claimed_states(reply.shown_text) <= allowed


@pytest.mark.parametrize("number", [PROCESSING, UNKNOWN])
def test_on_its_way_is_never_said_of_an_order_that_is_not(shop, number):
    reply = shop.answering().respond(f"Is my order {number} on its way?")
    assert OrderStatus.DISPATCHED not in claimed_states(reply.shown_text)
    assert "on its way" not in reply.shown_text


@pytest.mark.parametrize("named", ["", f" {DISPATCHED}"], ids=["no-order", "dispatched-order"])
def test_nor_when_the_customer_picks_that_topic_in_a_clarification(shop, named):
    manager = shop.clarifying()
    asked = manager.respond(f"Can I still cancel my order{named}?")
    assert asked.decision == Decision.CLARIFY
    assert label_of(shop, "cancel") in asked.options
    picked = manager.respond(label_of(shop, "cancel"), asked.conversation_id)
    assert NOT_YET_DISPATCHED not in picked.shown_text
    assert not claimed_states(picked.shown_text)


def test_the_order_number_asked_for_after_a_picked_topic_is_answered_for(shop):
    # The shipped bars (answer at 0.8, offer at 0.15): the question is unsure (its class at
    # 0.73), so it is clarified; the one topic offered needs the customer's order.
    manager = shop.manager()
    asked = manager.respond("Is my order on its way?")
    assert asked.decision == Decision.CLARIFY
    assert asked.options[0] == label_of(shop, "order_status")
    number = manager.respond("1", asked.conversation_id)
    assert number.decision == Decision.CLARIFY and number.reason.startswith("needs_case")
    answer = manager.respond(DISPATCHED, asked.conversation_id)
    assert answer.decision == Decision.ANSWER, answer.reason
    assert answer.shown_text.startswith(f"I've found order {DISPATCHED}")


# -- 6. no placeholder reaches a customer -------------------------------------------------


def phone_by_choice(shop: Shop) -> Reply:
    manager = shop.clarifying()
    asked = manager.respond("What is your phone number?")
    assert asked.decision == Decision.CLARIFY
    assert asked.options[0] == label_of(shop, "contact")
    return manager.respond("1", asked.conversation_id)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(lambda s: s.answering().respond("What is your phone number?"), id="answer"),
        pytest.param(
            lambda s: s.answering().respond("How do returns work and what is your phone number?"),
            id="two-questions",
        ),
        pytest.param(phone_by_choice, id="chosen-topic"),
    ],
)
def test_a_reply_holding_a_placeholder_is_withheld_for_an_agent(shop, path):
    reply = path(shop)
    assert reply.decision == Decision.HANDOFF
    assert "placeholder" in reply.reason
    assert reply.shown_text == shop.settings.dialogue.handoff_message
    assert not PLACEHOLDER.search(reply.shown_text)
    assert all(not PLACEHOLDER.search(t) for t in shop.bot_messages(reply.conversation_id))
    assert "<PHONE>" in reply.text  # kept for the agent who takes over
    assert shop.queued(reply.conversation_id)


def test_an_order_slot_never_reaches_a_customer_who_gave_no_number(shop):
    """The order-status reply holds {order_number}: for a customer who named no order it
    is neither shown with its slot nor phrased out ("Your order is on its way.")."""
    for question in HISTORY["order_status"][0]:
        reply = shop.answering().respond(question)
        assert not PLACEHOLDER.search(reply.shown_text)
        assert "on its way" not in reply.shown_text
        assert reply.decision == Decision.CLARIFY


# -- 7. two questions in one message -----------------------------------------------------


def test_two_questions_get_one_answer_each(shop):
    reply = shop.answering().respond("How long does shipping take and how do I return a kettle?")
    assert reply.decision == Decision.ANSWER
    assert reply.reason == "confident: 2 questions answered"
    assert REPLY["delivery"] in reply.shown_text
    assert REPLY["returns"] in reply.shown_text
    assert reply.shown_text.index(REPLY["delivery"]) < reply.shown_text.index(REPLY["returns"])
    assert len(reply.citations) >= 2
    assert_open_and_unqueued(shop, reply)


def test_one_of_the_two_questions_alone_gets_only_its_answer(shop):
    reply = shop.answering().respond("How long does shipping take?")
    assert reply.decision == Decision.ANSWER
    assert reply.shown_text == REPLY["delivery"]
    assert "questions answered" not in reply.reason


def test_a_model_sure_of_too_few_held_out_questions_leaves_the_decision_to_the_judge(shop):
    held_out = [[0.95, True]] * 3 + [[0.3, False]] * 7  # 30% of them reach the bar
    classes = dataclasses.replace(
        shop.retriever.answer_classes,
        report={**shop.retriever.answer_classes.report, "held_out_top": held_out},
    )
    assert classes.coverage(0.9) == (0.3, 1.0)
    original = shop.retriever.answer_classes
    shop.retriever.answer_classes = classes
    try:
        question = "How do returns work?"
        # Enough of them are sure at this bar: the model's verdict (a clarifying question).
        decided = shop.manager(fit_answer_at=0.9, fit_clarify_at=0.0, fit_min_coverage=0.3)
        assert decided.respond(question).decision == Decision.CLARIFY
        # Too few: the judge's thresholds decide as before any classes; no clarification.
        judged = shop.manager(
            fit_answer_at=0.9,
            fit_clarify_at=0.0,
            fit_min_coverage=0.31,
            answer_threshold=0.0,
            handoff_threshold=0.0,
        )
        reply = judged.respond(question)
        assert reply.decision in (Decision.ANSWER, Decision.ANSWER_FLAGGED), reply.reason
        assert reply.options == []
        # Acts are answered either way.
        assert judged.respond("hello").decision == Decision.ACT
    finally:
        shop.retriever.answer_classes = original


def test_one_likely_topic_is_asked_about_and_yes_takes_it(shop):
    manager = shop.manager(fit_answer_at=1.0, fit_clarify_at=0.5)  # only the first class (0.73)
    asked = manager.respond("How do returns work?")
    topic = label_of(shop, "returns")
    other = shop.settings.dialogue.clarify_other
    assert asked.decision == Decision.CLARIFY and asked.options == [topic, other]
    wording = shop.settings.dialogue.clarify_one_message.format(topic=topic)
    assert asked.shown_text == f"{wording}\n1. {topic}\n2. {other}"
    taken = manager.respond("yes", asked.conversation_id)
    assert taken.decision == Decision.ANSWER and "chosen by the customer" in taken.reason
    # "something else" instead: a person takes the question.
    again = manager.respond("How do returns work?")
    refused = manager.respond("something else", again.conversation_id)
    assert refused.decision == Decision.HANDOFF
    assert refused.reason.startswith("clarification_failed")
