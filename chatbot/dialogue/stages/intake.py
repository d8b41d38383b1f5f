"""Intake: the admitted message stored (committed before anything else runs, so a crash
never loses it; only live, open conversations take new messages) and what answering it
needs read from its conversation: earlier turns, the last reply, the facts slots are
filled from, and the order it names as the order system knows it (`Case`).

Where its job ends: deciding anything about the message is the later stages'."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chatbot.dialogue import repository as repo
from chatbot.dialogue.case import Case
from chatbot.dialogue.own_answers import OwnAnswers
from chatbot.dialogue.turn import Clock, Listener, LiveText, Turn
from chatbot.errors import ChatbotError
from chatbot.orders.connector import OrderConnector, normalise_order_number
from chatbot.store.conversations import add_message, start_conversation
from chatbot.store.database import Database

log = logging.getLogger(__name__)

# Earlier turns read per message: retrieval keeps its own window of them (retrieval.history_turns)
# and the prompt its own (prompt.history_turns); this only bounds what is read from the store.
HISTORY_READ = 20


class CaseLookup:
    """The order a conversation names (the latest number the customer gave) and what
    the company's order system says of it (`chatbot.orders`; None: it connected none)."""

    def __init__(self, orders: OrderConnector | None, number_pattern: str):
        self.orders = orders
        self.number_pattern = number_pattern

    def run(self, message: str, earlier_customer: Sequence[str]) -> tuple[Case | None, bool]:
        """The case, and whether this message gave its number."""
        number = normalise_order_number(message, self.number_pattern)
        given_now = number is not None
        for text in reversed(earlier_customer):
            if number is not None:
                break
            number = normalise_order_number(text, self.number_pattern)
        if number is None:
            return None, False
        if self.orders is None:
            return Case(number, None, looked_up=False), given_now
        try:
            return Case(number, self.orders.lookup(number), looked_up=True), given_now
        except ChatbotError as exc:
            log.warning("the order system could not be asked about %s: %s", number, exc)
            return Case(number, None, looked_up=False), given_now


class Intake:
    def __init__(self, database: Database, own: OwnAnswers, cases: CaseLookup):
        self.database = database
        self.own = own
        self.cases = cases

    def run(
        self,
        message: str,
        conversation_id: int | None,
        source: str,
        clock: Clock,
        emit: Listener,
    ) -> Turn:
        with clock.stage("store"):
            with self.database.session() as session:
                if conversation_id is None:
                    conversation_id = start_conversation(session=session, source=source).id
                # Refused (InputError) for imported or closed conversations.
                stored = add_message(
                    session=session, conversation_id=conversation_id, role="customer", text=message
                )
                conversation = repo.get_conversation(
                    session=session, conversation_id=conversation_id
                )
                session.refresh(conversation)  # as it is now that this turn holds its lock
                state = conversation.state
                turns = repo.earlier_turns(
                    session=session,
                    conversation_id=conversation_id,
                    before_turn=stored.turn_index,
                    limit=HISTORY_READ,
                )
                earlier_customer = repo.earlier_customer_texts(
                    session=session, conversation_id=conversation_id, before_turn=stored.turn_index
                )
                previous_smoothed = repo.last_smoothed_confidence(
                    session=session, conversation_id=conversation_id
                )
                last = repo.last_reply(
                    session=session, conversation_id=conversation_id, before_turn=stored.turn_index
                )
        log.debug("conversation %s, message %s: %r", conversation_id, stored.id, message)
        history_text = [t.text for t in turns]
        # What this conversation holds: slots are filled from it; nothing foreign to it is sent.
        specifics = self.own.specifics
        facts = specifics.facts([*earlier_customer, message], history_text) if specifics else None
        case, given_now = self.cases.run(message, earlier_customer)

        def showable(text: str) -> str | None:
            return self.own.showable_for(text, facts)

        return Turn(
            message=message,
            case=case,
            case_given_now=given_now,
            conversation_id=conversation_id,
            message_id=stored.id,
            state=state,
            history=[(t.role, t.text) for t in turns],
            earlier_customer=list(earlier_customer),
            previous_smoothed=previous_smoothed,
            facts=facts,
            last=last,
            clock=clock,
            emit=emit,
            live=LiveText(emit, showable),
        )
