"""The company's contact details: mined from its agents' replies, recognised in a
customer's question, written as one short reply.

- `mine_contact(replies)`: the e-mail address, web address and phone number its agents
  give in at least `MIN_CONVERSATIONS` conversations (so one customer's address never
  counts), and the sentence its agents use most to say when the team is available
  ("Our team is available Monday to Friday, 8:00-18:00 CET; ..."): a weekday range and
  opening times, no slot, not leaning on an earlier sentence ("They work...").
- `asks_for_contact(message)`: the kinds of detail a message asks for ("what's your
  e-mail?": email; "when are you open?": hours; "where's your help centre?": web), or
  none when it is about the customer's own details ("change my e-mail address") or asks
  something else as well.
- `contact_text(card, kinds)`: the reply, the asked kinds first.

Where its job ends: no store, no index; the index build keeps the card with the
company's voice (`chatbot.indexing.answer_classes`), and the contact stage
(`chatbot.dialogue.stages.contact`) answers with it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

from chatbot.dialogue.understanding import question_parts
from chatbot.retrieval.scope import SHORTHAND

MIN_CONVERSATIONS = 3
KINDS = ("email", "hours", "web", "phone")

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL = re.compile(r"\bhttps?://[^\s<>()\[\]{}\"']+")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()/-]{6,}\d(?!\w)")
_PHONE_WORDS = re.compile(r"\b(call|phone|telephone|ring|hotline|tel)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_DAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?"
_DAY_RANGE = re.compile(rf"\b{_DAY}\s*(?:to|-|–|through|until)\s*{_DAY}\b|\bweekdays\b", re.I)
_CLOCK = r"\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)?"
_TIME_RANGE = re.compile(rf"\b{_CLOCK}\s*(?:-|–|to|until)\s*{_CLOCK}", re.IGNORECASE)
_LEANS_BACK = re.compile(r"^(?:they|it|he|she|this|that|these|those|then|also)\b", re.I)

# What a question about each kind of detail says (lower case, whole words).
_ASKS = {
    "email": r"\b(?:your|support|customer service)\s+e-?mail(?: address)?\b"
    r"|\be-?mail (?:address )?(?:i|we) can (?:write|send|use)\b"
    r"|\bwrite to (?:you|support|customer service)\b|\bsend (?:you|support) an? e-?mail\b",
    "phone": r"\b(?:phone|telephone|hotline)(?: number)?\b"
    r"|\bcall (?:you|support|customer service|someone)\b|\bring you\b",
    "hours": r"\b(?:opening|office|business|support|service|working|customer service) hours\b"
    r"|\bwhen are you (?:open|available)\b|\bare you open\b"
    r"|\bwhat time (?:do|does|are) (?:you|your|support|the team)\b"
    r"|\bhow (?:long|soon|quickly)\b.*\b(?:gets? back to (?:me|us)|reply|replies|respond|"
    r"answer|hear back|hear from you)\b",
    "web": r"\bhelp ?(?:centre|center|page|site|desk|pages)\b|\bfaqs?\b"
    r"|\byour (?:website|web ?site|site)\b",
    "any": r"\b(?:contact|reach|get in touch with) (?:you|support|customer (?:service|support|care)|"
    r"the (?:team|company|shop)|someone)\b|\bhow (?:do|can) i (?:contact|reach)\b"
    r"|\bcontact (?:details|information|info)\b",
}
_ASKS_COMPILED = {kind: re.compile(pattern) for kind, pattern in _ASKS.items()}
# The customer's own details, not the company's: "change my e-mail address".
_OWN = re.compile(r"\bmy (?:e-?mail|phone|number|account|password|address)\b")

EMAIL_LINE = "You can e-mail us at {email}."
WEB_LINE = "You'll find answers to common questions at {web}."
PHONE_LINE = "You can call us on {phone}."


def mine_contact(replies: Iterable[tuple[object, str]]) -> dict[str, str]:
    """The contact card of (conversation key, agent reply) pairs: the kinds found, each
    given in at least MIN_CONVERSATIONS conversations (see the module docstring)."""
    seen: dict[str, defaultdict[str, set[object]]] = {k: defaultdict(set) for k in KINDS}
    for conversation, reply in replies:
        for address in _EMAIL.findall(reply):
            seen["email"][address.lower()].add(conversation)
        for url in _URL.findall(reply):
            seen["web"][url.rstrip(".,;:!?")].add(conversation)
        for sentence in _SENTENCE.split(reply):
            sentence = sentence.strip()
            if _PHONE_WORDS.search(sentence):
                for number in _PHONE.findall(sentence):
                    seen["phone"][" ".join(number.split())].add(conversation)
            if _is_hours_sentence(sentence):
                seen["hours"][sentence].add(conversation)
    card: dict[str, str] = {}
    for kind, values in seen.items():
        common = [(v, len(c)) for v, c in values.items() if len(c) >= MIN_CONVERSATIONS]
        if common:
            # the most conversations; of those, the shortest (the plainest wording)
            card[kind] = min(common, key=lambda vn: (-vn[1], len(vn[0]), vn[0]))[0]
    return card


def _is_hours_sentence(sentence: str) -> bool:
    return (
        bool(_DAY_RANGE.search(sentence))
        and bool(_TIME_RANGE.search(sentence))
        and "{" not in sentence
        and "<" not in sentence
        and not _LEANS_BACK.match(sentence)
    )


def asks_for_contact(message: str) -> list[str]:
    """The kinds of contact detail the message asks for, in KINDS order ("any" alone when
    it asks how to reach the company at all); empty when it asks none, is about the
    customer's own details, or asks something else as well."""
    words = re.sub(r"[^\w\s@.'?-]", " ", message.lower()).split()
    text = " ".join(SHORTHAND.get(w, w) for w in words)  # "wat time r u open" too
    if not text or _OWN.search(text):
        return []
    kinds: list[str] = []
    for part in question_parts(text):
        found = [k for k, pattern in _ASKS_COMPILED.items() if pattern.search(part)]
        if not found:
            return []  # a part about something else: the rest of the pipeline answers it
        kinds += [k for k in found if k not in kinds]
    return [k for k in (*KINDS, "any") if k in kinds]


def contact_text(card: Mapping[str, str], kinds: Iterable[str]) -> str | None:
    """The reply giving the card's details, the asked kinds first (all of them for
    "any"); None when the card holds none of what was asked."""
    asked = [k for k in kinds if k in card]
    if not asked and "any" not in kinds:
        return None
    order = [*asked, *(k for k in KINDS if k in card and k not in asked)]
    lines = {
        "email": EMAIL_LINE.format(email=card.get("email", "")),
        "hours": card.get("hours", ""),
        "web": WEB_LINE.format(web=card.get("web", "")),
        "phone": PHONE_LINE.format(phone=card.get("phone", "")),
    }
    text = " ".join(lines[k] for k in order)
    return text or None
