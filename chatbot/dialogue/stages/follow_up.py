"""Follow-up: the customer's answer to the assistant's own question. The order number it
asked for: the question asked before is answered for that order (or the customer is told
the number was not found, or, with no order system to ask, an agent takes over with
it). A topic it offered (a number, a label, "the second", "yes" to a single one): that
topic is answered for the question asked before the clarification; "Something else" (or
"none of these"): a person takes over.

Where its job ends: any other message goes on to the acts stage."""

from __future__ import annotations

from chatbot.dialogue import repository as repo
from chatbot.dialogue.acts import Act, main_act, recognise
from chatbot.dialogue.case import not_found_message
from chatbot.dialogue.own_answers import OwnAnswers, case_allows_text
from chatbot.dialogue.records import Decision, Reason, Reply, with_detail
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.stages.choose import Choose, scored
from chatbot.dialogue.stages.compose import Compose
from chatbot.dialogue.stages.decide import with_status_line
from chatbot.dialogue.stages.retrieve import Retrieve
from chatbot.dialogue.turn import Turn
from chatbot.dialogue.understanding import deciding_classes, picked_option, read_hits
from chatbot.retrieval.types import Retriever
from chatbot.store.database import Database

# The reason's detail when the order number was asked for the topic the customer picked.
AFTER_A_CHOICE = "order_number, for the topic picked"


class FollowUp:
    def __init__(
        self,
        settings: DialogueSettings,
        database: Database,
        retriever: Retriever,
        retrieve: Retrieve,
        own: OwnAnswers,
        say: Say,
        compose: Compose,
        choose: Choose,
    ):
        self.settings = settings
        self.database = database
        self.retriever = retriever
        self.retrieve = retrieve
        self.own = own
        self.say = say
        self.compose = compose
        self.choose = choose

    def run(self, turn: Turn) -> Reply | None:
        """The reply that answers the follow-up, or None (then `turn.question` may name
        the earlier question the later stages answer)."""
        reply = self._case_given(turn)
        if reply is not None:
            return reply
        choice = self._choice(turn)
        if choice is None:
            return None
        if choice == self.settings.clarify_other:
            # None of the topics is the customer's: the history holds no answer it could
            # find, and a person takes over with the question.
            return self.say.handoff(
                turn, with_detail(Reason.CLARIFICATION_FAILED, "none of the topics offered")
            )
        return self._answer_choice(turn, choice)

    def _case_given(self, turn: Turn) -> Reply | None:
        last = turn.last
        if (
            last is None
            or last.decision != Decision.CLARIFY
            or not last.reason.startswith(str(Reason.NEEDS_CASE))
            or turn.case is None
            or not turn.case_given_now
        ):
            return None
        if turn.case.order is None:
            if turn.case.looked_up:
                return self.say.said(
                    turn,
                    Decision.CLARIFY,
                    with_detail(Reason.NEEDS_CASE, "order number not found"),
                    not_found_message(turn.case.number),
                )
            return self.say.handoff(turn, with_detail(Reason.NEEDS_CASE, turn.case.number))
        if AFTER_A_CHOICE in last.reason:
            # The order number was asked for the topic the customer picked ("2"): that
            # topic is answered, for the question asked before the pick.
            with self.database.session() as session:
                offered = repo.last_reply(
                    session=session,
                    conversation_id=turn.conversation_id,
                    before_turn=last.turn_index,
                )
            label = picked_option(last.question, offered.options) if offered else None
            if offered is not None and label is not None and label != self.settings.clarify_other:
                return self._answer_choice(turn, label, offered.question)
        turn.question = last.question
        return None

    def _choice(self, turn: Turn) -> str | None:
        """The choice this message takes from the clarifying question before it, if any
        ("yes" to a question about one topic takes that topic)."""
        last = turn.last
        if last is None or last.decision != Decision.CLARIFY or not last.options:
            return None
        other = self.settings.clarify_other
        topics = [o for o in last.options if o != other]
        if len(topics) == 1 and main_act(recognise(turn.message)) is Act.YES:
            return topics[0]
        return picked_option(turn.message, last.options, other)

    def _answer_choice(self, turn: Turn, label: str, question: str | None = None) -> Reply:
        """The customer picked a topic: the best answer of that topic to the question
        they asked before the clarification (`question`: the last message's by default)."""
        classes = deciding_classes(self.retriever, self.settings)
        assert turn.last is not None
        question = turn.last.question if question is None else question
        retrieved = self.retrieve.run(turn, question)
        hits = retrieved.hits
        wanted = (
            {i for i, c in enumerate(classes.classes) if c.label == label}
            if classes is not None
            else set()
        )
        mine = [
            h for h in hits if classes is not None and classes.pair_class.get(h.pair_id) in wanted
        ]
        probability = None
        if classes is not None:
            reading = read_hits(classes, retrieved.result.hits)
            found = [sc.probability for sc in reading.scores if sc.index in wanted]
            probability = round(max(found), 4) if found else None
        if not mine and classes is not None and wanted:
            largest = max(wanted, key=lambda i: classes.classes[i].size)
            kind = classes.classes[largest]
            if kind.case_bound and turn.case is None and self.settings.ask_for_order_number:
                return self.say.said(
                    turn,
                    Decision.CLARIFY,
                    with_detail(Reason.NEEDS_CASE, AFTER_A_CHOICE),
                    self.settings.order_number_message,
                )
            text = self.own.showable_for(kind.answer, turn.facts)
            if text and not case_allows_text(text, turn.case):
                text = None
            if text is None and turn.case is not None:
                return self.say.handoff(turn, with_detail(Reason.NEEDS_CASE, turn.case.number))
            if text:
                return self.say.said(
                    turn,
                    Decision.ANSWER,
                    with_detail(Reason.CONFIDENT, "chosen by the customer"),
                    text,
                    confidence=probability,
                )
        if not mine:
            return self.say.handoff(turn, str(Reason.CLARIFICATION_FAILED))
        candidates, blocked = self.compose.retrieved_only(turn, question, [], mine)
        if not candidates:
            return self.say.handoff(turn, str(Reason.CLARIFICATION_FAILED))
        winner = self.choose.run(turn, candidates)
        reply = with_status_line(
            Reply(
                conversation_id=turn.conversation_id,
                message_id=turn.message_id,
                decision=Decision.ANSWER,
                reason=with_detail(Reason.CONFIDENT, "chosen by the customer"),
                text=winner.text,
                shown_text=winner.text,
                sent=True,
                confidence=probability,
                smoothed_confidence=turn.previous_smoothed,
                citations=self.choose.citations(winner, mine),
            ),
            turn,
        )
        reply.candidates = [*scored(candidates), *blocked]
        return reply
