"""Characters that must never reach the store or a terminal: control characters (ESC,
BEL, NUL, DEL, the C1 range; a line feed and a tab stay, a carriage return becomes a
line feed), bidirectional-override and isolate marks (U+202A..U+202E, U+2066..U+2069,
LRM, RLM, ALM), and lone UTF-16 surrogates (which no database can store; they become
U+FFFD). `clean_text` is applied to every imported and live message when it is stored
and to every text the CLI prints; `clean_value` to the strings of a JSON value;
`visible` says whether a text has anything that shows (a live message must).

Text is cleaned once, where it comes in: a customer's message when the dialogue manager
admits it (`chatbot.dialogue.stages.admit`), which hands it on as a `CleanText`;
`clean_text` returns a `CleanText` as it is, so the store, which cleans whatever else is
written to it (agents', the assistant's, a script's), does not clean it again.

Only removal of characters: it knows nothing of personal data (that is `redact`), of
HTML (the pages escape what they show) or of what a message means."""

from __future__ import annotations

import re
import unicodedata
from typing import TypeVar, cast

_UNSAFE_RE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class CleanText(str):
    """A text that went through `clean_text` where it came in and was changed since only
    in ways that keep it clean (stripped, redaction placeholders put in)."""

    __slots__ = ()


def clean_text(text: str) -> str:
    """`text` without control and bidirectional-override characters (see the module);
    a `CleanText` as it is."""
    if not text or isinstance(text, CleanText):
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _UNSAFE_RE.sub("", text)
    if _SURROGATE_RE.search(text):
        text = _SURROGATE_RE.sub("\ufffd", text)
    return text


def visible(text: str) -> bool:
    """The text has a character that shows: not only spaces and invisible format
    characters (zero-width spaces and joiners, the byte-order mark, soft hyphens)."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text)


MAX_DEPTH = 32


J = TypeVar("J")


def clean_value(value: J) -> J:
    """A JSON value with `clean_text` applied to every string in it, keys included (the
    same shape); ValueError when it is nested more than MAX_DEPTH levels deep."""
    return cast(J, _clean(value, 0))


def _clean(value: object, depth: int) -> object:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        return {
            clean_text(k) if isinstance(k, str) else k: _clean(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value
