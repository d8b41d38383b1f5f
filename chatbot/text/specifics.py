"""Finding what belongs to one conversation in an agent's reply, and writing the reply
with typed slots instead.

A reply such as "Hi Samir, NW-719574 has already been dispatched. Kind regards, Anna"
holds its customer's name, their order number and the agent's name. `find_specifics`
returns those pieces as typed spans (`Found`): order, ticket and tracking numbers,
e-mail addresses and phone numbers that redaction left (e.g. allow-listed ones),
amounts, dates, street addresses, the customer's name (one they signed with or gave in
the context, or one the reply greets or thanks) and the agent's name (sign-offs such
as "Kind regards,\\nAnna", "^JS", "-Angie"). `slotted` writes the reply with
`{order_number}`, `{customer_name}`... in their place, leaving alone the values that
are company constants (a help address, a price or a delivery time that many
conversations share: which ones is decided over the whole store by
`chatbot.ingest.constants`). Names are never constants. Redaction placeholders
(`<EMAIL>`, `<PHONE>`...) are redaction's business and are left as they are; nothing
inside a URL is touched.

Plain regular expressions and word lists; this module stores nothing and knows
nothing about conversations beyond the texts it is given. Filling slots and checking
outgoing replies is `chatbot.dialogue.specifics`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, TypedDict

from chatbot.text.redact import EMAIL_RE, PHONE_RE, URL_RE, looks_like_phone

SLOT_KINDS = (
    "order_number",
    "ticket_number",
    "tracking_number",
    "customer_name",
    "agent_name",
    "amount",
    "date",
    "email",
    "phone",
    "address",
)
NAME_KINDS = frozenset({"customer_name", "agent_name"})
SLOT_RE = re.compile(r"\{(" + "|".join(SLOT_KINDS) + r")\}")
PLACEHOLDER_RE = re.compile(r"<[A-Z_]+>")

# Capitalised words that are not names where a greeting or a sign-off puts a name.
NOT_NAMES = frozenset(
    """there all everyone everybody team customer customers client sir madam mam maam friend friends folks guys
    user users again dear classmate please thanks thank sorry welcome hello hi hey good great yes no ok okay sure
    of the we i you your our it this that unfortunately happy glad just also so and but mr mrs ms dr support service
    services care agent agents staff customer's goods store shop team's cheers regards best kind warm sincerely
    many morning afternoon evening night day today tomorrow monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december there's here's
    hope let please welcome noted understood absolutely certainly perfect awesome right well done apologies
    apologize apologise unfortunately dm us me my mine his her their them they he she what when where why how
    which who whom whose if as at by for from in into on onto to with within without about above after before
    done fine note update info information amazon apple google microsoft twitter facebook""".split()
)
NAME = r"[A-Z][a-z][a-zA-Z'’\-]{0,20}"
MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
DATE_RES = (
    re.compile(r"(?<![\w.-])\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?![\w-])"),
    re.compile(r"(?<![\w.:/-])\d{1,2}[/.]\d{1,2}[/.]\d{2,4}(?![\w/.-])"),
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?(?: of)? {MONTHS}\b(?:,? \d{{4}})?"),
    re.compile(rf"\b{MONTHS}\.? \d{{1,2}}(?:st|nd|rd|th)?\b(?:,? \d{{4}})?"),
)
CURRENCY = r"(?:EUR|USD|GBP|RMB|CNY|CAD|AUD|INR|yuan|euros?|dollars?|pounds?|rupees?)"
AMOUNT_RE = re.compile(
    rf"(?:[€$£¥]\s?\d[\d,]*(?:\.\d+)?|{CURRENCY}\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?(?:{CURRENCY}\b|[€$£¥])"
    r"|(?<![\w.:/-])\d+\.\d{2}(?![\w%-]|\.\d))"
)
ADDRESS_RE = re.compile(
    r"\b\d{1,4}[A-Za-z]? (?:[A-Z][a-z]+ ){1,3}(?:Street|St|Road|Rd|Lane|Ln|Close|Avenue|Ave|Way|Drive|Dr|Court|Ct|"
    r"Place|Pl|Square|Sq|Gardens|Crescent|Terrace|Boulevard|Blvd|Row|Hill|Park|Walk|Mews)\b\.?"
)
MASKED_PHONE_RE = re.compile(r"(?<![\w*])\d{2,4}\*{3,6}\d{2,4}(?![\w*])")
TOKEN_RE = re.compile(r"(?<![\w@<{])#?[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*(?![\w@>}])")
UNIT_RE = re.compile(
    r"^\d+(?:\.\d+)?(?:gb|mb|kb|tb|mbps|gbps|kbps|g|m|k|mah|mm|cm|km|kg|hz|mhz|ghz|p|px|w|kw|kwh|v|am|pm|st|nd|rd|th|"
    r"s|x|yuan|rmb|eur|usd|min|mins|h|hrs|d|ml|l|gig|gigs|fps|k|mp|in|ft|lb|lbs|oz)$",
    re.IGNORECASE,
)
KIND_WORDS = (
    (
        "tracking_number",
        re.compile(
            r"(?:tracking|track|parcel|consignment|shipment|waybill|awb)\W+(?:\w+\W+){0,3}$", re.I
        ),
    ),
    (
        "ticket_number",
        re.compile(
            r"(?:ticket|case|reference|ref|complaint|incident|request|claim)\W+(?:\w+\W+){0,3}$",
            re.I,
        ),
    ),
    (
        "phone",
        re.compile(
            r"(?:call|dial|phone|hotline|tel|telephone|mobile|number is|ring|text)\W+(?:\w+\W+){0,2}$",
            re.I,
        ),
    ),
)

GREETING_RE = re.compile(
    rf"(?:^|\n|> |@\w+ |[.!?] )\s*(?:Hi|Hello|Hey|Dear|Hiya|Howdy|Good (?:morning|afternoon|evening)|Morning|"
    rf"Afternoon|Evening|Welcome back)(?: there)?,?[ \t]+(?P<name>{NAME}(?:[ \t]{NAME})?)(?=[ \t]*(?:[,!.:;?\n]|$))"
)
ADDRESSED_RE = re.compile(
    rf"(?:^|\n|[.!?>] |@\w+ )\s*(?:Thanks|Thank you|Many thanks|Sorry|I'm sorry|I am sorry|You're (?:very )?welcome|"
    rf"No problem|No worries|Great|Of course|Sure|Glad|Happy|Good news|Cheers|Okay|OK|Ok|Alright|Done|Perfect|"
    rf"Apologies|My apologies|Congrats|Congratulations|Welcome)\b[^.!?\n]{{0,80}}?,[ \t]*(?P<name>{NAME})"
    rf"(?=[ \t]*(?:[.!?,:;]|$))"
)
SIGN_OFF_RE = re.compile(
    r"(?:Kind regards|Best regards|Warm regards|Regards|Best wishes|Best|Cheers|Thanks|Thank you|Many thanks|Sincerely|"
    r"Yours sincerely|Take care|All the best)[,!.]?[ \t]*\n+[ \t]*(?P<sig>[^\n]{1,80}?)[ \t]*$",
)
INITIALS_RE = re.compile(r"(?:^|(?<=\s))[\^*/~–—-][ \t]?(?P<name>[A-Z][A-Za-z]{0,14})[ \t]*$")
AGENT_INTRO_RE = re.compile(
    rf"\b(?:[Mm]y name is|[Tt]his is|I'm|I am)[ \t]+(?P<name>{NAME})(?=[ \t]+(?:from|with|of|here|at)\b|[ \t]*[,.!])"
)
COMPANY_WORDS = re.compile(
    r"\b(?:team|care|support|service|services|customer|customers|desk|help|helpdesk|department|store|shop|goods|"
    r"inc|ltd|gmbh|llc|company|official|bank|airlines?|center|centre)\b",
    re.IGNORECASE,
)
# Where a customer gives their name.
SELF_NAME_RES = (
    re.compile(rf"\b[Mm]y name(?:'s| is)[ \t]+(?P<name>[A-Za-z][a-z'’\-]+(?:[ \t]{NAME})?)"),
    re.compile(
        rf"\b(?:[Ii]t'?s|[Ii]t is|[Tt]his is|I'm|I am|[Ii]m)[ \t]+(?P<name>{NAME}(?:[ \t]{NAME})?)(?=[ \t]*(?:[.,!\n]|$|here\b))"
    ),
    re.compile(rf"(?:^|(?<=[,.!] )|(?<=\n))(?P<name>{NAME}(?:[ \t]{NAME})?)[ \t]+here\b"),
)
CUSTOMER_SIGN_OFF_RE = re.compile(
    rf"(?:^|\n)[ \t]*(?P<name>{NAME}(?:[ \t]{NAME}){{0,2}})[ \t]*(?:\n[ \t]*(?:<PHONE>|<EMAIL>|\+?[\d ()\-]{{7,}})[ \t]*)*\s*$"
)


class FoundDict(TypedDict):
    """A `Found` as a JSON object (in a pair's `slots` column)."""

    kind: str
    value: str
    start: int
    end: int


class SlotDict(FoundDict):
    """One item of a pair's `slots` column: a piece found, and whether it is a company
    constant (kept as it is) or the conversation's own (a slot)."""

    constant: bool


@dataclass(frozen=True)
class Found:
    """One piece of a reply that belongs to one conversation: its kind, the text and where it is."""

    kind: str
    value: str
    start: int
    end: int

    def to_dict(self) -> FoundDict:
        return FoundDict(kind=self.kind, value=self.value, start=self.start, end=self.end)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Found:
        """From `to_dict`'s form, as read back from a JSON column."""
        return cls(str(data["kind"]), str(data["value"]), int(data["start"]), int(data["end"]))


def value_key(kind: str, value: str) -> str:
    """The form in which a value is counted and compared: names and words by lower case,
    numbers and identifiers without spaces, dashes or a leading '#'."""
    value = value.strip()
    if kind in NAME_KINDS or kind in ("email", "address", "date"):
        return re.sub(r"\s+", " ", value).lower()
    return re.sub(r"[\s\-#.,]", "", value).lower()


def _name_ok(name: str) -> bool:
    words = name.split()
    return bool(words) and all(w.lower().strip("'’") not in NOT_NAMES for w in words)


def customer_names(texts: Iterable[str]) -> set[str]:
    """Names customers give in `texts` ("my name is…", "it's Daniel", "Aisha here", a
    sign-off line): first names and full names as written, title-cased."""
    names: set[str] = set()
    for text in texts:
        if not text:
            continue
        for pattern in SELF_NAME_RES:
            for m in pattern.finditer(text):
                name = m.group("name").strip()
                if _name_ok(name):
                    names.add(name.title() if name.islower() else name)
        if "\n" in text.strip():
            sign_off = CUSTOMER_SIGN_OFF_RE.search(text.strip())
            if sign_off and _name_ok(sign_off.group("name")):
                names.add(sign_off.group("name"))
    for name in list(names):
        names.add(name.split()[0])
    return names


def _claim(
    spans: list[Found], taken: list[tuple[int, int]], kind: str, value: str, start: int, end: int
) -> None:
    if any(start < b and a < end for a, b in taken):
        return
    taken.append((start, end))
    spans.append(Found(kind, value, start, end))


def _kind_for_id(before: str) -> str:
    for kind, pattern in KIND_WORDS:
        if pattern.search(before[-40:]):
            return kind
    return "order_number"


def _is_identifier(token: str) -> bool:
    body = token.lstrip("#")
    digits = sum(c.isdigit() for c in body)
    letters = sum(c.isalpha() for c in body)
    if digits == 0 or UNIT_RE.match(body):
        return False
    if token.startswith("#"):
        return digits >= 3
    if letters == 0:
        return digits >= 5
    return digits >= 3 and len(body) >= 5


def find_specifics(reply: str, context: Sequence[str] = ()) -> list[Found]:
    """The pieces of `reply` that belong to one conversation, in text order; `context`
    holds the conversation's earlier turns (where the customer may have given a name)."""
    if not reply:
        return []
    spans: list[Found] = []
    taken: list[tuple[int, int]] = [(m.start(), m.end()) for m in URL_RE.finditer(reply)]
    taken += [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(reply)]
    taken += [(m.start(), m.end()) for m in SLOT_RE.finditer(reply)]
    for m in EMAIL_RE.finditer(reply):
        _claim(spans, taken, "email", m.group(0), m.start(), m.end())
    for m in MASKED_PHONE_RE.finditer(reply):
        _claim(spans, taken, "phone", m.group(0), m.start(), m.end())
    for pattern in DATE_RES:
        for m in pattern.finditer(reply):
            _claim(spans, taken, "date", m.group(0), m.start(), m.end())
    for m in PHONE_RE.finditer(reply):
        candidate = m.group(0).rstrip(").- ")
        if looks_like_phone(candidate, reply[: m.start()]):
            _claim(spans, taken, "phone", candidate, m.start(), m.start() + len(candidate))
    for m in AMOUNT_RE.finditer(reply):
        _claim(spans, taken, "amount", m.group(0), m.start(), m.end())
    for m in ADDRESS_RE.finditer(reply):
        _claim(
            spans,
            taken,
            "address",
            m.group(0).rstrip("."),
            m.start(),
            m.start() + len(m.group(0).rstrip(".")),
        )
    for m in TOKEN_RE.finditer(reply):
        if _is_identifier(m.group(0)):
            _claim(spans, taken, _kind_for_id(reply[: m.start()]), m.group(0), m.start(), m.end())
    _find_names(reply, context, spans, taken)
    return sorted(spans, key=lambda f: f.start)


def _find_names(
    reply: str, context: Sequence[str], spans: list[Found], taken: list[tuple[int, int]]
) -> None:
    names: dict[str, str] = {}  # lower-case name -> kind
    stripped = reply.rstrip()
    m = SIGN_OFF_RE.search(stripped)
    if m:
        signature = m.group("sig")
        person = signature.split(",")[0].strip()
        if (
            not COMPANY_WORDS.search(person)
            and re.fullmatch(rf"{NAME}(?: {NAME}){{0,2}}", person)
            and _name_ok(person)
        ):
            start = m.start("sig")
            _claim(spans, taken, "agent_name", person, start, start + len(person))
            names[person.lower()] = "agent_name"
    m = INITIALS_RE.search(stripped)
    if m and m.group("name").lower() not in NOT_NAMES:
        _claim(spans, taken, "agent_name", m.group("name"), m.start("name"), m.end("name"))
    for m in AGENT_INTRO_RE.finditer(reply):
        if _name_ok(m.group("name")):
            _claim(spans, taken, "agent_name", m.group("name"), m.start("name"), m.end("name"))
            names[m.group("name").lower()] = "agent_name"
    for pattern in (GREETING_RE, ADDRESSED_RE):
        for m in pattern.finditer(reply):
            name = m.group("name")
            if not _name_ok(name):
                first = name.split()[0]
                if not _name_ok(first):
                    continue
                name = first
            _claim(
                spans, taken, "customer_name", name, m.start("name"), m.start("name") + len(name)
            )
            names.setdefault(name.lower(), "customer_name")
            names.setdefault(name.split()[0].lower(), "customer_name")
    for name in customer_names(context):
        names.setdefault(name.lower(), "customer_name")
    # Every other mention of a name found above, or given by the customer.
    for name, kind in sorted(names.items(), key=lambda item: -len(item[0])):
        for m in re.finditer(rf"(?<![\w@{{]){re.escape(name)}(?![\w}}])", reply, re.IGNORECASE):
            if m.group(0)[0].isupper():
                _claim(spans, taken, kind, m.group(0), m.start(), m.end())


def slotted(
    text: str, found: Sequence[Found], constants: AbstractSet[tuple[str, str]] = frozenset()
) -> str:
    """`text` with each found piece replaced by its `{kind}` slot, except company
    constants ((kind, value_key) pairs; names never are)."""
    pieces: list[str] = []
    last = 0
    for f in sorted(found, key=lambda f: f.start):
        if f.start < last:
            continue
        if f.kind not in NAME_KINDS and (f.kind, value_key(f.kind, f.value)) in constants:
            continue
        pieces += [text[last : f.start], "{" + f.kind + "}"]
        last = f.end
    pieces.append(text[last:])
    return "".join(pieces)


def slot_summary(
    found: Sequence[Found], constants: AbstractSet[tuple[str, str]] = frozenset()
) -> list[SlotDict]:
    """The pair's `slots` column: every piece found, marked constant or not."""
    return [
        SlotDict(
            kind=f.kind,
            value=f.value,
            start=f.start,
            end=f.end,
            constant=f.kind not in NAME_KINDS and (f.kind, value_key(f.kind, f.value)) in constants,
        )
        for f in found
    ]
