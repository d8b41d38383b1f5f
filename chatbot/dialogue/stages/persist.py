"""Persist: the reply record stored (and, for a hand-off, the conversation put in the
agents' queue: reason, time, nobody assigned yet) in one transaction, with the time per
stage; then the streamed text settled to the final one and the stream told it is done.

Where its job ends: every decision about the reply was made before it."""

from __future__ import annotations

from chatbot.dialogue import repository as repo
from chatbot.dialogue.records import Decision, Reply
from chatbot.dialogue.turn import DialogueEvent, EventKind, Turn
from chatbot.store.database import Database


class Persist:
    def __init__(self, database: Database):
        self.database = database

    def run(self, turn: Turn, reply: Reply) -> Reply:
        clock = turn.clock
        with clock.stage("persist"):
            record = reply.to_dict()
            del record["id"], record["reply_message_id"]
            with self.database.session() as session:
                if reply.decision == Decision.HANDOFF:
                    repo.hand_off(
                        session=session, conversation_id=reply.conversation_id, reason=reply.reason
                    )
                row = repo.save_reply(
                    session=session, record=record, bot_text=reply.shown_text or None
                )
                reply.id, reply.reply_message_id = row.id, row.reply_message_id
                # Stored with every stage but the final commit.
                row.timings = reply.timings = dict(clock.timings, total=clock.total())
        turn.live.settle(reply.shown_text)
        reply.timings = dict(clock.timings, total=clock.total())
        turn.emit(DialogueEvent(EventKind.STAGE, "done"))
        return reply
