"""Never another customer's specifics: what the dialogue manager does to every candidate
reply before it may be sent, whatever wrote it (a retrieved past answer, an approved
answer from the cache, a generated draft).

    guard = SpecificsGuard(database)
    facts = guard.facts(customer_texts, other_texts)       # once per customer message
    checked = guard.prepare(text, facts)                  # for every candidate
    if checked.ok: send(checked.text)                     # else: drop it (checked.why)

`prepare` first fills the typed slots of a slotted reply (`{customer_name}`,
`{order_number}`... see `chatbot.text.specifics`) with the values this conversation
holds (the name the customer gave, the order number they wrote), or phrases the reply
without the slot when the conversation does not hold it ("Hi {customer_name}," ->
"Hi,", "your order {order_number} has" -> "your order has"); agents' sign-off names
are removed. Then it checks the text: an identifier, amount, date or street address
that is neither in this conversation nor a company constant,
a name of a person known from the imported history that this conversation does not
hold, or any name in a greeting or address position ("Hi Maya", "Sorry for the
trouble, James!") that this customer did not give, makes the reply unusable. E-mail
addresses and phone numbers are left to the redaction every outgoing text goes through
(`chatbot.text.redact`: only addresses of the company's own past answers stay).

The constants and names come from the `known_values` table that
`chatbot.ingest.constants` writes after each import; they are read once and kept
until that table changes. Deciding what to do with an unusable candidate (drop it,
hand off) is the manager's job.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatbot.text.specifics import (
    NAME_KINDS,
    SLOT_RE,
    Found,
    customer_names,
    find_specifics,
    slotted,
    value_key,
)

if TYPE_CHECKING:
    from chatbot.store.database import Database

# Values a customer's own messages can fill a slot with.
# E-mail addresses and phone numbers on the way out are redaction's (`chatbot.text.redact`, which
# keeps only the addresses of the company's own past answers): the check leaves them to it.
LEFT_TO_REDACTION = frozenset({"email", "phone"})
FILLABLE = (
    "order_number",
    "ticket_number",
    "tracking_number",
    "amount",
    "date",
    "address",
    "email",
    "phone",
)
_SENTENCE_END = re.compile(r"(?:^|[.!?\n]\s*)$")

# How a reply is phrased without a slot the conversation cannot fill, in this order.
_WITHOUT: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # names
        (r"\b(Dear)[ \t]+\{customer_name\}", r"\1 customer"),
        (
            r"\b(Hi|Hello|Hey|Hiya|Howdy|Morning|Good (?:morning|afternoon|evening)|Welcome back)(?: there)?,?[ \t]+\{customer_name\}",
            r"\1",
        ),
        (r",[ \t]*\{customer_name\}(?=[ \t]*[.!?,:;]|[ \t]*$)", ""),
        (r"\{customer_name\},?[ \t]*", ""),
        (r"[ \t]*[\^*/~–—-][ \t]?\{agent_name\}", ""),
        (
            r"\b(?:I'm|I am|[Mm]y name is|[Tt]his is)[ \t]+\{agent_name\}[ \t]*(?:,[ \t]*)?(?=from|with|of|at)",
            "This is ",
        ),
        (r"\b(?:I'm|I am|[Mm]y name is|[Tt]his is)[ \t]+\{agent_name\}[ \t]*[,.!]?[ \t]*", ""),
        (r"[ \t]*\{agent_name\}[ \t]*,?[ \t]*", ""),
        # identifiers
        (
            r"\b(?:(?:your|the|my)[ \t]+)?[Oo]rder(?:[ \t]+(?:number|no\.?|#))?[ \t]*#?[ \t]*\{order_number\}",
            "your order",
        ),
        (
            r"\b(?:(?:your|the)[ \t]+)?tracking(?:[ \t]+(?:number|no\.?|code|ID))?[ \t]*#?[ \t]*\{tracking_number\}",
            "your tracking number",
        ),
        (
            r"\b(?:(?:your|the)[ \t]+)?(ticket|case|reference|complaint|request)(?:[ \t]+(?:number|no\.?|ID))?[ \t]*#?[ \t]*\{ticket_number\}",
            r"your \1",
        ),
        (r"\{order_number\}", "your order"),
        (r"\{tracking_number\}", "your tracking number"),
        (r"\{ticket_number\}", "your case"),
        (r"[ \t]+(?:of|for)[ \t]+\{amount\}", ""),
        (r"\{amount\}", "the amount"),
        (r"[ \t]+(?:on|by|since|from|until|till|before|after)[ \t]+(?:the[ \t]+)?\{date\}", ""),
        (r"\{date\}", "that day"),
        (r"[ \t]+(?:to|at)[ \t]+\{address\}", ""),
        (r"\{address\}", "your address"),
        (r"\{email\}", "your e-mail address"),
        (r"\{phone\}", "your phone number"),
    )
)


# A reply that reports on one customer's case: what an agent did for it, or where it stands
# ("I've asked the carrier...", "it is already on its way", "Good news: ... is still Processing").
CASE_REPORT_RE = re.compile(r"""(?ix)
    \bI(?:'ve|\ have|\ just)?\ (?:asked|changed|cancell?ed|refunded|updated|sent|arranged|contacted|checked|processed
        |issued|removed|added|reset|opened|forwarded|escalated|resent|re-sent|booked|credited|corrected|fixed|passed
        |requested|reported|logged|noted|found|located|looked)\b
  | \b(?:is|has|have|was|were)\ (?:already|now|just)\b
  | \balready\ (?:been\ )?(?:dispatched|shipped|on\ its\ way|delivered|refunded|processed|cancell?ed|left)\b
  | \bI\ can\ see\b
  | \bgood\ (?:news|timing)\b
  | \b(?:it|your\ (?:order|parcel|refund|package|return|item))\ (?:is|was|has)\ (?:still\ |now\ )?(?:been\ )?
        (?:dispatched|delivered|on\ its\ way|shipped|refunded|cancell?ed|arrived|received|processing)\b
