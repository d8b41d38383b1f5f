"""The decision for one reply once its confidence is known: smooth the confidence
across the conversation's turns (an exponential moving average), then answer, send and
flag for review, hold for review, or hand off. Hand-offs that do not depend on
confidence (the customer asked, a loop, out of scope) are decided by the manager before
this is reached."""

from __future__ import annotations

from chatbot.dialogue.records import Decision, Reason
from chatbot.dialogue.settings import DialogueSettings


def smooth(previous: float | None, current: float, weight: float) -> float:
    """EMA: `weight` of the newest turn; the first turn stands alone."""
    if previous is None:
        return current
    return weight * current + (1.0 - weight) * previous


def decide(
    settings: DialogueSettings, *, confidence: float, smoothed: float
) -> tuple[Decision, Reason]:
    """(decision, reason). Hand-off looks at the smoothed confidence, so one odd turn
    does not flip it on and off; review also looks at this turn's own confidence, so a
    weak reply in a good conversation is still checked by an agent."""
    if smoothed < settings.handoff_threshold:
        return Decision.HANDOFF, Reason.LOW_CONFIDENCE
    if min(confidence, smoothed) < settings.answer_threshold:
        flagged = settings.review_mode == "flag"
        return (Decision.ANSWER_FLAGGED if flagged else Decision.HELD), Reason.NEEDS_REVIEW
    return Decision.ANSWER, Reason.CONFIDENT
