"""A customer's message is cleaned once, where it comes in: the dialogue manager's admit
stage hands on a `CleanText`, which `clean_text` (and so the store) keeps as it is, while
any other text written to the store is still cleaned (tests/test_hostile_input.py)."""

from __future__ import annotations

from chatbot.dialogue.stages.admit import Admit
from chatbot.text.redact import Redactor
from chatbot.text.sanitize import CleanText, clean_text


def test_admit_hands_on_clean_text():
    admitted = Admit(Redactor()).run(" Where\x1b[31m is \u202emy order? jane@example.com \r")
    assert isinstance(admitted, CleanText)
    assert admitted == "Where[31m is my order? <EMAIL>"


def test_clean_text_keeps_a_clean_text_as_it_is():
    admitted = CleanText("Where is my order?")
    assert clean_text(admitted) is admitted
    plain = "Where\x1b is my order?"
    assert clean_text(plain) == "Where is my order?"
