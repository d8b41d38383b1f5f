"""PII redaction: the personal data `chatbot.text.pii` finds becomes typed placeholders
(`<EMAIL>`, `<PHONE>`, `<CARD>`, `<HANDLE>`, `<IBAN>`, `<ID>`, `<ADDRESS>`, `<NAME>`).
URLs stay (support links are what agents send), except for e-mail addresses inside them;
allow-listed values (the company's own address, hotline, bank account) stay.

By default names and street addresses are left in the text: a customer's own name and
address are what slots are filled with in their own conversation
(`chatbot.dialogue.specifics`), and the shared copies of answers are slotted instead
(`chatbot.support.sharing`). This module does not decide what gets stored or shared."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from chatbot.text.pii import (
    CARD_RE,
    DATE_RE,
    DEFAULT_PHONE_REGIONS,
    EMAIL_RE,
    HANDLE_RE,
    KINDS,
    PHONE_RE,
    PHONE_WORDS_RE,
    URL_RE,
    Detector,
    card_brand_ok,
    looks_like_phone,
    luhn_ok,
)

__all__ = [
    "ALL_KINDS",
    "CARD_RE",
    "DATE_RE",
    "DEFAULT_KINDS",
    "EMAIL_RE",
    "HANDLE_RE",
    "PHONE_RE",
    "PHONE_WORDS_RE",
    "PLACEHOLDERS",
    "URL_RE",
    "Redactor",
    "card_brand_ok",
    "looks_like_phone",
    "luhn_ok",
]

PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in KINDS}
ALL_KINDS = KINDS
DEFAULT_KINDS = ("email", "phone", "card", "handle", "iban", "id")


class Redactor:
    """Replaces PII in text and counts what it replaced, by kind."""

    def __init__(
        self,
        kinds: Iterable[str] = DEFAULT_KINDS,
        allowlist: Iterable[str] = (),
        phone_regions: Iterable[str] = DEFAULT_PHONE_REGIONS,
    ) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(ALL_KINDS)
        if unknown:
            raise ValueError(
                f"unknown redaction kinds {sorted(unknown)}; expected some of {list(ALL_KINDS)}"
            )
        allowlist = tuple(allowlist)  # read twice: here and by the detector
        self.allow = tuple(a.lower().lstrip("@") for a in allowlist)
        self.detector = Detector(self.kinds, allowlist, phone_regions)

    def redact(self, text: str, counts: Counter[str] | None = None) -> str:
        if not text or not self.kinds:
            return text
        counts = counts if counts is not None else Counter()
        pieces: list[str] = []
        last = 0
        for span in self.detector.find(text):
            pieces += [text[last : span.start], PLACEHOLDERS[span.kind]]
            counts[span.kind] += 1
            last = span.end
        pieces.append(text[last:])
        return "".join(pieces)