""")


def reports_on_a_case(text: str) -> bool:
    """The reply tells one customer what was done for their case or where it stands."""
    return bool(CASE_REPORT_RE.search(text or ""))


@dataclass(frozen=True)
class KnownValues:
    """What the imported history says: company constants ((kind, value_key) pairs) and
    the lower-case names of people met in it (customers and agents)."""

    constants: frozenset[tuple[str, str]] = frozenset()
    names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ConversationFacts:
    """What one conversation holds: its texts, the customer's names and the values a slot can take."""

    texts: tuple[str, ...]
    names: frozenset[str]  # lower case
    values: dict[str, str]
    known: KnownValues
    squashed: str = (
        ""  # the texts lower-cased without spaces, dashes, '#', '.', ',': for finding identifiers
    )

    def holds(self, kind: str, value: str) -> bool:
        if kind in NAME_KINDS:
            return value.lower() in self.names or any(
                re.search(rf"(?<!\w){re.escape(value)}(?!\w)", t, re.IGNORECASE) for t in self.texts
            )
        key = value_key(kind, value)
        return bool(key) and (
            key in self.squashed or re.sub(r"[\s\-#.,]", "", key) in self.squashed
        )


@dataclass(frozen=True)
class Checked:
    """A candidate after `prepare`: the text to send (filled), and why it must not be sent, if so."""

    text: str
    foreign: tuple[Found, ...] = ()
    unfilled: tuple[str, ...] = ()  # slots phrased out
    filled: tuple[str, ...] = ()  # slots filled from the conversation

    @property
    def ok(self) -> bool:
        return not self.foreign

    @property
    def why(self) -> str:
        return "; ".join(f"{f.kind} {f.value!r} is not this customer's" for f in self.foreign)


