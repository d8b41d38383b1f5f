"""What the dialogue makes of a message before it answers: conversation acts, the
answer / clarify / decline / hand-off verdict on a hand-built set of answer classes,
which choice a reply to a clarifying question takes, a message split into its
questions, and what a past answer claims about a customer's own order. Pure functions
and real dataclasses: no models, no store."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from chatbot.dialogue.acts import Act, default_replies, main_act, recognise
from chatbot.dialogue.case import Case, claimed_states, promises_action, status_line
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.understanding import (
    MAX_OPTIONS,
    Verdict,
    offerable,
    picked_option,
    question_parts,
    understand,
    without_salutation,
)
from chatbot.orders.records import Order, OrderStatus
from chatbot.retrieval.answer_classes import (
    FEATURES,
    AnswerClass,
    AnswerClasses,
    ClassScore,
    Reading,
)

# -- conversation acts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "acts"),
    [
        ("hi", [Act.GREETING]),
        ("Hello there!", [Act.GREETING]),
        ("good morning team", [Act.GREETING]),
        ("is anyone there?", [Act.GREETING]),
        ("thanks!", [Act.THANKS]),
        ("Thank you, that solved it", [Act.THANKS]),
        ("thank you so much for your help", [Act.THANKS]),
        ("bye", [Act.GOODBYE]),
        ("that's all for now", [Act.GOODBYE]),
        ("are you a bot?", [Act.BOT_QUESTION]),
        ("am I chatting with a real person", [Act.BOT_QUESTION]),
        ("r u a bot", [Act.BOT_QUESTION]),
        ("is this an automated chat?", [Act.BOT_QUESTION]),
        ("is the chat automated", [Act.BOT_QUESTION]),
        ("you've been very helpful", [Act.THANKS]),
        ("that is really useful", [Act.THANKS]),
        ("much obliged", [Act.THANKS]),
        ("talk soon", [Act.GOODBYE]),
        ("yes please", [Act.YES]),
        ("sure", [Act.YES]),
        ("no", [Act.NO]),
        ("nah", [Act.NO]),
        # several acts, in order of precedence (bot question, thanks, goodbye, greeting, no, yes)
        ("ok thanks so much, bye", [Act.THANKS, Act.GOODBYE, Act.YES]),
        ("hi, are you a bot?", [Act.BOT_QUESTION, Act.GREETING]),
        ("no thank you", [Act.THANKS, Act.NO]),
    ],
)
def test_a_message_that_is_only_an_act_is_recognised(message, acts):
    assert recognise(message) == acts


@pytest.mark.parametrize(
    "message",
    [
        "hi, where is my parcel?",  # a greeting in front of a real question
        "Hello, how do I return a kettle?",
        "thanks for the refund info",
        "yes I want to return my kettle",
        "Where is my order?",
        "no, it still has not arrived",
        "that's great but where is my parcel?",
        "is this an automated message about my order?",
        "is this service available in Canada?",
        "",
        "   ?!  ",
        " ".join(["thanks"] * 13),  # longer than any act
    ],
)
def test_a_question_or_statement_is_no_act(message):
    assert recognise(message) == []


@pytest.mark.parametrize(
    ("message", "act"),
    [
        ("nope", Act.NO),
        ("not really", Act.NO),
        ("no, that's ok", Act.NO),
        ("okay", Act.YES),
        ("hiya", Act.GREETING),
        ("heya", Act.GREETING),
    ],
)
def test_longer_alternatives_of_an_act_are_recognised(message, act):
    assert recognise(message) == [act]


def test_main_act_is_the_one_a_reply_answers():
    assert main_act([]) is None
    assert main_act([Act.THANKS, Act.GOODBYE, Act.YES]) is Act.GOODBYE
    assert main_act([Act.BOT_QUESTION, Act.GREETING]) is Act.BOT_QUESTION
    assert main_act([Act.THANKS, Act.NO]) is Act.NO
    assert main_act([Act.GREETING, Act.THANKS]) is Act.THANKS
    assert main_act([Act.YES, Act.GREETING]) is Act.GREETING
    assert main_act(recognise("ok thanks so much, bye")) is Act.GOODBYE


def test_default_replies_cover_every_act_and_name_the_company():
    named = default_replies("Northwind", "orders and returns")
    assert set(named) == set(Act)
    assert all(text.strip() for text in named.values())
    assert "the Northwind team" in named[Act.BOT_QUESTION]
    assert "orders and returns" in named[Act.GREETING]
    assert "orders and returns" in named[Act.BOT_QUESTION]
    anonymous = default_replies(None, "orders")
    assert "the support team" in anonymous[Act.BOT_QUESTION]
    assert "None" not in anonymous[Act.BOT_QUESTION]


# -- the verdict ------------------------------------------------------------------------

DELIVERY, RETURNS, PAYMENTS, ACCOUNT, DECLINED = range(5)
HANDED_OVER, GREETING, DELIVERY_TOO, NORWAY = range(5, 9)
CLASSES = [
    AnswerClass("Delivery", 6, "Track your parcel under Orders."),
    AnswerClass("Returns", 4, "Returns are free within 30 days."),
    AnswerClass("Payments", 3, "The hold is released within 3 days."),
    AnswerClass("Account", 3, "Use 'Forgot password?'."),
    AnswerClass("Out of scope", 3, "Sorry, we can't help with that.", out_of_scope=True),
    AnswerClass("Complaint", 2, "I'm passing you to a colleague.", handoff=True),
    AnswerClass("Greeting", 3, "Hello! How can I help?", act="greeting"),
    AnswerClass("Delivery", 2, "Delivery takes 3-5 days."),  # a second class, same label
    AnswerClass("Norway", 1, "We ship to Norway."),  # one pair: no topic to offer
]


def pid(k: int, j: int = 0) -> int:
    """The id of class k's j-th pair."""
    return 100 * (k + 1) + j


