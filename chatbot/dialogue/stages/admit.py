"""Admit: the customer's message cleaned (control and bidirectional characters, lone
surrogates), checked (not empty, not only invisible characters, at most
MAX_MESSAGE_CHARS) and redacted. From here on only this text exists: it is what is
stored, retrieved with and shown to a model, and it is handed on as a `CleanText` so
that the store does not clean it again. A bad message is an InputError that says what is
wrong; nothing is stored.

Where its job ends: storing the message is the intake stage's."""

from __future__ import annotations

from chatbot.errors import InputError
from chatbot.text.redact import Redactor
from chatbot.text.sanitize import CleanText, clean_text, visible

MAX_MESSAGE_CHARS = 4000


class Admit:
    def __init__(self, redactor: Redactor):
        self.redactor = redactor

    def run(self, message: str) -> CleanText:
        message = clean_text(message or "").strip()
        if not visible(message):
            raise InputError("the message is empty")
        if len(message) > MAX_MESSAGE_CHARS:
            raise InputError(
                f"the message is {len(message)} characters long; the limit is {MAX_MESSAGE_CHARS}"
            )
        # Redaction puts in only placeholders such as <EMAIL>: the text stays clean.
        return CleanText(self.redactor.redact(message))
