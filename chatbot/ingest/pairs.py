"""Training pairs from a clean, redacted conversation: for each agent turn, the
preceding turns (a window) as context and the agent turn as target; filters for pairs
that teach nothing; the near-duplicate key; the deterministic split; quality labels.
Storing the pairs is the importer's job."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

GREETING_WORDS = frozenset(
    """hi hello hey hiya heya there dear all good morning afternoon evening night day
    thanks thank you thx ty tyvm cheers much so very many a lot welcome you're youre your are
    bye goodbye see ya later take care have nice great lovely wonderful weekend best regards
    kind warm sincerely np anytime glad happy to help helped could we were was it
    our pleasure my the and for reaching out contacting us again enjoy safe stay""".split()
)
DM_RE = re.compile(
    r"\b(dm|d\.m\.|direct message|private message|pm us|message us|send us a (?:dm|message|note)|inbox us|"
    r"follow (?:and|&) dm|reach out (?:to us )?(?:via|in|by) (?:dm|direct message|private message))\b",
    re.IGNORECASE,
)
# Words a "please DM us" reply is made of when it says nothing else.
DM_FILLER = GREETING_WORDS | frozenset(
    """dm dms d.m direct private message messages msg note pm inbox send sending shoot drop follow us a an
    the your you we we'll well can could would will with and so to for of on in via here there please pls
    plz sorry hear that this look looking into it more further details detail info information help assist
    assistance check take get touch me our team be order number account email e-mail confirmation name
    address phone full reach out chat continue conversation let know what happened about issue concern
    experience any if have questions question can't cant wait happy glad able i'd i'll i love like
    would love want some additional specifics what's going on also include just quick""".split()
)
TOKEN_RE = re.compile(r"[a-z0-9'’]+(?:\.[a-z]\.)?")
PLACEHOLDER_RE = re.compile(r"<[A-Z_]+>|__[a-z_]+__")
URL_RE = re.compile(r"(?:https?:\s?//|www\.)\S+", re.IGNORECASE)
HANDLE_RE = re.compile(r"@\w+")
SIGNATURE_RE = re.compile(
    r"(?:^|\s)[\^*\-~]\s?[a-z]{1,4}\s*$", re.IGNORECASE
)  # "^jm", "-AB", "*KM" tweet initials


@dataclass
class PairCandidate:
    turn_index: int
    context: list[dict[str, str]]
    target: str
    content_hash: str


def words(text: str) -> list[str]:
    text = URL_RE.sub(" url ", text)
    text = PLACEHOLDER_RE.sub(" ", HANDLE_RE.sub(" ", text))
    text = SIGNATURE_RE.sub(" ", text)
    return [w.replace("’", "'") for w in TOKEN_RE.findall(text.lower())]


def trivial_reason(target: str) -> str | None:
    """Why the agent turn teaches nothing, or None when it is worth a pair."""
    tokens = words(re.sub(r"\bno (?:problem|worries)\b", "np", target, flags=re.IGNORECASE))
    if not tokens:
        return "empty_target"
    if len(tokens) <= 12 and all(t in GREETING_WORDS for t in tokens):
        return "greeting_or_signoff"
    if "url" not in tokens and DM_RE.search(target):
        content = [t for t in tokens if t not in DM_FILLER]
        if len(content) < 3:
            return "dm_request_without_content"
    return None


def normalise(text: str) -> str:
    """Text as the near-duplicate check sees it: case, digits, placeholders, handles,
    punctuation and spacing ignored."""
    return " ".join(re.sub(r"\d+", "0", w) for w in words(text))


def pair_key(context: list[dict[str, str]], target: str) -> str:
    """Pairs with the same key are near-duplicates: same (normalised) customer message
    answered by the same (normalised) reply."""
    question = context[-1]["text"] if context else ""
    payload = normalise(question) + "\x1f" + normalise(target)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def exact_key(context: list[dict[str, str]], target: str) -> str:
    payload = "\x1e".join(f"{c['role']}\x1f{c['text']}" for c in context) + "\x1d" + target
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def build_pairs(
    turns: list[tuple[str, str]], *, window: int, filter_trivial: bool = True, collapse: bool = True
) -> tuple[list[PairCandidate], dict[str, int]]:
    """Pairs for the agent turns of `turns` ((role, text), merged so that roles
    alternate) and the count of agent turns skipped, by reason."""
    pairs: list[PairCandidate] = []
    skipped: dict[str, int] = {}
    for index, (role, text) in enumerate(turns):
        if role != "agent":
            continue
        context = [{"role": r, "text": t} for r, t in turns[max(0, index - window) : index]]
        reason = None
        if not context or context[-1]["role"] != "customer":
            reason = "no_customer_message"
        elif filter_trivial:
            reason = trivial_reason(text)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        key = pair_key(context, text) if collapse else exact_key(context, text)
        pairs.append(PairCandidate(index, context, text, key))
    return pairs, skipped


def split_for(source: str, external_id: str, *, val_fraction: float, test_fraction: float) -> str:
    """train / val / test from a hash of source and conversation id: the same
    conversation always lands in the same split, whatever else is imported."""
    digest = hashlib.sha256(f"{source}\x1f{external_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


LABEL_KEYS = ("intent", "topic", "flow", "subflow", "company", "doc_id", "channel")


def labels_from_meta(meta: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
    """(quality, labels) for a conversation's pairs. `quality` is the mean of the
    source's numeric quality scores, on the source's own scale (STC-3: -2..2); the raw
    scores go to labels["quality"] next to label-like fields (intent, topic, flow...)."""
    labels: dict[str, Any] = {
        k: meta[k] for k in LABEL_KEYS if isinstance(meta.get(k), (str, int, float))
    }
    quality = None
    raw = meta.get("quality")
    if isinstance(raw, bool):
        raw = None
    if isinstance(raw, (int, float)):
        quality = float(raw)
        labels["quality"] = raw
    elif isinstance(raw, dict):
        scores = [
            float(v)
            for v in raw.values()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        if scores:
            quality = sum(scores) / len(scores)
            labels["quality"] = raw
    return quality, labels
