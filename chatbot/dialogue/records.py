"""The records that flow through the dialogue stages and come back to the caller:
critiques, candidates, refinement rounds, and the reply with its decision. Structure
only; building them is the stages' job, storing them `chatbot.dialogue.repository`'s."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# answer: sent as is; answer_flagged: sent and queued for agent review; held: not sent,
# waiting for an agent; handoff: a human takes over; silent: a human is in charge.
DECISIONS = ("answer", "answer_flagged", "held", "handoff", "silent")
REVIEW_STATES = ("pending", "approved", "edited", "rejected")


@dataclass
class Critique:
    """What the scorer thinks of one candidate: a 0-1 score, its parts, and the problems
    in words a model can act on when revising."""

    score: float
    components: dict[str, float]
    issues: list[str] = field(default_factory=list)


@dataclass
class Candidate:
    text: str
    origin: str  # "draft", "revision", "retrieved" or "cache"
    critique: Critique
    round: int | None = None
    pair_id: int | None = None
    cut_off: bool = False  # the generator stopped at its token limit

    @property
    def score(self) -> float:
        return self.critique.score


@dataclass
class RoundTrace:
    """One step of refinement: the text the model wrote and how it scored."""

    round: int
    kind: str  # "draft" or "revision"
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
    what the customer sees: the reply, the hand-off notice, the hold notice, or nothing."""

    conversation_id: int
    message_id: int
    decision: str
    reason: str
    text: str
    shown_text: str
    sent: bool
    confidence: float | None
    smoothed_confidence: float | None
    citations: list[dict[str, Any]] = field(default_factory=list)
    trace: list[RoundTrace] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    review_status: str | None = None
    id: int | None = None
    reply_message_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PATHS = ("cache", "retrieved", "generated", "refined", "handoff", "held", "silent")


def reply_path(decision: str, reason: str, trace: list[Any] | None) -> str:
    """Which way a reply was made (the work done for it, whichever candidate won), from
    what is stored of it: an agent-approved answer (cache), past answers without
    generating (retrieved: confident enough, or the model failed), one draft (generated)
    or revisions of it (refined); or no answer (handoff, held, silent)."""
    if decision in ("handoff", "held", "silent"):
        return decision
    if reason == "cache_hit":
        return "cache"
    rounds = len(trace or [])
    return "refined" if rounds > 1 else "generated" if rounds == 1 else "retrieved"