@dataclass
class SpecificsGuard:
    """The outgoing check and slot filler; see the module docstring. One per dialogue
    manager; thread-safe."""

    database: Database
    company_name: str = ""
    _cache: tuple[tuple[object, ...], KnownValues] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- what the store knows ------------------------------------------------------------

    def known(self) -> KnownValues:
        """Constants and names from `known_values`, re-read only when the table changed."""
        from sqlalchemy import func, select

        from chatbot.store.schema import KnownValue

        with self.database.session() as session:
            stamp = tuple(
                session.execute(select(func.count(KnownValue.id), func.max(KnownValue.id))).one()
            )
            with self._lock:
                if self._cache is not None and self._cache[0] == stamp:
                    return self._cache[1]
            rows = session.execute(
                select(KnownValue.kind, KnownValue.value, KnownValue.constant)
            ).all()
        known = KnownValues(
            constants=frozenset((kind, value) for kind, value, constant in rows if constant),
            names=frozenset(
                value.lower()
                for kind, value, constant in rows
                if kind in NAME_KINDS and not constant
            ),
        )
        with self._lock:
            self._cache = (stamp, known)
        return known

    def facts(
        self, customer_texts: Sequence[str], other_texts: Iterable[str] = ()
    ) -> ConversationFacts:
        """What this conversation holds: `customer_texts` are the customer's messages
        (oldest first, the current one last), `other_texts` its other turns."""
        customer_texts = [t for t in customer_texts if t]
        texts = tuple([*customer_texts, *(t for t in other_texts if t)])
        names = customer_names(customer_texts)
        values: dict[str, str] = {}
        if names:
            # Greetings use the first name; the latest one the customer gave wins.
            values["customer_name"] = sorted(names, key=len)[0].split()[0]
        for text in customer_texts:
            for f in find_specifics(text):
                if f.kind in FILLABLE:
                    values[f.kind] = f.value
        squashed = re.sub(r"[\s\-#.,]", "", " ".join(texts).lower())
        return ConversationFacts(
            texts, frozenset(n.lower() for n in names), values, self.known(), squashed
        )

    # -- one candidate -------------------------------------------------------------------

    def slot(self, text: str, known: KnownValues | None = None) -> str:
        """A raw reply (one that was never slotted at import) with its specifics as slots."""
        known = known if known is not None else self.known()
        found = [f for f in find_specifics(text) if f.kind not in LEFT_TO_REDACTION]
        return slotted(text, found, known.constants)

    def fill(self, text: str, facts: ConversationFacts) -> tuple[str, list[str], list[str]]:
        """(text with every slot filled or phrased out, slots filled, slots phrased out)."""
        if "{" not in text:
            return text, [], []
        filled: list[str] = []
        unfilled: list[str] = []

        def put(m: re.Match[str]) -> str:
            kind = m.group(1)
            if kind != "agent_name" and kind in facts.values:
                filled.append(kind)
                return facts.values[kind]
            return m.group(0)

        def phrase(replacement: str) -> Callable[[re.Match[str]], str]:
            return lambda m: self._phrase(m, replacement, unfilled)

        text = SLOT_RE.sub(put, text)
        if self.company_name:
            text = re.sub(r"(?<=\n)[ \t]*\{agent_name\}[ \t]*(?=\n|$)", self.company_name, text)
        for pattern, replacement in _WITHOUT:
            if "{" not in text:
                break
            text = pattern.sub(phrase(replacement), text)
        text = re.sub(r"[ \t]+([,.!?])", r"\1", text)
        text = re.sub(r"([,.!?])[ \t]*,", r"\1", text)
        text = re.sub(r"[ \t]{2,}", " ", text)
        text = re.sub(r"\n[ \t]+\n", "\n\n", text).strip()
        return text, filled, unfilled

    @staticmethod
    def _phrase(m: re.Match[str], replacement: str, unfilled: list[str]) -> str:
        unfilled.extend(SLOT_RE.findall(m.group(0)))
        out = m.expand(replacement)
        if out and out[0].islower() and _SENTENCE_END.search(m.string[: m.start()]):
            out = out[0].upper() + out[1:]
        return out

    def check(self, text: str, facts: ConversationFacts) -> list[Found]:
        """What in `text` belongs to someone else: neither this conversation's nor a company constant."""
        foreign: list[Found] = []
        for f in find_specifics(text, facts.texts):
            if f.kind in LEFT_TO_REDACTION:
                continue
            if (
                f.kind not in NAME_KINDS
                and (f.kind, value_key(f.kind, f.value)) in facts.known.constants
            ):
                continue
            if not facts.holds(f.kind, f.value):
                foreign.append(f)
        for m in SLOT_RE.finditer(text):
            foreign.append(Found(m.group(1), m.group(0), m.start(), m.end()))
        claimed = {(f.start, f.end) for f in foreign}
        for name in facts.known.names:
            if name in facts.names or len(name) < 3:
                continue
            for m in re.finditer(rf"(?<![\w{{@]){re.escape(name)}(?![\w}}])", text, re.IGNORECASE):
                word = m.group(0)
                if word[0].isupper() and (m.start(), m.end()) not in claimed:
                    if not facts.holds("customer_name", word):
                        foreign.append(Found("customer_name", word, m.start(), m.end()))
        return sorted(foreign, key=lambda f: f.start)

    def prepare(self, text: str, facts: ConversationFacts) -> Checked:
        """Fill, then check: the text to send, or why it must not be sent."""
        text, filled, unfilled = self.fill(text or "", facts)
        return Checked(text, tuple(self.check(text, facts)), tuple(unfilled), tuple(filled))