def vote_classes() -> AnswerClasses:
    """Probability rises with the vote only: sigmoid(10 * vote - 5)."""
    weights = [10.0 if name == "vote" else 0.0 for name in FEATURES]
    pair_class = {pid(k, j): k for k, c in enumerate(CLASSES) for j in range(c.size)}
    return AnswerClasses(CLASSES, pair_class, weights, bias=-5.0, temperature=0.05)


def reading(*scores: tuple[int, float]) -> Reading:
    """A reading with these (class, probability), most probable first."""
    return Reading(
        tuple(ClassScore(k, p, {}, (pid(k),)) for k, p in sorted(scores, key=lambda s: -s[1]))
    )


def verdict(
    read: Reading,
    settings: DialogueSettings | None = None,
    *,
    outside_domain: bool = False,
    no_close_match: bool = False,
    after_clarification: bool = False,
    offtopic_margin: float | None = None,
):
    return understand(
        vote_classes(),
        read,
        settings or DialogueSettings(),
        outside_domain=outside_domain,
        no_close_match=no_close_match,
        after_clarification=after_clarification,
        offtopic_margin=offtopic_margin,
    )


def test_one_class_among_the_hits_is_answered_from():
    classes = vote_classes()
    read = classes.read([pid(DELIVERY, 0), pid(DELIVERY, 1)], [0.91, 0.88])
    assert read.top.features["vote"] == pytest.approx(1.0)
    assert read.top.probability == pytest.approx(1 / (1 + math.exp(-5)))  # sigmoid(10 - 5)
    understood = verdict(read)
    assert understood.verdict is Verdict.ANSWER
    assert understood.chosen.index == DELIVERY
    assert understood.chosen.pair_ids == (pid(DELIVERY, 0), pid(DELIVERY, 1))
    assert understood.options == []


def test_the_answer_bar_is_inclusive():
    bar = DialogueSettings().fit_answer_at
    at = verdict(reading((RETURNS, bar), (DELIVERY, 0.2)))
    assert at.verdict is Verdict.ANSWER and at.chosen.index == RETURNS
    below = verdict(reading((RETURNS, bar - 0.0001), (DELIVERY, 0.2)))
    assert below.verdict is Verdict.CLARIFY
    assert below.options == ["Returns", "Delivery"]


def test_a_sure_class_whose_agents_declined_or_handed_over_is_not_answered():
    declined = verdict(reading((DECLINED, 0.95)))
    assert declined.verdict is Verdict.DECLINE and declined.chosen.index == DECLINED
    handed = verdict(reading((HANDED_OVER, 0.95)))
    assert handed.verdict is Verdict.HANDOFF and handed.chosen.index == HANDED_OVER
    assert "Complaint" in handed.why


