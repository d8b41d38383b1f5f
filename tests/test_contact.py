"""The company's contact details (`chatbot.dialogue.contact`): mined from its agents'
replies only where several conversations give them, recognised in customers' questions
(not in questions about their own details), and answered by the contact stage."""

from __future__ import annotations

import pytest

from chatbot.dialogue.contact import (
    MIN_CONVERSATIONS,
    asks_for_contact,
    contact_text,
    mine_contact,
)
from chatbot.dialogue.own_answers import OwnAnswers
from chatbot.dialogue.records import Decision
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.stages.check import PromptGuard, Showable, live_redactor
from chatbot.dialogue.stages.contact import Contact
from chatbot.retrieval.answer_classes import AnswerClass, AnswerClasses
from tests.test_dialogue_stages import turn

HOURS = "Our team is available Monday to Friday, 8:00-18:00 CET; outside those hours we reply within a day."
REPLIES = [
    (1, f"Hi Maya, sorry about that. {HOURS}"),
    (2, f"{HOURS} You can also write to help@shop.example."),
    (3, f"Thanks! {HOURS} More at https://help.shop.example."),
    (4, "E-mail help@shop.example with a photo. See https://help.shop.example."),
    (5, "Please write to help@shop.example. They work Monday to Friday, 9:00-17:00."),
    (5, "Our hotline: call +49 30 1234 5678."),  # one conversation only: no constant
    (6, "You can reach maya.k@mail.example for your old account."),  # a customer's, once
    (7, "Answers at https://help.shop.example, or call +49 30 1234 5678."),
]


def test_details_given_in_enough_conversations_make_the_card():
    card = mine_contact(REPLIES)
    assert card == {
        "email": "help@shop.example",  # conversations 2, 4, 5
        "hours": HOURS,  # 1, 2, 3; "They work..." leans on an earlier sentence
        "web": "https://help.shop.example",  # 3, 4, 7 (trailing full stop dropped)
    }
    # The phone number is in two conversations, one short of MIN_CONVERSATIONS.
    assert MIN_CONVERSATIONS == 3
    more = mine_contact([*REPLIES, (8, "Or call +49 30 1234 5678 on weekdays.")])
    assert more["phone"] == "+49 30 1234 5678"
    assert mine_contact([]) == {}


@pytest.mark.parametrize(
    ("message", "kinds"),
    [
        ("Is there an email address I can write to?", ["email"]),
        ("What are your opening hours?", ["hours"]),
        ("If I send you an email how long until someone gets back to me?", ["email", "hours"]),
        ("where's your help centre? I couldn't find an FAQ page", ["web"]),
        ("what's your phone number", ["phone"]),
        ("how do I contact you?", ["any"]),
        ("what are your support hours and whats your email", ["email", "hours"]),
        # the customer's own details, or another question beside it: not for this stage
        ("How do I change the email address on my account?", []),
        ("How long does delivery take and what's your email?", []),
        ("how long does it take to get my money back", []),
        ("can you e-mail me the invoice?", []),
        ("I never got the confirmation email", []),
        ("the link in the email has expired, what now?", []),
        ("I got an email about my order, is it real?", []),
        ("wat time r u open", ["hours"]),  # chat shorthand spelt out
    ],
)
def test_questions_about_reaching_the_company_are_recognised(message, kinds):
    assert asks_for_contact(message) == kinds


def test_the_reply_puts_the_asked_details_first():
    card = mine_contact(REPLIES)
    hours_first = contact_text(card, ["hours"])
    assert hours_first is not None and hours_first.startswith(HOURS)
    assert "help@shop.example" in hours_first and "https://help.shop.example" in hours_first
    assert contact_text(card, ["email"]).startswith("You can e-mail us at help@shop.example.")
    assert contact_text(card, ["phone"]) is None  # asked for what the card lacks
    assert contact_text({}, ["any"]) is None


def contact_stage(voice: dict) -> Contact:
    classes = AnswerClasses([AnswerClass("Returns", 3, "Returns are free.")], {}, [], 0.0, 1.0)
    classes.voice = voice

    class Retriever:
        answer_classes = classes

    own = OwnAnswers(None, Showable(PromptGuard("system prompt"), live_redactor(None)))
    return Contact(DialogueSettings(), Say(DialogueSettings(), own, Retriever()))


def test_the_contact_stage_answers_with_the_card_or_lets_the_message_pass():
    stage = contact_stage({"contact": mine_contact(REPLIES)})
    reply = stage.run(turn("What's your e-mail address?"))
    assert reply is not None and reply.decision == Decision.ANSWER and reply.sent
    assert reply.shown_text.startswith("You can e-mail us at help@shop.example.")
    assert "contact details" in reply.reason
    assert stage.run(turn("Where is my parcel?")) is None
    # No details mined, or switched off: the later stages answer.
    assert contact_stage({}).run(turn("What's your e-mail address?")) is None
    off = contact_stage({"contact": mine_contact(REPLIES)})
    off.settings = DialogueSettings(contact_details=False)
    assert off.run(turn("What's your e-mail address?")) is None
