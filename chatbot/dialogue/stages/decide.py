"""Decide: the winning candidate, its confidence smoothed across turns, and the decision
(`chatbot.dialogue.policy`): sent, sent and flagged, held for an agent, or handed off;
a hand-off when nothing may be sent. Where the question was understood
(`chatbot.dialogue.understanding`), the confidence is the fit model's calibrated
probability that the answer's class is right, and it was at or above `fit_answer_at`:
the class's nearest answer is sent. An answer to the message that gave the order number
starts with what the order system says of that order.

Where its job ends: the final checks on the text are the check stage's."""

from __future__ import annotations

from chatbot.dialogue.case import status_line
from chatbot.dialogue.policy import decide, smooth
from chatbot.dialogue.records import (
    ANSWERED,
    Decision,
    GenerationFailure,
    KeptCandidate,
    Reason,
    Reply,
    with_detail,
)
from chatbot.dialogue.say import Say
from chatbot.dialogue.stages.choose import Choose, nearest, scored
from chatbot.dialogue.stages.compose import Composed
from chatbot.dialogue.turn import Turn
from chatbot.dialogue.understanding import Understood
from chatbot.retrieval.types import Hit
from chatbot.store.enums import ReviewState


def with_status_line(reply: Reply, turn: Turn) -> Reply:
    """An answer to the message that gave the order number starts with what the order
    system says of that order."""
    if (
        reply.decision in ANSWERED
        and turn.case is not None
        and turn.case_given_now
        and turn.case.order is not None
    ):
        line = status_line(turn.case.order)
        reply.text = f"{line}\n\n{reply.text}"
        reply.shown_text = f"{line}\n\n{reply.shown_text}"
    return reply


class Decide:
    def __init__(self, say: Say, choose: Choose):
        self.say = say
        self.choose = choose

    def run(
        self,
        turn: Turn,
        composed: Composed,
        hits: list[Hit],
        understood: Understood | None = None,
    ) -> Reply:
        s, candidates, drafted = composed.settings, composed.candidates, composed.drafted
        failure: list[KeptCandidate] = (
            [GenerationFailure(drafted.error)] if drafted.error is not None else []
        )
        if not candidates:
            reply = self.say.handoff(
                turn, Reason.ASSISTANT_FAILED if drafted.error else Reason.NO_CANDIDATE
            )
            reply.model_version = drafted.version
            reply.trace = drafted.trace
            reply.candidates = [*failure, *composed.blocked]
            return reply
        chosen = understood.chosen if understood is not None else None
        if chosen is not None and s.within_class == "nearest":
            winner = nearest(candidates, hits)
        else:
            winner = self.choose.run(turn, candidates)
        confidence = round(winner.score, 4)
        if chosen is not None:
            confidence = round(chosen.probability, 4)
        smoothed = round(smooth(turn.previous_smoothed, confidence, s.smoothing), 4)
        decision, reason = decide(s, confidence=confidence, smoothed=smoothed)
        if chosen is not None:
            decision, reason = Decision.ANSWER, Reason.CONFIDENT
        if decision == Decision.HANDOFF:
            reply = self.say.handoff(turn, reason)
            reply.text, reply.confidence, reply.smoothed_confidence = (
                winner.text,
                confidence,
                smoothed,
            )
        else:
            reply = Reply(
                conversation_id=turn.conversation_id,
                message_id=turn.message_id,
                decision=decision,
                reason=with_detail(reason, f"{winner.origin} won"),
                text=winner.text,
                shown_text=winner.text if decision != Decision.HELD else s.hold_message,
                sent=decision != Decision.HELD,
                confidence=confidence,
                smoothed_confidence=smoothed,
                review_status=None if decision == Decision.ANSWER else ReviewState.PENDING,
            )
        reply = with_status_line(reply, turn)
        reply.citations = self.choose.citations(winner, hits)
        reply.trace = drafted.trace
        reply.model_version = drafted.version
        reply.candidates = [*scored(candidates), *failure, *composed.blocked]
        return reply