def test_two_likely_topics_become_a_clarifying_question():
    classes = vote_classes()
    # Two classes, the first a little closer: votes 0.55 / 0.45, probabilities 0.62 / 0.38.
    read = classes.read([pid(DELIVERY), pid(RETURNS)], [0.80, 0.79])
    assert [s.index for s in read.scores] == [DELIVERY, RETURNS]
    assert 0.15 < read.scores[1].probability < read.scores[0].probability < 0.7
    understood = verdict(read)
    assert understood.verdict is Verdict.CLARIFY
    assert understood.options == ["Delivery", "Returns"]
    # A second clarifying question in a row goes round in circles: a person takes over.
    again = verdict(read, after_clarification=True)
    assert again.verdict is Verdict.HANDOFF and again.why == "clarification_failed"
    # With clarification switched off, low confidence hands off.
    off = verdict(read, DialogueSettings().model_copy(update={"clarify": False}))
    assert off.verdict is Verdict.HANDOFF and off.why == "low_confidence"


def test_only_real_distinct_topics_are_offered_at_most_three():
    classes = vote_classes()
    order = [NORWAY, GREETING, DECLINED, HANDED_OVER, DELIVERY_TOO, DELIVERY, RETURNS, PAYMENTS]
    order.append(ACCOUNT)
    read = classes.read(
        [pid(k) for k in order], [0.90 - 0.01 * i for i in range(len(order))], limit=20
    )
    assert [s.index for s in read.scores] == order  # probability falls with the vote
    everything = DialogueSettings().model_copy(update={"fit_clarify_at": 0.0})
    options = offerable(classes, read, everything)
    assert options == ["Delivery", "Returns", "Payments"]
    assert len(options) == MAX_OPTIONS
    # Below the clarification bar nothing is offered.
    assert offerable(classes, read, DialogueSettings()) == []


def test_a_likely_declined_class_declines_even_below_the_answer_bar():
    understood = verdict(reading((DECLINED, 0.5), (DELIVERY, 0.4)))
    assert understood.verdict is Verdict.DECLINE and understood.chosen.index == DECLINED
    # Below the clarification bar, the declined class is no reason to decline.
    unlikely = verdict(reading((DECLINED, 0.1), (DELIVERY, 0.05)), no_close_match=True)
    assert unlikely.verdict is Verdict.HANDOFF and unlikely.why == "no_close_match"


def test_nothing_worth_offering_declines_or_hands_off_by_the_gate():
    weak = reading((DELIVERY, 0.1), (RETURNS, 0.05))
    outside = verdict(weak, outside_domain=True, no_close_match=True)
    assert outside.verdict is Verdict.DECLINE and "not the company's kind" in outside.why
    far = verdict(weak, no_close_match=True)
    assert far.verdict is Verdict.HANDOFF and far.why == "no_close_match"
    unsure = verdict(weak)
    assert unsure.verdict is Verdict.HANDOFF and unsure.why == "low_confidence"
    # The company's own topics, likely enough to offer, outweigh the domain check.
    offered = verdict(reading((DELIVERY, 0.4), (RETURNS, 0.3)), outside_domain=True)
    assert offered.verdict is Verdict.CLARIFY and offered.options == ["Delivery", "Returns"]


def test_a_question_nearer_another_domains_is_declined_whatever_its_topics():
    bar = DialogueSettings().decline_nearer_offtopic_by
    likely = reading((DELIVERY, 0.6), (RETURNS, 0.3))
    far = verdict(likely, offtopic_margin=bar)
    assert far.verdict is Verdict.DECLINE and "another domain" in far.why
    # Even a sure class is no shop answer to it.
    assert verdict(reading((DELIVERY, 0.99)), offtopic_margin=0.5).verdict is Verdict.DECLINE
    # Just below the bar (or with no off-topic vectors), the topics are offered as before.
    assert verdict(likely, offtopic_margin=bar - 0.001).verdict is Verdict.CLARIFY
    assert verdict(likely, offtopic_margin=None).verdict is Verdict.CLARIFY
    off = DialogueSettings().model_copy(update={"decline_nearer_offtopic_by": 2.0})
    assert verdict(likely, off, offtopic_margin=1.0).verdict is Verdict.CLARIFY


def test_nothing_retrieved():
    empty = vote_classes().read([999, 998], [0.9, 0.8])  # pairs with no class
    assert empty.scores == () and empty.top is None
    assert verdict(empty, outside_domain=True).verdict is Verdict.DECLINE
    handed = verdict(empty, no_close_match=True)
    assert handed.verdict is Verdict.HANDOFF and handed.chosen is None


