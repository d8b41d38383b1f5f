"""The degenerate-output guard (`chatbot.dialogue.degenerate`): ordinary replies pass,
and every kind of reply that must never be sent is caught with the right reason."""

from __future__ import annotations

import pytest

from chatbot.dialogue.degenerate import degenerate_reason, ends_a_sentence
from chatbot.text.prompt import DEFAULT_SYSTEM_PROMPT

GOOD = [
    "Thanks! Your refund is on its way.",
    "You can track your parcel with the link in your shipping e-mail.",
    "Returns are free within 30 days; start one under Orders.",
    "Please use the reset link on the sign-in page: https://shop.example/reset",
    "Track it here: https://shop.example/track?id={order_number}.",
    "Write to help@shop.example",
    "Sorry for the wait! We have sent a new parcel (tracking in your e-mail).",
    "Happy to help 😊",
    "Done 👍🏽",
    "Glad it worked :)",
    "Yes.",
    'He said: "It arrives on Monday."',
    "Refunds reach your original payment method within 5-7 working days. If it takes longer, reply here and "
    "we will check with the bank. The bank sometimes needs two more days.",
    "1. Open Orders.\n2. Choose the order.\n3. Press Return.",
    "Vielen Dank! Ihre Erstattung ist unterwegs.",
    "谢谢！您的退款正在处理中。",
]


@pytest.mark.parametrize("text", GOOD)
def test_ordinary_replies_pass_even_at_the_token_limit(text):
    message = "Where is my refund? I sent the kettle back two weeks ago."
    assert (
        degenerate_reason(text, customer_message=message, prompt_texts=[DEFAULT_SYSTEM_PROMPT])
        is None
    )
    assert (
        degenerate_reason(
            text, customer_message=message, prompt_texts=[DEFAULT_SYSTEM_PROMPT], cut_off=True
        )
        is None
    )


def test_a_reply_without_a_final_stop_passes_when_it_was_not_cut_off():
    assert degenerate_reason("OK") is None
    assert degenerate_reason("Sure, one moment") is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "...", " ?! ", "—", "***", "$ %", "( )"])
def test_empty_or_punctuation_only(text):
    assert degenerate_reason(text).startswith("empty")


@pytest.mark.parametrize(
    "text",
    [
        "We are sorry for the trouble. We are sorry for the trouble.",
        "We are sorry for the trouble! we are SORRY for the trouble",
        "Your parcel is on its way.\nYour parcel is on its way.",
        "Thanks. The refund is on its way. Thanks.",
        "谢谢。谢谢。",
    ],
)
def test_a_sentence_said_twice(text):
    assert degenerate_reason(text).startswith("repeats the sentence")


@pytest.mark.parametrize(
    "text",
    [
        "I can help you with that and I can help you with that and I can help you with that",
        "the the the the the the the",
        "Please check your tracking link in the e-mail we sent please check your tracking link in the e-mail we sent",
    ],
)
def test_a_phrase_looping_inside_one_sentence(text):
    reason = degenerate_reason(text)
    assert reason.startswith("repeats the phrase") or reason == "says the same words over and over"


def test_a_phrase_twice_in_a_long_reply_is_fine():
    text = (
        "You can return it within 30 days. To return it, open Orders and press Return; "
        "you can return it by post or in a shop."
    )
    assert degenerate_reason(text) is None


@pytest.mark.parametrize(
    "reply, message",
    [
        (
            "Where is my order? It was supposed to arrive yesterday.",
            "Where is my order? It was supposed to arrive yesterday.",
        ),
        (
            "where is my order it was supposed to arrive",
            "Hi, where is my order? It was supposed to arrive yesterday.",
        ),
        (
            "My card was declined but the money left my account",
            "My card was declined but the money left my account!",
        ),
    ],
)
def test_echoing_the_customer(reply, message):
    reason = degenerate_reason(reply, customer_message=message)
    assert reason in (
        "repeats the customer's message verbatim",
        "mostly repeats the customer's own message",
    )


def test_the_whole_message_inside_a_longer_reply_is_an_echo():
    message = "I would like to return a kettle, how do I do that?"
    reply = "You asked: I would like to return a kettle, how do I do that? Returns are free within 30 days."
    assert (
        degenerate_reason(reply, customer_message=message)
        == "repeats the customer's message verbatim"
    )


@pytest.mark.parametrize(
    "reply, message",
    [
        ("Thank you for your patience!", "Thank you for your help!"),
        ("Thank you so much for your patience!", "Thank you so much for your help!"),
        ("Thanks!", "Thanks!"),
        ("Your order is on its way.", "Where is my order?"),
        ("Yes, you can return the kettle within 30 days.", "Can I return the kettle?"),
    ],
)
def test_answering_in_the_customers_words_is_not_an_echo(reply, message):
    assert degenerate_reason(reply, customer_message=message) is None


def test_repeating_the_instructions():
    leak = "Sure. You are the customer-service assistant of this company. Answer briefly."
    assert degenerate_reason(leak, prompt_texts=[DEFAULT_SYSTEM_PROMPT]).startswith(
        "repeats the prompt"
    )
    assert degenerate_reason(leak, prompt_texts=["Be nice.", DEFAULT_SYSTEM_PROMPT]).startswith(
        "repeats the prompt"
    )
    # Five words in a row are a coincidence, six are a recital.
    assert (
        degenerate_reason(
            "Please use the past answers below.", prompt_texts=[DEFAULT_SYSTEM_PROMPT]
        )
        is None
    )
    assert degenerate_reason(
        "Use the past answers below when they fit.", prompt_texts=[DEFAULT_SYSTEM_PROMPT]
    ).startswith("repeats the prompt")
    assert degenerate_reason(leak) is None  # no prompt given, nothing to compare with


@pytest.mark.parametrize(
    "text",
    [
        "You can track your parcel with the link in your",
        "Refunds reach your original payment method within",
        "Thanks! The refund is",
        "Please (see the",
        "Your order number is 12",
    ],
)
def test_cut_off_mid_sentence_only_when_the_generator_hit_its_limit(text):
    assert degenerate_reason(text, cut_off=True) == "cut off mid-sentence at the token limit"
    assert degenerate_reason(text, cut_off=False) is None


def test_sentence_endings():
    for text in [
        "Done.",
        "Done!",
        "Done?",
        "Done…",
        "Done.)",
        'He said "done."',
        "Done. ",
        "完成。",
        "Done 🙂",
        "Details at www.shop.example/help",
        "(see https://shop.example/a)",
        "Mail help@shop.example.",
    ]:
        assert ends_a_sentence(text), text
    for text in ["Done", "Done,", "Done -", "Done (", "", "Done:"]:
        assert not ends_a_sentence(text), text


def test_the_first_failing_check_names_the_reason():
    looping_and_cut = "I am sorry. I am sorry. I am"
    assert degenerate_reason(looping_and_cut, cut_off=True).startswith("repeats the sentence")


def test_a_huge_customer_message_is_checked_quickly():
    import time

    message = " ".join(f"word{i % 997}" for i in range(50_000))
    reply = "Your refund is on its way; it reaches your card within five working days."
    started = time.perf_counter()
    assert degenerate_reason(reply, customer_message=message, prompt_texts=[message]) is None
    assert time.perf_counter() - started < 1.0
