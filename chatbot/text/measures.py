"""Cheap text measures shared by the dialogue stages, the ranker's training and
evaluation: normalising, word tokens, lexical similarity, and pulling checkable facts
(links, e-mail addresses, phone numbers, prices, numbers, promises) out of a text. No
models; no decisions. ROUGE-L is `chatbot.text.rouge`'s."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    """a an and are as at be but by can could do does did for from had has have hi hello i i'm i'd if in into is it
    it's its just me my no not of on or our please pls so that the their them then there these they this to too u
    up us was we we'll we're what when where which who will with would you you'll you're your yours thanks thank
    hey dear regards kind""".split()
)

URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>()\"']+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|example|shop|co\.uk)(?:/[^\s<>()\"']*)?",
    re.I,
)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
PHONE = re.compile(r"(?<![\w-])\+?\d[\d ()-]{7,}\d\b")
PRICE = re.compile(
    r"(?:[$€£]\s?\d+(?:[.,]\d+)?|\b\d+(?:[.,]\d+)?\s?(?:eur|euros?|usd|dollars?|gbp|pounds?)\b)",
    re.I,
)
NUMBER = re.compile(r"\b\d+(?:[.,:]\d+)?\b")
LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s", re.M)  # "1. ", "2) ": numbering, not a fact
PROMISE_WORDS = (
    "guarantee",
    "guaranteed",
    "promise",
    "compensation",
    "compensate",
    "discount",
    "voucher",
    "coupon",
    "free of charge",
    "store credit",
    "cashback",
    "bonus",
    "upgrade you",
    "waive",
)


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS]


def token_f1(a: str | list[str], b: str | list[str]) -> float:
    """Bag-of-content-words F1 between two texts (0-1)."""
    ta = Counter(content_words(a) if isinstance(a, str) else a)
    tb = Counter(content_words(b) if isinstance(b, str) else b)
    if not ta or not tb:
        return 0.0
    common = sum((ta & tb).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(ta.values()), common / sum(tb.values())
    return 2 * precision * recall / (precision + recall)


def char_similarity(a: str, b: str, n: int = 3) -> float:
    """Dice coefficient of character n-grams of the normalised texts: tolerant of typos."""
    a, b = f" {normalise(a)} ", f" {normalise(b)} "
    ga = Counter(a[i : i + n] for i in range(max(len(a) - n + 1, 0)))
    gb = Counter(b[i : i + n] for i in range(max(len(b) - n + 1, 0)))
    total = sum(ga.values()) + sum(gb.values())
    return 2 * sum((ga & gb).values()) / total if total else 0.0


def question_similarity(a: str, b: str) -> float:
    """How alike two customer messages are (0-1): the better of word F1 and character
    trigram overlap, so "whre is my order" still matches "where is my order"."""
    return max(token_f1(a, b), char_similarity(a, b))


def repetition_ratio(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one (0 = none)."""
    w = words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@dataclass
class Facts:
    """Checkable facts in a text, normalised so that the same fact compares equal."""

    urls: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    prices: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    promises: set[str] = field(default_factory=set)

    def __or__(self, other: Facts) -> Facts:
        return Facts(*(getattr(self, k) | getattr(other, k) for k in self.__dataclass_fields__))


def extract_facts(text: str) -> Facts:
    lower = text.lower()
    emails = {e.lower() for e in EMAIL.findall(text)}
    without_emails = EMAIL.sub(" ", text)
    urls = {
        u.lower()
        .rstrip(".,;:!?")
        .removeprefix("https://")
        .removeprefix("http://")
        .removeprefix("www.")
        .rstrip("/")
        for u in URL.findall(without_emails)
    }
    phones = {_digits(p) for p in PHONE.findall(without_emails) if len(_digits(p)) >= 8}
    prices = {re.sub(r"[^\d.,]", "", p).replace(",", ".") for p in PRICE.findall(text)}
    plain = LIST_MARKER.sub(" ", EMAIL.sub(" ", URL.sub(" ", PHONE.sub(" ", text))))
    numbers = {n.replace(",", ".") for n in NUMBER.findall(plain)}
    promises = {p for p in PROMISE_WORDS if p in lower}
    return Facts(urls, emails, phones, prices, numbers, promises)
