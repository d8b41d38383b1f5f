"""Contact: a question about how to reach the company ("what's your e-mail address?",
"when are you open?", "where's your help centre?") answered with its contact details as
its agents give them (`chatbot.dialogue.contact`, mined at index time).

Where its job ends: a message that also asks something else, or a company whose history
gives no such details, goes on to the later stages."""

from __future__ import annotations

from chatbot.dialogue.contact import asks_for_contact, contact_text
from chatbot.dialogue.records import Decision, Reason, Reply, with_detail
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.turn import Turn


class Contact:
    def __init__(self, settings: DialogueSettings, say: Say):
        self.settings = settings
        self.say = say

    def run(self, turn: Turn) -> Reply | None:
        if not self.settings.contact_details or turn.question is not None:
            return None
        kinds = asks_for_contact(turn.message)
        card = self.say.voice().get("contact")
        if not kinds or not isinstance(card, dict):
            return None
        text = contact_text({str(k): str(v) for k, v in card.items()}, kinds)
        if text is None:
            return None
        return self.say.said(
            turn,
            Decision.ANSWER,
            with_detail(Reason.CONFIDENT, "the company's contact details"),
            text,
            confidence=1.0,
        )
