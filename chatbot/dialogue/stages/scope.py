"""Scope: on an index without answer classes (an older or very small one), a hand-off
when the request is out of scope or its past answers' topic is one that hands off.

Where its job ends: with answer classes, the understand stage decides instead."""

from __future__ import annotations

from chatbot.dialogue.records import Reason, Reply, with_detail
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.stages.retrieve import Retrieved
from chatbot.dialogue.turn import Turn


class Scope:
    def __init__(self, settings: DialogueSettings, say: Say):
        self.settings = settings
        self.say = say

    def run(self, turn: Turn, retrieved: Retrieved) -> Reply | None:
        s, hits = self.settings, retrieved.hits
        # A conversation's topic label says what it was opened for: it speaks for the reply to
        # its first message, not for a later in-scope question ("...then how do I track my
        # order?" in a conversation opened about stock tips).
        top = retrieved.infos.get(hits[0].pair_id) if hits else None
        top_topic = top.labels.get("topic") if top is not None and top.opening else None
        out_of_scope = retrieved.result.out_of_scope
        if s.handoff_on_out_of_scope and (
            out_of_scope or not hits or top_topic in s.out_of_scope_topics
        ):
            why = (
                str(Reason.OUT_OF_SCOPE)
                if out_of_scope or not hits
                else with_detail(Reason.OUT_OF_SCOPE, f"past answers are labelled {top_topic}")
            )
            reply = self.say.handoff(turn, why)
            reply.citations = [h.citation for h in hits[:1]]
            return reply
        if top_topic in s.handoff_topics:
            reply = self.say.handoff(turn, f"{Reason.TOPIC_HANDOFF} ({top_topic})")
            reply.citations = [hits[0].citation]
            return reply
        return None
