"""What the dialogue manager makes of a message before it chooses an answer: which of
the company's answer classes fits (`chatbot.retrieval.answer_classes`, fitted by `chatbot
index`), and so whether to answer, ask which topic is meant, decline or hand off; and,
for a message that follows a clarifying question, which of its choices the customer took.

The verdict (`Verdict`) is computed from the reading's calibrated probabilities and the
settings' bars (`dialogue.fit_answer_at`, `dialogue.fit_clarify_at`):
- the message is nearer one of the off-topic questions the gate was calibrated with than
  any of the company's own, by `dialogue.decline_nearer_offtopic_by`: **decline**,
  whatever class the hits lean to ("I want to open a savings account" is no shop topic,
  however near "Delete account" its words fall);
- the best class is at or above the answer bar: **answer** from that class's candidates
  (a class whose agents declined: **decline**; one whose agents handed over: **hand off**);
- else, when its best class is one the agents declined (at least at the clarification
  bar): **decline**;
- else, with no class worth offering: **decline** when the gate's domain check says the
  message is not the company's kind, **hand off** when the gate finds nothing in the
  history close enough (the history has no answer for it);
- else the classes at or above the clarification bar that may be offered (real topics,
  distinct labels, at most three) become the choices of a **clarifying question**, unless
  the last reply was a clarifying question already (a second one would go round in
  circles: **hand off**, "clarification_failed"); with none, **hand off** (low confidence).
  Every clarifying question also offers `dialogue.clarify_other` ("Something else"): the
  customer's way to say that none of the topics is theirs (`picked_option` reads it).

Where its job ends: it reads the retriever's hits and the last reply; retrieving,
screening candidates, wording and storing the reply are the manager's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from chatbot.dialogue.settings import DialogueSettings
from chatbot.retrieval.answer_classes import AnswerClasses, ClassScore, Reading
from chatbot.retrieval.types import Hit

MAX_OPTIONS = 3
_NUMBER = re.compile(r"^\s*(?:option\s*|number\s*|#\s*)?([1-9])\s*[.)]?\s*$", re.IGNORECASE)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3}
# A short message saying that none of the offered topics is the customer's.
_NONE_OF_THEM = re.compile(
    r"^(?:none|neither|other|something else|none of (?:them|these|those|"
    r"the above)|neither of (?:them|these|those)|it s something else|its something else)"
    r"(?: (?:thanks|thank you|sorry|please))?$"
)


class Verdict(StrEnum):
    ANSWER = "answer"
    CLARIFY = "clarify"
    DECLINE = "decline"
    HANDOFF = "handoff"


@dataclass(frozen=True)
class Understood:
    """The verdict for one message, the class it is about (answer), the choices to offer
    (clarify), and the reading it came from."""

    verdict: Verdict
    reading: Reading
    chosen: ClassScore | None = None
    options: list[str] = field(default_factory=list)
    why: str = ""


def fitted_classes(retriever: object) -> AnswerClasses | None:
    """The answer classes and fit model of the retriever's index version, if it has them."""
    classes = getattr(retriever, "answer_classes", None)
    return classes if isinstance(classes, AnswerClasses) else None


def deciding_classes(retriever: object, settings: DialogueSettings) -> AnswerClasses | None:
    """The current index version's answer classes and fit model, where they may decide:
    None when none were fitted, or when too few of the questions held out when fitting
    reach the answer bar (`fit_min_coverage`): the history's answers cannot be told
    apart well enough, and the judge's thresholds decide as before."""
    classes = fitted_classes(retriever)
    if classes is None:
        return None
    coverage = classes.coverage(settings.fit_answer_at)
    if coverage is not None and coverage[0] < settings.fit_min_coverage:
        return None
    return classes


def read_hits(classes: AnswerClasses, hits: Sequence[Hit]) -> Reading:
    """The classes of the retrieved pairs, scored (hits as the retriever ranked them,
    before any is withheld: the reading is about the question, not this customer)."""
    return classes.read(
        [h.pair_id for h in hits],
        [float(h.scores.get("dense", h.score)) for h in hits],
        [h.scores.get("answer") for h in hits],
    )


