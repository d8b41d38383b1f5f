"""Acts: a greeting, thanks, goodbye, "are you a bot?" or yes / no, when it is the whole
message, answered in the company's words (`chatbot.dialogue.acts`, mined at index time);
"yes" to the offer of a person, or to an action only an agent can carry out, hands off.

Where its job ends: "yes" to a clarifying question is the follow-up stage's."""

from __future__ import annotations

from chatbot.dialogue.acts import Act, default_replies, main_act, recognise
from chatbot.dialogue.case import promises_action
from chatbot.dialogue.records import ANSWERED, Decision, Reason, Reply, with_detail
from chatbot.dialogue.say import DEFAULT_HELPS_WITH, Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.turn import Turn


class Acts:
    def __init__(self, settings: DialogueSettings, say: Say):
        self.settings = settings
        self.say = say

    def run(self, turn: Turn) -> Reply | None:
        if not self.settings.acts:
            return None
        act = main_act(recognise(turn.message))
        if act is None:
            return None
        last = turn.last
        if act is Act.YES and last is not None and last.decision == Decision.DECLINE:
            return self.say.handoff(turn, Reason.CUSTOMER_ASKED)
        if (
            act is Act.YES
            and last is not None
            and last.decision in ANSWERED
            and promises_action(last.shown_text)
        ):
            # The answer offered what only an agent can do ("Shall I cancel it?"): a person does it.
            number = f" for {turn.case.number}" if turn.case is not None else ""
            return self.say.handoff(
                turn, with_detail(Reason.CUSTOMER_ASKED, f"accepted the offered action{number}")
            )
        replies = {str(k): v for k, v in default_replies(None, DEFAULT_HELPS_WITH).items()}
        replies.update(self.say.voice().get("acts") or {})
        text = replies.get(str(act)) or replies[str(Act.GREETING)]
        return self.say.said(turn, Decision.ACT, with_detail(Reason.ACT, str(act)), text)