# -- the reply to a clarifying question --------------------------------------------------

OPTIONS = ["Delivery", "Returns", "Payments"]


@pytest.mark.parametrize(
    ("message", "picked"),
    [
        ("2", "Returns"),
        ("option 3", "Payments"),
        ("#1", "Delivery"),
        ("2.", "Returns"),
        ("number 2", "Returns"),
        ("the second", "Returns"),
        ("the first one", "Delivery"),
        ("3rd", "Payments"),
        ("Returns", "Returns"),
        ("  RETURNS! ", "Returns"),
        ("I mean the returns one", "Returns"),
        # not a choice: a new question, a number out of range, two labels at once
        ("4", None),
        ("0", None),
        ("delivery and returns", None),
        ("How do I reset my password?", None),
        ("what about the second option you mentioned earlier", None),
    ],
)
def test_picked_option(message, picked):
    assert picked_option(message, OPTIONS) == picked


@pytest.mark.parametrize(
    ("message", "picked"),
    [
        ("Something else", "Something else"),
        ("4", "Something else"),
        ("none of these", "Something else"),
        ("Neither, thanks", "Something else"),
        ("no", None),  # the act's, answered as one
        ("2", "Returns"),
        # a new question that starts with "no" is no choice
        ("no, how do I reset my password?", None),
    ],
)
def test_something_else_is_picked_by_its_words(message, picked):
    options = [*OPTIONS, "Something else"]
    assert picked_option(message, options, "Something else") == picked
    # without the choice offered, "none of these" takes nothing
    if picked == "Something else" and not message.isdigit() and message != "Something else":
        assert picked_option(message, OPTIONS, "Something else") is None


def test_picked_option_needs_options_and_prefers_the_exact_label():
    assert picked_option("1", []) is None
    assert picked_option("third", ["A", "B"]) is None  # no third choice
    # "parcel" is inside "Track parcel" too, but it is the other label exactly.
    assert picked_option("parcel", ["Track parcel", "Parcel"]) == "Parcel"
    assert picked_option("track parcel", ["Track parcel", "Parcel"]) == "Track parcel"


# -- several questions in one message ----------------------------------------------------


@pytest.mark.parametrize(
    ("message", "parts"),
    [
        (
            "How long does delivery take and how much does it cost?",
            ["How long does delivery take", "how much does it cost?"],
        ),
        (
            "Where is my order? Can I change the address?",
            ["Where is my order?", "Can I change the address?"],
        ),
        (
            "Can I pay by card, and can I pay by PayPal?",
            ["Can I pay by card", "can I pay by PayPal?"],
        ),
    ],
)
def test_a_message_with_two_questions_is_split(message, parts):
    assert question_parts(message) == parts


@pytest.mark.parametrize(
    "message",
    [
        "How long does delivery take?",
        "I want to return this and get a refund",  # "and" before no question word
        "What is this? Why?",  # a part of one word joins the one before
        "Where is my order? Thanks",
    ],
)
def test_one_question_stays_whole(message):
    assert question_parts(message) == [message]


def test_and_also_is_not_left_behind():
    assert question_parts("Can I return shoes and also how long is the refund?") == [
        "Can I return shoes",
        "how long is the refund?",
    ]


def test_without_salutation_drops_a_greeting_line_only():
    assert without_salutation("Hi there! Returns are free.") == "Returns are free."
    assert without_salutation("Dear customer. Returns are free.") == "Returns are free."
    assert without_salutation("Hi! Hi! Returns are free.") == "Hi! Returns are free."  # once
    # No salutation, one that is not at the start, or a word that only begins like one.
    assert without_salutation("Returns are free. Hi!") == "Returns are free. Hi!"
    assert without_salutation("Hiking boots can be returned.") == "Hiking boots can be returned."


def test_without_salutation_keeps_the_answer_after_a_comma():
    assert without_salutation("Hi, returns are free within 30 days.") == (
        "returns are free within 30 days."
    )
    assert without_salutation("Hello Anna, returns are free.") == "returns are free."