def understand(
    classes: AnswerClasses,
    reading: Reading,
    settings: DialogueSettings,
    *,
    outside_domain: bool,
    no_close_match: bool,
    after_clarification: bool,
    offtopic_margin: float | None = None,
) -> Understood:
    """The verdict for one message (see the module docstring)."""
    top = reading.top
    if offtopic_margin is not None and offtopic_margin >= settings.decline_nearer_offtopic_by:
        return Understood(Verdict.DECLINE, reading, top, why="nearer another domain's questions")
    if top is not None and top.probability >= settings.fit_answer_at:
        kind = classes.classes[top.index]
        if kind.out_of_scope:
            return Understood(Verdict.DECLINE, reading, top, why="its past answers decline")
        if kind.handoff:
            return Understood(
                Verdict.HANDOFF, reading, top, why=f"past answers hand off ({kind.label})"
            )
        return Understood(Verdict.ANSWER, reading, top)
    options = offerable(classes, reading, settings)
    declined_class = top is not None and classes.classes[top.index].out_of_scope
    if declined_class and top is not None and top.probability >= settings.fit_clarify_at:
        return Understood(Verdict.DECLINE, reading, top, why="its past answers decline")
    if outside_domain and not options:
        return Understood(Verdict.DECLINE, reading, top, why="not the company's kind of question")
    if no_close_match and not options:
        return Understood(Verdict.HANDOFF, reading, top, why="no_close_match")
    if options and settings.clarify:
        if after_clarification:
            return Understood(Verdict.HANDOFF, reading, top, why="clarification_failed")
        return Understood(Verdict.CLARIFY, reading, top, options=options)
    return Understood(Verdict.HANDOFF, reading, top, why="low_confidence")


def offerable(classes: AnswerClasses, reading: Reading, settings: DialogueSettings) -> list[str]:
    """Labels of the classes worth offering as choices: likely enough, a real topic,
    each label once, at most MAX_OPTIONS."""
    labels: list[str] = []
    for score in reading.scores:
        kind = classes.classes[score.index]
        if (
            score.probability >= settings.fit_clarify_at
            and kind.offerable
            and kind.label not in labels
        ):
            labels.append(kind.label)
    return labels[:MAX_OPTIONS]


def picked_option(message: str, options: Sequence[str], other: str | None = None) -> str | None:
    """The choice a message takes from a clarifying question's `options`: its number
    ("2", "the second"), its label (any case, punctuation ignored), or a message that
    contains exactly one label; `other` (the "Something else" choice, one of the options)
    also for a short "none of these" or "neither" (a bare "no" is the act's: `chatbot.
    dialogue.acts`); None when it takes none (a new question)."""
    if not options:
        return None
    if other in options and _NONE_OF_THEM.match(_normal(message)):
        return other
    match = _NUMBER.match(message)
    if match and 1 <= int(match.group(1)) <= len(options):
        return options[int(match.group(1)) - 1]
    words = _normal(message)
    for word, number in _ORDINALS.items():
        if re.search(rf"\b{word}\b", words) and number <= len(options) and len(words.split()) <= 4:
            return options[number - 1]
    normal = {_normal(o): o for o in options}
    if words in normal:
        return normal[words]
    inside = [o for n, o in normal.items() if n and re.search(rf"\b{re.escape(n)}\b", words)]
    return inside[0] if len(inside) == 1 else None


_QUESTION_START = (
    r"(?:how|what|what's|whats|when|where|where's|which|who|why|can|could|do|does|did|is|"
    r"are|will|would|should|may|am|have|has)"
)
_SPLIT = re.compile(
    rf"(?<=\?)\s+(?:and\s+|also\s+|plus\s+)?|[,;]?\s+(?:and|also|plus|&)\s+(?={_QUESTION_START}\b)",
    re.IGNORECASE,
)
_SALUTATION = re.compile(
    r"^(?:hi|hello|hey|dear)(?:\s+there|\s+\{customer_name\}|\s+[A-Z][a-z]+)?\s*[!,.]\s*",
    re.IGNORECASE,
)


def question_parts(message: str) -> list[str]:
    """The questions of a message that asks more than one ("How long does delivery take
    and how much is it?"): split after a question mark, or at "and" / "also" before a
    question word; parts of fewer than three words join the one before. One part: one question."""
    parts: list[str] = []
    for piece in _SPLIT.split(message.strip()):
        piece = re.sub(r"\s+(?:and|also|plus|&)$", "", piece.strip(" ,;"), flags=re.IGNORECASE)
        if not piece:
            continue
        if parts and len(piece.split()) < 3:
            parts[-1] = f"{parts[-1]} {piece}"
        else:
            parts.append(piece)
    return parts if len(parts) > 1 else [message]


def without_salutation(text: str) -> str:
    """An answer joined after another one loses its own "Hi there!"."""
    return _SALUTATION.sub("", text, count=1)


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
