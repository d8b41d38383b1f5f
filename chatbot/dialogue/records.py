"""The records that flow through the dialogue stages and come back to the caller:
critiques, candidates, refinement rounds, and the reply with its decision, and the
closed sets of words they use (decisions, reasons, origins, paths). Structure and its
JSON form only; building them is the stages' job, storing them
`chatbot.dialogue.repository`'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from chatbot.retrieval.types import Citation

JsonDict = dict[str, Any]


class Decision(StrEnum):
    """What became of one customer message. The values are what the store keeps."""

    ANSWER = "answer"  # sent as is
    ANSWER_FLAGGED = "answer_flagged"  # sent and queued for agent review
    HELD = "held"  # not sent, waiting for an agent
    HANDOFF = "handoff"  # a human takes over
    SILENT = "silent"  # a human is in charge
    ACT = "act"  # a conversation act (hello, thanks, bye, "are you a bot?") answered; not a resolution
    DECLINE = "decline"  # out of the company's domain: politely declined, a person offered
    CLARIFY = "clarify"  # a question back: which of `options` is meant, or the order number


DECISIONS = tuple(Decision)
ANSWERED = (Decision.ANSWER, Decision.ANSWER_FLAGGED)
# Replies of the assistant's own that the customer was sent in answer to their message (not a
# hand-off or hold notice, not silence): what an evaluation scores.
SENT_REPLIES = (*ANSWERED, Decision.ACT, Decision.DECLINE, Decision.CLARIFY)


class Reason(StrEnum):
    """Why a reply was decided as it was: the first word(s) of `Reply.reason`, which some
    reasons follow with a detail (`with_detail`)."""

    HUMAN_IN_CHARGE = "human_in_charge"
    CUSTOMER_ASKED = "customer_asked_for_human"
    LOOP = "loop"  # "loop: asked 3 times"
    CACHE_HIT = "cache_hit"
    OUT_OF_SCOPE = "out_of_scope"  # alone, or "out_of_scope: past answers are labelled X"
    TOPIC_HANDOFF = "past answers hand off"  # "past answers hand off (topic)"
    NO_CANDIDATE = "no_candidate"
    ASSISTANT_FAILED = "assistant_failed"
    LOW_CONFIDENCE = "low_confidence"
    NEEDS_REVIEW = "needs_review"  # "needs_review: retrieved won"
    CONFIDENT = "confident"  # "confident: draft won"
    NO_HITS = "no_hits"  # evaluation's retrieval variants: nothing was found
    ACT = "act"  # "act: greeting"
    OUT_OF_DOMAIN = "out_of_domain"  # declined: "out_of_domain: not the company's kind of question"
    UNSURE = "unsure"  # a clarifying question: "unsure: 2 topics"
    NEEDS_CASE = (
        "needs_case"  # the answer depends on the customer's own order: "needs_case: order_number"
    )
    CLARIFICATION_FAILED = (
        "clarification_failed"  # hand-off after a clarification that did not help
    )


def numbered_choices(options: Sequence[str]) -> str:
    """A clarifying question's choices as they end its text: "\n1. Refund status\n2. ..."
    ("" without choices); the widget shows them as buttons instead."""
    return "".join(f"\n{i}. {option}" for i, option in enumerate(options, 1))


def with_detail(reason: Reason, detail: str) -> str:
    """A reason with its detail, as stored: "loop: asked 3 times"."""
    return f"{reason}: {detail}"


class Origin(StrEnum):
    """Where a candidate reply came from."""

    DRAFT = "draft"  # the reply model's first draft
    REVISION = "revision"  # a refinement of the best so far
    RETRIEVED = "retrieved"  # a past agent answer found by retrieval
    CACHE = "cache"  # an agent-approved answer for this very question


class RoundKind(StrEnum):
    DRAFT = "draft"
    REVISION = "revision"


class ReplyPath(StrEnum):
    """Which way a reply was made (`reply_path`)."""

    CACHE = "cache"
    RETRIEVED = "retrieved"
    GENERATED = "generated"
    REFINED = "refined"
    HANDOFF = "handoff"
    HELD = "held"
    SILENT = "silent"
    ACT = "act"
    DECLINE = "decline"
    CLARIFY = "clarify"


PATHS = tuple(ReplyPath)


class Blocked(StrEnum):
    """Why a candidate was not allowed to compete: the first words of its `blocked` text."""

    PROMPT = "repeats the system prompt"
    DEGENERATE = "degenerate"  # "degenerate: <why>"
    SPECIFICS = "another customer's specifics"  # "another customer's specifics: <why>"


@dataclass
class Critique:
    """What the scorer thinks of one candidate: a 0-1 score, its parts, and the problems
    in words a model can act on when revising."""

    score: float
    components: dict[str, float]
    issues: list[str] = field(default_factory=list)


@dataclass
class Candidate:
    """A candidate while it competes (mutable: its slots are filled before choosing)."""

    text: str
    origin: Origin
    critique: Critique
    round: int | None = None
    pair_id: int | None = None
    cut_off: bool = False  # the generator stopped at its token limit

    @property
    def score(self) -> float:
        return self.critique.score


# What a reply keeps of its candidates (`Reply.candidates`): each kind below, with
# `to_json` giving exactly the object the store's `candidates` column has always held.


@dataclass(frozen=True)
class CachedCandidate:
    """The agent-approved answer that was sent (the ranker's opinion only for the record)."""

    pair_id: int
    score: float
    text: str
    components: dict[str, float] | None = None

    origin = Origin.CACHE

    def to_json(self) -> JsonDict:
        out: JsonDict = {
            "origin": str(self.origin),
            "pair_id": self.pair_id,
            "score": self.score,
            "text": self.text,
        }
        if self.components is not None:
            out["components"] = dict(self.components)
        return out


@dataclass(frozen=True)
class ScoredCandidate:
    """A candidate that competed, with its score and the score's parts."""

    origin: Origin
    round: int | None
    pair_id: int | None
    score: float
    text: str
    components: dict[str, float]

    def to_json(self) -> JsonDict:
        return {
            "origin": str(self.origin),
            "round": self.round,
            "pair_id": self.pair_id,
            "score": self.score,
            "text": self.text,
            "components": dict(self.components),
        }


@dataclass(frozen=True)
class BlockedCandidate:
    """A candidate withheld before choosing, and why (`blocked`: `why` and its detail).
    One that repeats the system prompt keeps no text; one withheld for another
    customer's specifics keeps its score."""

    origin: Origin
    round: int | None
    pair_id: int | None
    why: Blocked
    detail: str | None = None
    text: str | None = None
    score: float | None = None

    @property
    def blocked(self) -> str:
        return str(self.why) if self.detail is None else f"{self.why}: {self.detail}"

    def to_json(self) -> JsonDict:
        out: JsonDict = {"origin": str(self.origin), "round": self.round, "pair_id": self.pair_id}
        if self.why is Blocked.SPECIFICS:
            out["score"] = self.score
        if self.why is not Blocked.PROMPT:
            out["text"] = self.text
        out["blocked"] = self.blocked
        return out


@dataclass(frozen=True)
class GenerationFailure:
    """The reply model failed (its error, "Type: message"); the retrieved answers competed alone."""

    error: str

    def to_json(self) -> JsonDict:
        return {"error": self.error}


KeptCandidate = CachedCandidate | ScoredCandidate | BlockedCandidate | GenerationFailure


@dataclass
class RoundTrace:
    """One step of refinement: the text the model wrote and how it scored."""

    round: int
    kind: RoundKind
    text: str
    score: float
    components: dict[str, float]
    issues: list[str]
    seconds: float
    kept: bool = False  # the best so far after this round


@dataclass
class Reply:
    """The outcome of one customer message, as returned and stored.

    `text` is the chosen reply (the draft an agent reviews when held); `shown_text` is
    what the customer sees: the reply, the hand-off notice, the hold notice, or nothing.
    `reason` is a `Reason`, possibly with a detail (`with_detail`)."""

    conversation_id: int
    message_id: int
    decision: Decision
    reason: str
    text: str
    shown_text: str
    sent: bool
    confidence: float | None
    smoothed_confidence: float | None
    citations: list[Citation] = field(default_factory=list)
    trace: list[RoundTrace] = field(default_factory=list)
    candidates: list[KeptCandidate] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    review_status: str | None = None
    # A clarifying question's choices (readable topic labels), shown as buttons in the widget
    # and a numbered list in `chatbot chat`; the customer answers with a label or its number.
    options: list[str] = field(default_factory=list)
    id: int | None = None
    reply_message_id: int | None = None

    def to_dict(self) -> JsonDict:
        """The reply as JSON-ready data: what is stored and what the CLI prints."""
        return {
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "decision": str(self.decision),
            "reason": str(self.reason),
            "text": self.text,
            "shown_text": self.shown_text,
            "sent": self.sent,
            "confidence": self.confidence,
            "smoothed_confidence": self.smoothed_confidence,
            "citations": [asdict(c) for c in self.citations],
            "trace": [{**asdict(t), "kind": str(t.kind)} for t in self.trace],
            "candidates": [c.to_json() for c in self.candidates],
            "timings": dict(self.timings),
            "model_version": self.model_version,
            "review_status": self.review_status,
            "options": list(self.options),
            "id": self.id,
            "reply_message_id": self.reply_message_id,
        }


def reply_path(decision: str, reason: str, trace: Sequence[object] | None) -> ReplyPath:
    """Which way a reply was made (the work done for it, whichever candidate won), from
    what is stored of it: an agent-approved answer (cache), past answers without
    generating (retrieved: confident enough, or the model failed), one draft (generated)
    or revisions of it (refined); or no answer (handoff, held, silent)."""
    if decision in (
        Decision.HANDOFF,
        Decision.HELD,
        Decision.SILENT,
        Decision.ACT,
        Decision.DECLINE,
        Decision.CLARIFY,
    ):
        return ReplyPath(decision)
    if reason == Reason.CACHE_HIT:
        return ReplyPath.CACHE
    rounds = len(trace or [])
    return (
        ReplyPath.REFINED
        if rounds > 1
        else ReplyPath.GENERATED
        if rounds == 1
        else ReplyPath.RETRIEVED
    )
