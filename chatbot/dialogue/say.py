"""The replies that are not an answer from the history: the hand-off notice, and what the
assistant says in the company's words (a conversation act's reply, a decline, a
clarifying question), with their slots filled for this customer.

Wording only: when to say them is the stages' job."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from chatbot.dialogue.own_answers import OwnAnswers
from chatbot.dialogue.records import Decision, Reason, Reply, numbered_choices, with_detail
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.turn import Turn
from chatbot.dialogue.understanding import fitted_classes

# What the assistant says when an index has no answer classes (an older or very small one).
DEFAULT_HELPS_WITH = "questions about our service"
DEFAULT_DECLINE = "Sorry, that's not something I can help with."


class Say:
    def __init__(self, settings: DialogueSettings, own: OwnAnswers, retriever: object):
        self.settings = settings
        self.own = own
        self.retriever = retriever

    def voice(self) -> dict[str, Any]:
        """The company's own words mined at index time (acts' replies, its decline)."""
        classes = fitted_classes(self.retriever)
        return classes.voice if classes is not None else {}

    def handoff(self, turn: Turn, reason: str) -> Reply:
        """A person takes over: the hand-off notice is shown."""
        return Reply(
            conversation_id=turn.conversation_id,
            message_id=turn.message_id,
            decision=Decision.HANDOFF,
            reason=reason,
            text="",
            shown_text=self.settings.handoff_message,
            sent=True,
            confidence=None,
            smoothed_confidence=turn.previous_smoothed,
        )

    def said(
        self,
        turn: Turn,
        decision: Decision,
        reason: str,
        text: str,
        options: Sequence[str] = (),
        confidence: float | None = None,
    ) -> Reply:
        """A reply that is not an answer from the history (an act, a decline, a clarifying
        question): the company's words with their slots filled for this customer."""
        shown = self.own.filled(text, turn.facts) + numbered_choices(options)
        turn.trusted.append(shown)
        return Reply(
            conversation_id=turn.conversation_id,
            message_id=turn.message_id,
            decision=decision,
            reason=reason,
            text=shown,
            shown_text=shown,
            sent=True,
            confidence=confidence,
            smoothed_confidence=turn.previous_smoothed,
            options=list(options),
        )

    def decline(self, turn: Turn, why: str) -> Reply:
        """Out of the company's domain: its own polite decline, with the offer of a person
        (the conversation enters the agents' queue only if the customer takes it)."""
        text = str(self.voice().get("decline") or DEFAULT_DECLINE)
        if not re.search(r"\b(person|colleague|agent|human|team member)\b", text, re.IGNORECASE):
            text = f"{text} {self.settings.person_offer}"
        return self.said(turn, Decision.DECLINE, with_detail(Reason.OUT_OF_DOMAIN, why), text)
