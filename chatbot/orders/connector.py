"""The order-system connector interface, and finding an order number in what a
customer wrote.

A connector answers one question: "what is order N?" (`lookup`), with an `Order`, with
None when the system has no such order, or with `OrderSystemError` when it cannot
answer. It never guesses and never searches by anything but the number. What the
dialogue says about the order, and when it hands over to a person, is the dialogue
manager's job; building the configured connector is `chatbot.orders.factory`'s; the
store-backed connector is `chatbot.orders.sql`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import product
from typing import Protocol, runtime_checkable

from chatbot.errors import ConfigError
from chatbot.orders.records import Order

DEFAULT_NUMBER_PATTERN = r"NW-\d{6}"

# Words and numbers, split where letters meet digits ("NW123456" is "NW", "123456").
_TOKEN = re.compile(r"[^\W\d_]+|\d+")
# What may stand between two parts of one order number as customers type it.
_JOINER = re.compile(r" ?[-\u2010-\u2013/#_]? ?")
_TIGHT = re.compile(r"[-\u2010-\u2013/#_]?")  # no space: part of the same identifier
_MAX_PARTS = 3


@runtime_checkable
class OrderConnector(Protocol):
    """What the dialogue needs of a company's order system.

    `name` says which system answered (logs, hand-over notes). `lookup` takes a number
    in its canonical form (as `normalise_order_number` returns it) and returns the
    order, or None when the system has no such order; it raises
    `chatbot.errors.OrderSystemError` when the system cannot be asked (down, timed out,
    refused the credentials), so that the caller hands over instead of telling the
    customer the order does not exist. It must be safe to call from several threads.
    """

    name: str

    def lookup(self, number: str) -> Order | None: ...


@lru_cache(maxsize=32)
def compile_number_pattern(pattern: str) -> re.Pattern[str]:
    """The pattern of the canonical order number, or a ConfigError naming it."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"orders.number_pattern {pattern!r} is not a valid regex: {exc}"
        ) from None
    if compiled.fullmatch(""):
        raise ConfigError(f"orders.number_pattern {pattern!r} matches an empty text")
    return compiled


def _spellings(parts: list[str], joiners: list[str]) -> dict[str, None]:
    """The ways of writing parts as one number, in order: as typed, with a space between
    each two, and every mix of a hyphen or nothing between each two ("ord ab1234" may be
    "ORD-AB1234"); each as typed, in capitals and in lower case. Two numbers, or two
    words, are never run together ("123 456" is not "123456")."""
    joined = ["".join(p + j for p, j in zip(parts, [*joiners, ""])), " ".join(parts)]
    options = [
        ("-",) if left[-1].isdigit() == right[0].isdigit() else ("-", "")
        for left, right in zip(parts, parts[1:])
    ]
    for choice in product(*options):
        joined.append("".join(p + j for p, j in zip(parts, [*choice, ""])))
    out: dict[str, None] = {}  # ordered and without repeats
    for text in joined:
        out.update(dict.fromkeys((text, text.upper(), text.lower())))
    return out


def find_order_numbers(text: str, pattern: str = DEFAULT_NUMBER_PATTERN) -> list[str]:
    """Every distinct order number in `text`, in canonical form, in order of appearance.

    `pattern` is a regex for the canonical number (`NW-\\d{6}`: "NW-123456"). A run of one
    to three words and numbers in the text counts when one of its spellings matches the
    whole pattern: as typed, with a space, a hyphen or nothing between its parts, in
    capitals or in lower case. So "NW-123456", "nw123456", "NW 123456" and "nw - 123456"
    all give "NW-123456". A run that is part of a longer identifier ("NW-1234567",
    "XNW-123456", "NW-123456-2") does not count, and nothing is guessed: a bare
    "123456" or "order 123456" gives nothing under the default pattern.
    """
    compiled = compile_number_pattern(pattern)
    tokens = list(_TOKEN.finditer(text))
    found: list[str] = []
    covered = -1  # the last token of the last number found
    for start in range(len(tokens)):
        if start <= covered:
            continue
        before = text[tokens[start - 1].end() : tokens[start].start()] if start else " "
        if _TIGHT.fullmatch(before):
            continue  # glued to the word before it: part of something longer
        joiners: list[str] = []
        for end in range(start, min(start + _MAX_PARTS, len(tokens))):
            if end > start:
                gap = text[tokens[end - 1].end() : tokens[end].start()]
                if not _JOINER.fullmatch(gap):
                    break
                joiners.append(gap)
            after = (
                text[tokens[end].end() : tokens[end + 1].start()] if end + 1 < len(tokens) else " "
            )
            if _TIGHT.fullmatch(after):
                continue  # the next word is glued on: only a longer run can be a number
            parts = [t.group() for t in tokens[start : end + 1]]
            match = next((s for s in _spellings(parts, joiners) if compiled.fullmatch(s)), None)
            if match is not None:
                if match not in found:
                    found.append(match)
                covered = end
                break
    return found


def normalise_order_number(text: str, pattern: str = DEFAULT_NUMBER_PATTERN) -> str | None:
    """The one order number in a customer's message, in canonical form ("nw 123456" ->
    "NW-123456"); None when there is none, or when there are several different ones
    (the caller asks which one is meant instead of picking)."""
    found = find_order_numbers(text, pattern)
    return found[0] if len(found) == 1 else None