# -- the customer's own case ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "states"),
    [
        ("It hasn't been dispatched yet, so it can still be cancelled.", {"processing"}),
        ("Your order is still processing.", {"processing"}),
        ("It left our warehouse on Monday.", {"dispatched"}),
        ("The parcel is already on its way.", {"dispatched"}),
        ("Your order was delivered on Monday.", {"delivered"}),
        ("Your order has been cancelled.", {"cancelled"}),
        ("Your refund has been issued.", {"returned"}),
        ("It has shipped. If it was delivered, tell us.", {"dispatched"}),
        # conditions and general policy claim nothing
        ("Once it has been dispatched, you will get a tracking link.", set()),
        ("If your order was delivered, start a return.", set()),
        ("When it has shipped you get an e-mail.", set()),
        ("Unless it has already shipped, we can cancel it.", set()),
        ("We will refund you once your return has been received.", set()),
        ("Returns are free within 30 days.", set()),
        ("Your order has not been delivered yet.", set()),
        ("", set()),
    ],
)
def test_claimed_states(text, states):
    assert {s.value for s in claimed_states(text)} == states


@pytest.mark.parametrize(
    ("text", "promises"),
    [
        ("I've cancelled it for you.", True),
        ("I have refunded the payment.", True),
        ("I can cancel the order for you.", True),
        ("Would you like me to change it?", True),
        ("I'll check with the warehouse.", True),
        ("We'll open a carrier investigation.", True),
        ("You can cancel it under Orders.", False),
        ("Returns are free within 30 days.", False),
        ("", False),
    ],
)
def test_promises_action(text, promises):
    assert promises_action(text) is promises


def order(status: OrderStatus, **times) -> Order:
    return Order("NW-1001", status, datetime(2024, 5, 1, 9, tzinfo=UTC), **times)


def test_a_case_allows_only_the_state_it_established():
    dispatched = Case("NW-1001", order(OrderStatus.DISPATCHED), looked_up=True)
    assert dispatched.status is OrderStatus.DISPATCHED
    assert dispatched.allows("It has already been dispatched.")
    assert dispatched.allows("Returns are free within 30 days.")  # claims nothing
    assert not dispatched.allows("It hasn't been dispatched yet, so it can still be cancelled.")
    assert not dispatched.allows("It has been dispatched. Your order was delivered.")
    unknown = Case("NW-9", None, looked_up=True)  # not found
    assert unknown.status is None
    assert not unknown.allows("It has already been dispatched.")
    assert unknown.allows("Returns are free within 30 days.")


def test_status_line_says_the_orders_state():
    dispatched = order(
        OrderStatus.DISPATCHED,
        dispatched_at=datetime(2024, 5, 2, 9, tzinfo=UTC),
        tracking_url="https://track.example/1",
    )
    assert status_line(dispatched) == (
        "I've found order NW-1001: it was dispatched on 2 May and is on its way. "
        "You can follow it here: https://track.example/1"
    )
    assert status_line(order(OrderStatus.DISPATCHED)) == (
        "I've found order NW-1001: it was dispatched and is on its way."
    )
    delivered = order(
        OrderStatus.DELIVERED,
        dispatched_at=datetime(2024, 5, 2, tzinfo=UTC),
        delivered_at=datetime(2024, 5, 4, 12, tzinfo=UTC),
    )
    assert status_line(delivered) == "I've found order NW-1001: it was delivered on 4 May."
    assert "cancelled" in status_line(order(OrderStatus.CANCELLED))
    assert "returned" in status_line(order(OrderStatus.RETURNED))
    assert "still being processed" in status_line(order(OrderStatus.PROCESSING))


@pytest.mark.parametrize(
    "status", [OrderStatus.DISPATCHED, OrderStatus.DELIVERED, OrderStatus.CANCELLED]
)
def test_a_status_line_is_allowed_for_its_own_case(status):
    times = {}
    if status is not OrderStatus.CANCELLED:
        times["dispatched_at"] = datetime(2024, 5, 2, tzinfo=UTC)
    if status is OrderStatus.DELIVERED:
        times["delivered_at"] = datetime(2024, 5, 4, tzinfo=UTC)
    placed = order(status, **times)
    line = status_line(placed)
    assert claimed_states(line) == {status}
    assert Case(placed.number, placed, looked_up=True).allows(line)


def test_not_having_left_the_warehouse_claims_processing_only():
    assert claimed_states("It hasn't left our warehouse yet.") == {OrderStatus.PROCESSING}
    processing = order(OrderStatus.PROCESSING)
    assert Case(processing.number, processing, looked_up=True).allows(status_line(processing))
