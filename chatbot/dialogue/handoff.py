"""Signals that a human should take over, read from the customer's words alone: an
explicit request for a person (in many phrasings, typos tolerated) and a conversation
that keeps asking the same question. Confidence and scope are judged elsewhere; the
decision is `chatbot.dialogue.policy`'s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import get_close_matches

from chatbot.text.measures import question_similarity, words

# Words that matter for the request, so "sepak" or "rtaher" are read as meant.
_KEYWORDS = (
    "speak",
    "talk",
    "human",
    "person",
    "people",
    "agent",
    "manager",
    "supervisor",
    "someone",
    "somebody",
    "representative",
    "operator",
    "staff",
    "colleague",
    "rather",
    "real",
    "live",
    "call",
    "bot",
    "robot",
    "machine",
    "team",
    "connect",
    "transfer",
    "escalate",
    "phone",
    "actual",
)
_PERSON = r"(?:human|person|people|agent|manager|supervisor|someone|somebody|representative|rep|operator|staff|colleague|employee|team|real one)"
_PATTERNS = [
    rf"\b(?:speak|talk|chat|get|want|need|connect|transfer|put|pass|give)\b(?:\s+\w+){{0,5}}\s+{_PERSON}\b",
    rf"\b(?:real|actual|live)\s+{_PERSON}\b",
    r"^\W*(?:an?\s+)?(?:human|agent|person|operator|representative)(?:\s+(?:please|pls|now))?\W*$",
    rf"\b{_PERSON}\s+(?:please|pls|now)\b",
    r"\bnot\s+(?:a|the|this|your)\s+(?:bot|robot|machine|chatbot|ai)\b",
    r"\bare\s+you\s+(?:a\s+)?(?:bot|robot|machine|human)\b.*\b(?:speak|talk|agent|human|person)\b",
    r"\b(?:call|ring|phone)\s+me\b",
    r"\bescalate\b",
    r"\bhuman\b",
]
_COMPILED = [re.compile(p) for p in _PATTERNS]


def _corrected(text: str) -> str:
    fixed = []
    for word in words(text):
        if len(word) >= 4 and word not in _KEYWORDS:
            match = get_close_matches(word, _KEYWORDS, n=1, cutoff=0.8)
            if match:
                word = match[0]
        fixed.append(word)
    return " ".join(fixed)


def asks_for_human(text: str) -> bool:
    """True when the customer asks, in plain words, to deal with a person."""
    normalised = _corrected(text)
    return any(p.search(normalised) for p in _COMPILED)


def repeats(message: str, earlier_customer_messages: Sequence[str], *, similarity: float) -> int:
    """How many times this question has now been asked, this message included."""
    return 1 + sum(
        question_similarity(message, earlier) >= similarity for earlier in earlier_customer_messages
    )
