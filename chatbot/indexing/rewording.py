"""Rewordings of a customer question, as customers word the same thing differently:
typos, dropped words, no punctuation or capitals, clauses in another order, everyday
synonyms. `chatbot index` fits and checks the question–answer fit model on them
(`chatbot.indexing.answer_classes`), so that its confidence holds for questions the
history does not contain word for word. Deterministic for a given seed.

Where its job ends: text in, variants out; what they are used for is the caller's.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

# Everyday words customers use for the same thing (both ways).
SYNONYMS: list[tuple[str, ...]] = [
    ("parcel", "package", "delivery"),
    ("order", "purchase"),
    ("refund", "money back", "reimbursement"),
    ("return", "send back"),
    ("cancel", "call off", "stop"),
    ("account", "profile"),
    ("log in", "sign in", "login"),
    ("password", "pw", "passcode"),
    ("invoice", "receipt", "bill"),
    ("charged", "billed"),
    ("change", "update", "modify"),
    ("broken", "damaged", "faulty", "defective"),
    ("arrive", "come", "get here"),
    ("how long", "how many days"),
    ("cost", "price", "charge"),
    ("e-mail", "email", "mail"),
    ("item", "product", "thing"),
    ("address", "delivery address"),
    ("card", "credit card", "debit card"),
    ("can i", "is it possible to", "am i able to"),
    ("where is", "where's", "what happened to"),
    ("i want to", "i'd like to", "i need to"),
]
_STOP = {"the", "a", "an", "my", "please", "to", "i", "is", "it", "do", "for", "of", "and"}


def _typo(text: str, rng: random.Random) -> str:
    words = text.split()
    long = [i for i, w in enumerate(words) if len(w) > 3]
    for i in rng.sample(long, min(len(long), rng.choice((1, 2)))):
        w = list(words[i])
        j = rng.randrange(1, len(w) - 1)
        if rng.random() < 0.5:
            w[j], w[j + 1] = w[j + 1], w[j]
        else:
            del w[j]
        words[i] = "".join(w)
    return " ".join(words)


def _drop(text: str, rng: random.Random) -> str:
    words = text.split()
    droppable = [i for i, w in enumerate(words) if w.lower().strip("?,.!") in _STOP]
    if not droppable or len(words) < 4:
        return text
    gone = set(rng.sample(droppable, min(len(droppable), rng.choice((1, 2)))))
    return " ".join(w for i, w in enumerate(words) if i not in gone)


def _casual(text: str, rng: random.Random) -> str:
    return re.sub(r"[^\w\s'-]", "", text).lower().strip()


def _reorder(text: str, rng: random.Random) -> str:
    parts = [p.strip() for p in re.split(r"[,;.!?]\s+|\s+but\s+|\s+and\s+", text) if p.strip()]
    if len(parts) < 2:
        return text
    rng.shuffle(parts)
    return ", ".join(parts)


def _synonym(text: str, rng: random.Random) -> str:
    lowered = text.lower()
    options = [
        (word, group)
        for group in SYNONYMS
        for word in group
        if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", lowered)
    ]
    if not options:
        return text
    word, group = rng.choice(options)
    other = rng.choice([w for w in group if w != word])
    return re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", other, lowered, count=1)


TRANSFORMS: dict[str, Callable[[str, random.Random], str]] = {
    "typo": _typo,
    "dropped words": _drop,
    "casual": _casual,
    "reordered": _reorder,
    "synonym": _synonym,
}


def reword(text: str, n: int, seed: int) -> list[str]:
    """Up to `n` distinct variants of `text` (each one to three transforms), none equal to it."""
    rng = random.Random(seed)
    names = list(TRANSFORMS)
    out: list[str] = []
    for _ in range(n * 3):
        variant = text
        for name in rng.sample(names, rng.choice((1, 2, 3))):
            variant = TRANSFORMS[name](variant, rng)
        variant = " ".join(variant.split())
        if variant and variant.lower() != text.lower() and variant not in out:
            out.append(variant)
        if len(out) == n:
            break
    return out
