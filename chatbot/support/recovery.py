"""Recovery after a crash: no customer message is left without an answer.

The dialogue manager commits a customer's message before it writes the reply, so a
process that dies in between (kill -9, power loss, out of memory) leaves a message with
no reply record, in a conversation that still looks open and is in nobody's queue. The
sweep finds every such message older than a bound (longer than any reply takes) and
settles it, each in a transaction of its own that first takes the conversation's write
lock and then looks again, so several workers sweeping at once, or a reply finished in
the meantime, never settle one message twice:

- the newest customer message of an open conversation: the conversation goes to the
  agents' queue with the hand-off reason "interrupted", and the customer reads a notice
  saying so (a bot message, shown by the widget like any hand-off notice, with its banner);
- an older one (the customer wrote again afterwards) or one in a conversation a person
  already has: recorded as settled in silence (reason "interrupted"), since the later
  message, or the person, carries the conversation on.

`RecoverySweeper` runs the sweep at start and then every few seconds in a daemon thread
of the serving process. Answering messages is the dialogue manager's job; showing the
notice is the widget's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from chatbot.dialogue import repository as dialogue_repo
from chatbot.errors import ChatbotError
from chatbot.store.conversations import lock_conversation
from chatbot.store.database import Database
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation, Message, utcnow
from chatbot.web_settings import DEFAULT_INTERRUPTED_MESSAGE

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"


@dataclass
class SweepResult:
    """What one sweep did: conversations handed to the agents, messages settled in
    silence, and messages left because another worker or a reply got there first."""

    handed_off: int = 0
    settled: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.handed_off + self.settled


def stranded_messages(session: Session, before: datetime) -> list[tuple[int, int]]:
    """(message id, conversation id) of every customer message of a live conversation
    that is not closed, written before `before`, with no reply record; oldest first."""
    return [
        (row.id, row.conversation_id)
        for row in session.execute(
            select(Message.id, Message.conversation_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.channel == "live",
                Conversation.state != "closed",
                Message.role == "customer",
                Message.created_at < before,
                ~exists().where(DialogueReply.message_id == Message.id),
            )
            .order_by(Message.id)
        )
    ]


def _settle(session: Session, message_id: int, conversation_id: int, notice: str) -> str | None:
    """Settle one stranded message (see the module docstring): "handed_off", "settled",
    or None when there was nothing left to do."""
    _channel, state = lock_conversation(session=session, conversation_id=conversation_id)
    if state == "closed" or session.scalar(
        select(exists().where(DialogueReply.message_id == message_id))
    ):
        return None
    message = session.get(Message, message_id)
    if message is None:  # deleted meanwhile (retention)
        return None
    later = aliased(Message)
    superseded = session.scalar(
        select(
            exists().where(
                later.conversation_id == conversation_id,
                later.role == "customer",
                later.turn_index > message.turn_index,
            )
        )
    )
    record = {
        "conversation_id": conversation_id,
        "message_id": message_id,
        "reason": INTERRUPTED,
        "text": "",
        "confidence": None,
        "smoothed_confidence": None,
    }
    if superseded or state == "handed_off":
        dialogue_repo.save_reply(
            session=session,
            record={**record, "decision": "silent", "shown_text": "", "sent": False},
            bot_text=None,
        )
        return "settled"
    dialogue_repo.hand_off(session=session, conversation_id=conversation_id, reason=INTERRUPTED)
    dialogue_repo.save_reply(
        session=session,
        record={**record, "decision": "handoff", "shown_text": notice, "sent": True},
        bot_text=notice,
    )
    return "handed_off"


def sweep(
    database: Database,
    *,
    older_than_seconds: float,
    notice: str = DEFAULT_INTERRUPTED_MESSAGE,
    now: datetime | None = None,
) -> SweepResult:
    """Settle every customer message left without a reply for longer than
    `older_than_seconds` (see the module docstring)."""
    before = (now or utcnow()) - timedelta(seconds=older_than_seconds)
    with database.session() as session:
        found = stranded_messages(session, before)
    result = SweepResult()
    for message_id, conversation_id in found:
        try:
            with database.session() as session:
                outcome = _settle(session, message_id, conversation_id, notice)
        except IntegrityError:
            outcome = None  # the reply (or another worker's sweep) was stored first
        if outcome == "handed_off":
            result.handed_off += 1
            log.warning(
                "conversation %s: message %s had no reply after %.0f s (interrupted); "
                "handed to the agents",
                conversation_id,
                message_id,
                older_than_seconds,
            )
        elif outcome == "settled":
            result.settled += 1
        else:
            result.skipped += 1
    return result


class RecoverySweeper:
    """The sweep at start and every `interval_seconds` after, in a daemon thread;
    `stop()` ends it. A failing sweep (the database away) is logged and tried again."""

    def __init__(
        self,
        database: Database,
        *,
        older_than_seconds: float,
        interval_seconds: float,
        notice: str = DEFAULT_INTERRUPTED_MESSAGE,
    ) -> None:
        self.database = database
        self.older_than_seconds = older_than_seconds
        self.interval_seconds = interval_seconds
        self.notice = notice
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recovery-sweep", daemon=True)

    def start(self) -> RecoverySweeper:
        self._thread.start()
        return self

    def run_once(self) -> SweepResult | None:
        try:
            return sweep(
                self.database, older_than_seconds=self.older_than_seconds, notice=self.notice
            )
        except (ChatbotError, OSError) as exc:
            log.warning(
                "the recovery sweep failed (tried again in %.0f s): %s", self.interval_seconds, exc
            )
        except Exception:
            log.exception("the recovery sweep failed")
        return None

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.run_once()
            self._stopped.wait(self.interval_seconds)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
