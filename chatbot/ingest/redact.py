"""PII redaction: e-mail addresses, phone numbers, payment card numbers (Luhn-checked)
and social handles become typed placeholders (`<EMAIL>`, `<PHONE>`, `<CARD>`,
`<HANDLE>`). URLs stay (support links are what agents send), except for e-mail
addresses inside them. Plain regular expressions: this module knows nothing about
names, street addresses or IRC nicknames, and it does not decide what gets stored."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "card": "<CARD>", "handle": "<HANDLE>"}
ALL_KINDS = tuple(PLACEHOLDERS)

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*\s?@\s?"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
# "https: //" (a space after the colon) occurs in scraped tweets.
URL_RE = re.compile(r"(?:\bhttps?:\s?//|\bwww\.)[^\s<>\"']+", re.IGNORECASE)
CARD_RE = re.compile(r"(?<![\d\w])(?:\d[ -]?){12,18}\d(?![\d\w])")
PHONE_RE = re.compile(r"(?<![\w+.\-/])(?:\+\s?)?\(?\d[\d ().\-]{5,22}\d(?![\w\-/]|\.\d)")
HANDLE_RE = re.compile(r"(?<![\w@./<])@[A-Za-z0-9_]{1,30}(?![\w@.]*\.[A-Za-z]{2,}\b)(?!\w)")
PHONE_WORDS_RE = re.compile(
    r"(?:phone|tel|telephone|mobile|cell|call|text me|whatsapp|fax|ring)\W{0,3}(?:\w+\W{1,3}){0,3}$",
    re.IGNORECASE,
)
DATE_RE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """The number has the length and prefix of a major card scheme (Visa, Mastercard,
    American Express, Discover, Diners, JCB, UnionPay), which keeps Luhn-valid order
    numbers from being taken for cards."""
    n, two, four = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return n in (14, 16)
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return n in (16, 19)
    if two == 35:
        return n in (16, 19)
    if two == 62:
        return 16 <= n <= 19
    return False


def looks_like_phone(candidate: str, before: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 7 <= len(digits) <= 15:
        return False
    body = candidate.lstrip("+ ")
    if body.startswith("(") and ")" not in body:
        body = body[1:]
    if DATE_RE.match(body) or " - " in body or "--" in body:
        return False
    groups = [g for g in re.split(r"[ ().\-]+", body) if g]
    separated = len(groups) > 1
    if candidate.startswith("+"):
        return len(digits) >= 8
    if not separated:
        # A bare run of digits is an order or ticket number unless the text says phone.
        return len(digits) >= 9 and bool(PHONE_WORDS_RE.search(before[-40:]))
    if (
        "." in body
        and not re.search(r"[ ()\-]", body)
        and (len(groups) == 2 or all(len(g) <= 3 for g in groups))
    ):
        return False  # a decimal number, an IP address or a version number
    if re.search(r"\d{4}-\d{2}-\d{2}", body):
        return False  # a date and time
    if sum(1 for g in groups if len(g) == 1) > 1 or max(len(g) for g in groups) < 3:
        return False  # "2.6.8 - 2.6.10", "1 2 3 4 5 6 7"
    return True


class Redactor:
    """Replaces PII in text and counts what it replaced, by kind."""

    def __init__(self, kinds: Iterable[str] = ALL_KINDS, allowlist: Iterable[str] = ()) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(ALL_KINDS)
        if unknown:
            raise ValueError(
                f"unknown redaction kinds {sorted(unknown)}; expected some of {list(ALL_KINDS)}"
            )
        self.allow = tuple(a.lower().lstrip("@") for a in allowlist)

    def _allowed(self, email: str) -> bool:
        address = re.sub(r"\s", "", email).lower()
        domain = address.rsplit("@", 1)[-1]
        return any(address == a or domain == a or domain.endswith("." + a) for a in self.allow)

    def redact(self, text: str, counts: Counter[str] | None = None) -> str:
        if not text or not self.kinds:
            return text
        has_at = "@" in text
        if not has_at and not any(c.isdigit() for c in text):
            return text
        counts = counts if counts is not None else Counter()
        if has_at and "email" in self.kinds:
            text = EMAIL_RE.sub(lambda m: self._sub_email(m, counts), text)
        # Everything else is replaced outside URLs only.
        pieces: list[str] = []
        last = 0
        for url in URL_RE.finditer(text):
            pieces.append(self._redact_plain(text[last : url.start()], counts))
            pieces.append(url.group(0))
            last = url.end()
        pieces.append(self._redact_plain(text[last:], counts))
        return "".join(pieces)

    def _sub_email(self, match: re.Match[str], counts: Counter[str]) -> str:
        if self.allow and self._allowed(match.group(0)):
            return match.group(0)
        counts["email"] += 1
        return PLACEHOLDERS["email"]

    def _redact_plain(self, text: str, counts: Counter[str]) -> str:
        if not text:
            return text
        if "card" in self.kinds and any(c.isdigit() for c in text):
            text = CARD_RE.sub(lambda m: self._sub_card(m, counts), text)
        if "phone" in self.kinds and any(c.isdigit() for c in text):
            text = PHONE_RE.sub(lambda m: self._sub_phone(m, counts), text)
        if "handle" in self.kinds and "@" in text:
            text = HANDLE_RE.sub(lambda m: self._count(counts, "handle"), text)
        return text

    @staticmethod
    def _count(counts: Counter[str], kind: str) -> str:
        counts[kind] += 1
        return PLACEHOLDERS[kind]

    def _sub_card(self, match: re.Match[str], counts: Counter[str]) -> str:
        """The card numbers in a run of digit groups: the whole run, or (longest first)
        groups within it, so that "4111 1111 1111 1111 05 27" (a card and its expiry
        date) still loses the card although the run as a whole is no card number."""
        text = match.group(0)
        runs = [(m.start(), m.end()) for m in re.finditer(r"\d+", text)]
        pieces: list[str] = []
        done, i = 0, 0
        while i < len(runs):
            for j in range(len(runs) - 1, i - 1, -1):
                start, end = runs[i][0], runs[j][1]
                digits = re.sub(r"\D", "", text[start:end])
                if 13 <= len(digits) <= 19 and card_brand_ok(digits) and luhn_ok(digits):
                    pieces += [text[done:start], self._count(counts, "card")]
                    done, i = end, j + 1
                    break
            else:
                i += 1
        pieces.append(text[done:])
        return "".join(pieces)

    def _sub_phone(self, match: re.Match[str], counts: Counter[str]) -> str:
        candidate = match.group(0)
        # The pattern may swallow a trailing ")" or "." that belongs to the sentence.
        trail = ""
        while candidate and candidate[-1] in ").- " and not candidate[-1].isdigit():
            trail = candidate[-1] + trail
            candidate = candidate[:-1]
        if looks_like_phone(candidate, match.string[: match.start()]):
            return self._count(counts, "phone") + trail
        return match.group(0)
