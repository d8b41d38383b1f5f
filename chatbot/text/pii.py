"""Finding personal data in a text, whoever wrote it (a customer, an agent, an imported
transcript): one `Detector` with one recogniser per kind, each validating what it can.

- `email`: addresses, and spelled-out ones ("jane dot doe at example dot com",
  "jane[at]example[dot]com", "grace.kim AT example.com");
- `phone`: numbers `phonenumbers` validates for one of the detector's regions, numbers
  written in international form (+44 …, 0044 …), and other digit groups only where the
  text says phone ("call me on", "mobile");
- `card`: payment card numbers of a known scheme's length and prefix, Luhn-checked;
- `iban`: IBANs whose country format and ISO 7064 checksum `python-stdnum` accepts;
- `id`: national ID numbers with a checksum (Spanish DNI/NIE, Italian codice fiscale,
  US SSN in its dashed form, Dutch BSN after "BSN"), UK National Insurance numbers by
  their format, and passport, ID card and driving licence numbers after those words;
- `address`: street addresses (a house number and a street type: "14 Harbour Street,
  Leeds LS1 4AP", "Hauptstraße 12, 10115 Berlin", "45 Rue de Rivoli, 75001 Paris");
- `name`: people's names where `chatbot.text.specifics` finds them (greetings,
  sign-offs, "my name is …") and after a title ("Mrs Patel");
- `handle`: social media handles (@name).

Nothing inside a URL is personal data except an e-mail address; values on the
allowlist (the company's own address, hotline, bank account, handle) never are. Spans
never overlap: the first recogniser in the order above wins.

Where its job ends: it finds spans. Replacing them (`chatbot.text.redact`), slotting
(`chatbot.text.specifics`) and deciding what may be shared (`chatbot.support.sharing`)
are other modules' jobs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.es import dni, nie
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.us import ssn

KINDS = ("email", "phone", "card", "iban", "id", "address", "name", "handle")
# Regions whose national phone formats are recognised without a "+" (configurable).
DEFAULT_PHONE_REGIONS = ("GB", "US", "DE", "FR", "NL", "IE", "ES", "IT")

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*\s?@\s?"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
# "https: //" (a space after the colon) occurs in scraped tweets.
URL_RE = re.compile(r"(?:\bhttps?:\s?//|\bwww\.)[^\s<>\"']+", re.IGNORECASE)
CARD_RE = re.compile(r"(?<![\d\w])(?:\d[ -]?){12,18}\d(?![\d\w])")
PHONE_RE = re.compile(r"(?<![\w+.\-/])(?:\+\s?)?\(?\d[\d ().\-]{5,22}\d(?![\w\-/]|\.\d)")
HANDLE_RE = re.compile(r"(?<![\w@./<>])@[A-Za-z0-9_]{1,30}(?![\w@.]*\.[A-Za-z]{2,}\b)(?!\w)")
PHONE_WORDS_RE = re.compile(
    r"(?:phone|tel|telephone|mobile|cell|call|text me|whatsapp|fax|ring|landline)"
    r"\W{0,3}(?:\w+\W{1,3}){0,3}$",
    re.IGNORECASE,
)
DATE_RE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")

# Spelled-out e-mail addresses: an "at" and "dot"s in words or brackets.
_AT = r"(?:\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+|\s+AT\s+)"
_DOT = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+|\s+DOT\s+|\.)"
_PART = r"[A-Za-z0-9][A-Za-z0-9_%+-]*"
_TLD = r"(?:com|org|net|edu|gov|info|biz|io|eu|co|uk|de|fr|nl|es|it|ie|be|at|ch|jp|se|dk|no|fi|pl|pt|us|ca|au)"
SPELLED_EMAIL_RE = re.compile(
    rf"(?<![\w.@-])(?P<local>{_PART}(?:(?:{_DOT}|[_-]){_PART})*?){_AT}"
    rf"(?P<domain>{_PART}(?:{_DOT}{_PART})*?{_DOT}{_TLD})(?![\w-])",
    re.IGNORECASE,
)
_OBFUSCATED = re.compile(r"[\[({<]\s*(?:[Aa][Tt]|[Dd][Oo][Tt])\s*[\])}>]|\s(?:dot|DOT|AT)\s")

IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{1,4}){2,8}\b")

# National IDs whose format and checksum a library checks, and the words before others.
DNI_RE = re.compile(r"(?<![\w-])\d{8}-?[A-Z](?![\w-])")
NIE_RE = re.compile(r"(?<![\w-])[XYZ]-?\d{7}-?[A-Z](?![\w-])")
CODICE_FISCALE_RE = re.compile(r"(?<![\w-])[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z](?![\w-])")
SSN_RE = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
NINO_RE = re.compile(
    r"(?<![\w-])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w-])"
)
BSN_RE = re.compile(
    r"\b(?:BSN|burgerservicenummer|sofinummer)\W{1,3}(?:\w+\W{1,3}){0,2}?(?P<v>\d{9})\b", re.I
)
DOCUMENT_RE = re.compile(
    r"\b(?:passport|ID card|identity card|national ID|personal ID|ID number|"
    r"driv(?:er'?s|ing) licen[cs]e|Personalausweis|Reisepass)"
    r"(?:\W{1,3}(?:number|no|nr|num|is|was|card|expired|my))*\W{1,3}"
    r"(?P<v>(?=[A-Z0-9]*\d)[A-Z0-9]{6,18})\b",
    re.IGNORECASE,
)

# Street addresses.
_WORD = r"[A-Z][a-zà-ÿ'’]+"
_STREET_TYPES = (
    r"(?:Street|St|Road|Rd|Lane|Ln|Avenue|Ave|Way|Drive|Dr|Close|Court|Ct|Place|Pl|Square|Sq|"
    r"Gardens|Crescent|Terrace|Boulevard|Blvd|Row|Hill|Walk|Mews|Parade|Grove)"
)
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
_TOWN_TAIL = (
    rf"(?:,? (?:{_WORD} ){{0,2}}{_UK_POSTCODE}|, {_WORD}(?: {_WORD})?(?:,? [A-Z]{{2}} \d{{5}})?"
    rf"(?: {_UK_POSTCODE})?)?"
)
_UNIT = r"(?:(?:Flat|Apartment|Apt|Unit|Suite) [\dA-Z]{1,4}, )?"
ADDRESS_RES = (
    # "14 Harbour Street, Leeds LS1 4AP", "1600 Pennsylvania Ave NW, Washington, DC 20500"
    re.compile(
        rf"{_UNIT}\b\d{{1,4}}[A-Za-z]? (?:{_WORD} ){{1,3}}{_STREET_TYPES}\b\.?(?: [NS][EW]?\b)?{_TOWN_TAIL}"
    ),
    # "Hauptstraße 12, 10115 Berlin", "Kerkstraat 45, 1017 GC Amsterdam"
    re.compile(
        r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|straat|weg|gasse|laan|gracht|plein|allee|platz)"
        r" \d{1,4}[a-z]?(?:, ?\d{4,5}(?: [A-Z]{2})? [A-Z][a-zäöüß]+)?"
    ),
    # "45 Rue de Rivoli, 75001 Paris", "Calle Mayor 15, 28013 Madrid"
    re.compile(
        r"(?:\b\d{1,4},? )?\b(?:[Rr]ue|[Aa]venue|[Bb]oulevard|[Cc]alle|[Aa]venida|[Pp]laza|[Vv]ia|[Vv]iale|"
        r"[Pp]iazza|[Cc]orso)(?: (?:de la|de|del|des|du|di|della))? [A-Z][a-zà-ÿ]+(?: [A-Z][a-zà-ÿ]+)?"
        r"(?: \d{1,4})?, ?\d{5} [A-Z][a-zà-ÿ]+"
    ),
)
_NAME = r"[A-Z][a-zà-ÿ][A-Za-zà-ÿ'’-]+"
# Where a name stands that `chatbot.text.specifics` (which slots replies) does not look.
NAME_RES = (
    re.compile(rf"\bname(?: on the (?:account|card|order))?(?: is)?:? (?P<n>{_NAME}(?: {_NAME})?)"),
    re.compile(
        rf"\b(?:[Mm]y|[Oo]ur) (?:husband|wife|partner|son|daughter|mother|mum|mom|father|dad|friend|"
        rf"neighbour|neighbor|colleague|brother|sister|boss) (?P<n>{_NAME})"
    ),
    re.compile(rf"\b(?:spoke|talked|speak|talk|spoken) (?:to|with) (?P<n>{_NAME})"),
    re.compile(rf"\b(?:ask for|call|ring|contact) (?P<n>{_NAME})(?= on\b| at\b)"),
    re.compile(
        rf"\b(?:Thanks|Thank you|Cheers|Best|Regards|Kind regards|Best regards),? (?P<n>{_NAME}(?: {_NAME})?)[.!]?$"
    ),
    re.compile(rf"^(?:Thanks|Thank you|Cheers) (?P<n>{_NAME})(?=[,!.])"),
    re.compile(
        rf"(?:Kind regards|Best regards|Regards|Best wishes|Best|Cheers|Thanks|Many thanks|Sincerely),?[ \t]*\n"
        rf"[ \t]*(?P<n>{_NAME}(?: {_NAME})?)[ \t]*(?=\n)"
    ),
)
TITLE_NAME_RE = re.compile(
    r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr)\.? [A-Z][a-z][A-Za-z'’-]+(?: [A-Z][a-z][A-Za-z'’-]+)?"
)


@dataclass(frozen=True)
class PiiSpan:
    """A piece of personal data: its kind (one of `KINDS`), where it is and the text."""

    kind: str
    start: int
    end: int
    value: str


def luhn_ok(digits: str) -> bool:
    return digits.isdigit() and luhn.is_valid(digits)


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
    """The digit groups of `candidate` are shaped like a phone number (not a date, a
    decimal, a version or an IP address); a bare run of digits only after phone words."""
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


def _compact(value: str) -> str:
    return re.sub(r"[^0-9a-z]", "", value.lower())


class Detector:
    """Finds personal data of `kinds` in a text, except `allowlist` values: e-mail
    addresses or domains, and any other value compared without spaces and punctuation
    (a phone number by its last nine digits)."""

    def __init__(
        self,
        kinds: Iterable[str] = KINDS,
        allowlist: Iterable[str] = (),
        phone_regions: Iterable[str] = DEFAULT_PHONE_REGIONS,
    ) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(KINDS)
        if unknown:
            raise ValueError(
                f"unknown kinds of personal data {sorted(unknown)}; expected some of {list(KINDS)}"
            )
        self.allow = tuple(a.strip().lower() for a in allowlist if a and a.strip())
        self._allow_compact = frozenset(_compact(a.lstrip("@")) for a in self.allow) - {""}
        self._allow_phone = frozenset(
            d[-9:] for d in (re.sub(r"\D", "", a) for a in self.allow) if len(d) >= 7
        )
        self.phone_regions = tuple(phone_regions)
        for region in self.phone_regions:
            if region not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"unknown phone region {region!r}")

    # -- the allowlist ---------------------------------------------------------------
    def allowed(self, kind: str, value: str) -> bool:
        if not self.allow:
            return False
        if kind == "email":
            address = re.sub(r"\s", "", value).lower()
            domain = address.rsplit("@", 1)[-1]
            return any(
                address == a or domain == a.lstrip("@") or domain.endswith("." + a.lstrip("@"))
                for a in self.allow
            )
        if kind == "phone":
            digits = re.sub(r"\D", "", value)
            return len(digits) >= 7 and digits[-9:] in self._allow_phone
        return _compact(value.lstrip("@")) in self._allow_compact

    # -- all of it -------------------------------------------------------------------
    def find(self, text: str, context: Iterable[str] = ()) -> list[PiiSpan]:
        """The personal data in `text`, in text order, never overlapping; `context`: the
        conversation's earlier texts (where a customer may have given their name)."""
        if not text or not self.kinds:
            return []
        urls = [(m.start(), m.end()) for m in URL_RE.finditer(text)]
        taken: list[tuple[int, int]] = []
        spans: list[PiiSpan] = []

        def claim(kind: str, start: int, end: int, *, in_urls: bool = False) -> None:
            if kind not in self.kinds or start >= end:
                return
            if any(start < b and a < end for a, b in taken):
                return
            if not in_urls and any(start < b and a < end for a, b in urls):
                return
            value = text[start:end]
            if self.allowed(kind, value):
                taken.append((start, end))  # a constant: nothing else may claim it either
                return
            taken.append((start, end))
            spans.append(PiiSpan(kind, start, end, value))

        if "email" in self.kinds:
            for start, end in self._emails(text):
                claim("email", start, end, in_urls=True)
        # Each of these needs a digit (a street address its house number or postcode).
        if any(c.isdigit() for c in text):
            for kind, finder in (
                ("iban", self._ibans),
                ("card", self._cards),
                ("id", self._ids),
                ("phone", self._phones),
                ("address", self._addresses),
            ):
                if kind in self.kinds:
                    for start, end in finder(text):
                        claim(kind, start, end)
        if "name" in self.kinds:
            for start, end in self._names(text, context):
                claim("name", start, end)
        if "handle" in self.kinds and "@" in text:
            for m in HANDLE_RE.finditer(text):
                claim("handle", m.start(), m.end())
        return sorted(spans, key=lambda s: s.start)

    # -- recognisers -----------------------------------------------------------------
    @staticmethod
    def _emails(text: str) -> Iterator[tuple[int, int]]:
        if "@" in text:
            for m in EMAIL_RE.finditer(text):
                yield m.start(), m.end()
        lowered = text.lower()
        if (
            " at " not in lowered
            and "at]" not in lowered
            and "at)" not in lowered
            and "at}" not in lowered
        ):
            return
        for m in SPELLED_EMAIL_RE.finditer(text):
            whole = m.group(0)
            if "@" in whole:
                continue
            # "look at example.com" is no address: a spelled-out one says so somewhere.
            if not _OBFUSCATED.search(whole) and not re.search(r"[._\d]", m.group("local")):
                continue
            yield m.start(), m.end()

    @staticmethod
    def _ibans(text: str) -> Iterator[tuple[int, int]]:
        for m in IBAN_RE.finditer(text):
            groups = list(re.finditer(r"[A-Z0-9]+", m.group(0)))
            # The longest run of groups from the start that is a valid IBAN.
            for last in range(len(groups) - 1, -1, -1):
                candidate = m.group(0)[: groups[last].end()]
                if stdnum_iban.is_valid(candidate.replace(" ", "")):
                    yield m.start(), m.start() + len(candidate)
                    break

    @staticmethod
    def _cards(text: str) -> Iterator[tuple[int, int]]:
        """Card numbers in runs of digit groups: the whole run, or (longest first) groups
        within it ("4111 1111 1111 1111 05 27": a card and its expiry date)."""
        for match in CARD_RE.finditer(text):
            runs = [(m.start(), m.end()) for m in re.finditer(r"\d+", match.group(0))]
            i = 0
            while i < len(runs):
                for j in range(len(runs) - 1, i - 1, -1):
                    start, end = runs[i][0], runs[j][1]
                    digits = re.sub(r"\D", "", match.group(0)[start:end])
                    if 13 <= len(digits) <= 19 and card_brand_ok(digits) and luhn_ok(digits):
                        yield match.start() + start, match.start() + end
                        i = j + 1
                        break
                else:
                    i += 1

    @staticmethod
    def _ids(text: str) -> Iterator[tuple[int, int]]:
        for pattern, valid in (
            (DNI_RE, dni.is_valid),
            (NIE_RE, nie.is_valid),
            (CODICE_FISCALE_RE, codicefiscale.is_valid),
            (SSN_RE, ssn.is_valid),
            (NINO_RE, lambda value: True),
        ):
            for m in pattern.finditer(text):
                if valid(m.group(0)):
                    yield m.start(), m.end()
        for m in BSN_RE.finditer(text):
            if bsn.is_valid(m.group("v")):
                yield m.start("v"), m.end("v")
        for m in DOCUMENT_RE.finditer(text):
            value = m.group("v")
            if value.isupper() or value.isdigit() or any(c.isdigit() for c in value[:2]):
                yield m.start("v"), m.end("v")

    def _phones(self, text: str) -> Iterator[tuple[int, int]]:
        # Digits inside something shaped like an IBAN (a mistyped one, too) are no phone.
        ibans = [(m.start(), m.end()) for m in IBAN_RE.finditer(text)]
        seen: set[tuple[int, int]] = set()
        for region in self.phone_regions:
            for match in phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID):
                lead = len(match.raw_string) - len(match.raw_string.lstrip())
                where = (match.start + lead, match.end)
                if where in seen or any(a <= match.start < b for a, b in ibans):
                    continue
                seen.add(where)
                # A bare run of digits is an order or ticket number unless the text says phone.
                bare = match.raw_string.strip().isdigit()
                if DATE_RE.match(match.raw_string.strip()):
                    continue
                if not bare or PHONE_WORDS_RE.search(text[: match.start][-40:]):
                    yield where
        for m in PHONE_RE.finditer(text):
            candidate = m.group(0).rstrip(").- ")
            before = text[: m.start()]
            international = candidate.startswith(("+", "00"))
            if looks_like_phone(candidate, before) and (
                international or PHONE_WORDS_RE.search(before[-40:])
            ):
                yield m.start(), m.start() + len(candidate)

    @staticmethod
    def _addresses(text: str) -> Iterator[tuple[int, int]]:
        for pattern in ADDRESS_RES:
            for m in pattern.finditer(text):
                value = m.group(0).rstrip(".,")
                yield m.start(), m.start() + len(value)

    @staticmethod
    def _names(text: str, context: Iterable[str]) -> Iterator[tuple[int, int]]:
        from chatbot.text.specifics import NAME_KINDS, NOT_NAMES, find_specifics

        for found in find_specifics(text, [*context, text]):
            if found.kind in NAME_KINDS:
                yield found.start, found.end
        for m in TITLE_NAME_RE.finditer(text):
            if m.group(0).split()[-1].lower() not in NOT_NAMES:
                yield m.start(), m.end()
        for pattern in NAME_RES:
            for m in pattern.finditer(text):
                if all(w.lower() not in NOT_NAMES for w in m.group("n").split()):
                    yield m.start("n"), m.end("n")
