"""Gate: no answer at all when a human is in charge (silent), and a hand-off at once
when the customer asks for a person or keeps asking the same question.

Where its job ends: every other reason to hand off is decided by later stages."""

from __future__ import annotations

from chatbot.dialogue.acts import Act, main_act, recognise
from chatbot.dialogue.handoff import asks_for_human, repeats
from chatbot.dialogue.records import Decision, Reason, Reply, with_detail
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.turn import Turn


class Gate:
    def __init__(self, settings: DialogueSettings, say: Say):
        self.settings = settings
        self.say = say

    def run(self, turn: Turn) -> Reply | None:
        s = self.settings
        if turn.state == "handed_off":
            return Reply(
                conversation_id=turn.conversation_id,
                message_id=turn.message_id,
                decision=Decision.SILENT,
                reason=Reason.HUMAN_IN_CHARGE,
                text="",
                shown_text="",
                sent=False,
                confidence=None,
                smoothed_confidence=turn.previous_smoothed,
            )
        # "Am I talking to a person or a bot?" asks what the assistant is, not for a person.
        if (
            asks_for_human(turn.message)
            and main_act(recognise(turn.message)) is not Act.BOT_QUESTION
        ):
            return self.say.handoff(turn, Reason.CUSTOMER_ASKED)
        asked = repeats(turn.message, turn.earlier_customer, similarity=s.loop_similarity)
        if asked >= s.loop_repeats:
            return self.say.handoff(turn, with_detail(Reason.LOOP, f"asked {asked} times"))
        return None
