"""Understand: where the index has answer classes, the question–answer fit model's
verdict on the message (`chatbot.dialogue.understanding.understand`): answer from the
question's class, ask a clarifying question (its topics and "Something else"), decline,
or hand off. An answer whose class
is sure but whose every past answer was about another customer's own case asks for the
order number instead (or hands off where that is not asked for).

Where its job ends: which answer of the class is sent is the compose and decide stages'."""

from __future__ import annotations

from dataclasses import dataclass

from chatbot.dialogue import repository as repo
from chatbot.dialogue.case import not_found_message
from chatbot.dialogue.records import Decision, Reason, Reply, with_detail
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.stages.retrieve import Retrieved
from chatbot.dialogue.turn import Turn
from chatbot.dialogue.understanding import Understood, Verdict, read_hits, understand
from chatbot.retrieval.answer_classes import AnswerClasses
from chatbot.retrieval.types import Hit

# What `chatbot.dialogue.understanding` says of a hand-off, as the reply's reason.
_HANDOFF_REASONS = {
    "clarification_failed": str(Reason.CLARIFICATION_FAILED),
    "low_confidence": str(Reason.LOW_CONFIDENCE),
    "no_close_match": with_detail(Reason.OUT_OF_SCOPE, "no close match in the history"),
}


@dataclass
class Understanding:
    """The verdict, and the hits to answer from: the chosen class's when it is an answer."""

    understood: Understood
    hits: list[Hit]


class Understand:
    def __init__(self, settings: DialogueSettings, say: Say):
        self.settings = settings
        self.say = say

    def run(
        self, turn: Turn, classes: AnswerClasses, retrieved: Retrieved
    ) -> Understanding | Reply:
        """The verdict, or the reply that settles the message (a clarifying question, a
        decline, a hand-off, the request for an order number)."""
        understood, reply = self._verdict(turn, classes, retrieved)
        if reply is not None:
            return reply
        hits = retrieved.hits
        if understood.verdict is Verdict.ANSWER and understood.chosen is not None:
            chosen = understood.chosen.index
            hits = [h for h in hits if classes.pair_class.get(h.pair_id) == chosen]
            if not hits:
                return self._no_usable_answer(turn, classes, understood)
        return Understanding(understood, hits)

    def _verdict(
        self, turn: Turn, classes: AnswerClasses, retrieved: Retrieved
    ) -> tuple[Understood, Reply | None]:
        s, result = self.settings, retrieved.result
        with turn.clock.stage("understand"):
            reading = read_hits(classes, result.hits)
            # a clarifying question about the topic, not the request for an order number
            after_clarification = (
                turn.last is not None
                and turn.last.decision == Decision.CLARIFY
                and turn.last.reason.startswith(str(Reason.UNSURE))
            )
            understood = understand(
                classes,
                reading,
                s,
                outside_domain=result.outside_domain,
                no_close_match=result.out_of_scope or not result.hits,
                after_clarification=after_clarification,
                offtopic_margin=result.offtopic_margin,
            )
        top = understood.reading.top
        confidence = round(top.probability, 4) if top is not None else None
        citations = [h.citation for h in result.hits[:1]]
        if understood.verdict is Verdict.DECLINE and s.decline_out_of_domain:
            reply = self.say.decline(turn, understood.why)
        elif understood.verdict is Verdict.DECLINE or understood.verdict is Verdict.HANDOFF:
            # A decline, when declining is switched off, is the out-of-scope hand-off of old;
            # a hand-off's why is its reason ("past answers hand off (Complaint)") or names one.
            reason = (
                str(Reason.OUT_OF_SCOPE)
                if understood.verdict is Verdict.DECLINE
                else _HANDOFF_REASONS.get(understood.why, understood.why)
            )
            reply = self.say.handoff(turn, reason)
            reply.citations = citations
        elif understood.verdict is Verdict.CLARIFY:
            reply = self.say.said(
                turn,
                Decision.CLARIFY,
                with_detail(Reason.UNSURE, f"{len(understood.options)} topics"),
                s.clarify_one_message.format(topic=understood.options[0])
                if len(understood.options) == 1
                else s.clarify_message,
                [*understood.options, s.clarify_other],
                confidence,
            )
        else:
            return understood, None
        reply.confidence = confidence
        return understood, reply

    def _no_usable_answer(
        self, turn: Turn, classes: AnswerClasses, understood: Understood
    ) -> Reply:
        """The question's class is sure, but every answer of it was about another
        customer's own case: ask for the order number (the case this answer needs), or
        hand off when that is not asked for."""
        assert understood.chosen is not None
        kind = classes.classes[understood.chosen.index]
        probability = round(understood.chosen.probability, 4)
        has_case = turn.facts is not None and any(
            k in turn.facts.values for k in repo.CASE_IDENTIFIERS
        )
        case = turn.case
        if case is not None and case.looked_up and case.order is None:
            reply = self.say.said(
                turn,
                Decision.CLARIFY,
                with_detail(Reason.NEEDS_CASE, "order number not found"),
                not_found_message(case.number),
                confidence=probability,
            )
        elif kind.case_bound and not has_case and self.settings.ask_for_order_number:
            reply = self.say.said(
                turn,
                Decision.CLARIFY,
                with_detail(Reason.NEEDS_CASE, "order_number"),
                self.settings.order_number_message,
                confidence=probability,
            )
        else:
            reply = self.say.handoff(
                turn, with_detail(Reason.NEEDS_CASE, "an agent must look at the case")
            )
            reply.confidence = probability
        reply.candidates = list(turn.withheld)  # the agents see why each answer was withheld
        return reply
