"""Parts: a message that asks two or three questions (`question_parts`) gets an answer
to each, joined, when every one is understood with confidence and they are about
different answer classes; otherwise the message is answered as one question.

Where its job ends: a single question is the understand stage's."""

from __future__ import annotations

from chatbot.dialogue.own_answers import OwnAnswers
from chatbot.dialogue.records import (
    BlockedCandidate,
    Candidate,
    Decision,
    Reason,
    Reply,
    with_detail,
)
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.stages.choose import Choose
from chatbot.dialogue.stages.compose import Compose
from chatbot.dialogue.stages.retrieve import Retrieve
from chatbot.dialogue.turn import Turn
from chatbot.dialogue.understanding import question_parts, read_hits, without_salutation
from chatbot.retrieval.answer_classes import AnswerClasses, ClassScore
from chatbot.retrieval.types import Hit, Retriever

MAX_PARTS = 3  # questions in one message answered one by one


class Parts:
    def __init__(
        self,
        settings: DialogueSettings,
        retriever: Retriever,
        retrieve: Retrieve,
        own: OwnAnswers,
        compose: Compose,
        choose: Choose,
    ):
        self.settings = settings
        self.retriever = retriever
        self.retrieve = retrieve
        self.own = own
        self.compose = compose
        self.choose = choose

    def run(self, turn: Turn, classes: AnswerClasses) -> Reply | None:
        s = self.settings
        parts = question_parts(turn.message)
        if len(parts) < 2 or len(parts) > MAX_PARTS:
            return None
        answers: list[tuple[ClassScore, Candidate, list[Hit]]] = []
        with turn.clock.stage("parts"):
            for n, part in enumerate(parts):
                # a later part may refer to an earlier one ("...and how much is it?")
                history = [*turn.history_text, *parts[:n]]
                result = self.retriever.search(part, history=history, k=s.retrieve_k)
                top = read_hits(classes, result.hits).top
                if top is None or top.probability < s.fit_answer_at:
                    return None
                kind = classes.classes[top.index]
                if kind.handoff or kind.out_of_scope or kind.act:
                    return None
                if any(a[0].index == top.index for a in answers):
                    continue
                hits = list(result.hits)
                infos = self.retrieve.pair_infos(turn, hits)
                withheld: list[BlockedCandidate] = []
                own = self.own.hits(hits, infos, turn.facts, withheld, turn.case)
                mine = [h for h in own if classes.pair_class.get(h.pair_id) == top.index]
                if not mine:
                    return None
                candidates, _ = self.compose.retrieved_only(turn, part, turn.history_text, mine)
                if not candidates:
                    return None
                answers.append((top, self.choose.run(turn, candidates), mine))
        if len(answers) < 2:
            return None
        text = "\n\n".join(
            winner.text if i == 0 else without_salutation(winner.text)
            for i, (_, winner, _) in enumerate(answers)
        )
        turn.trusted.extend(h.reply_text for _, _, hits in answers for h in hits)
        return Reply(
            conversation_id=turn.conversation_id,
            message_id=turn.message_id,
            decision=Decision.ANSWER,
            reason=with_detail(Reason.CONFIDENT, f"{len(answers)} questions answered"),
            text=text,
            shown_text=text,
            sent=True,
            confidence=round(min(top.probability for top, _, _ in answers), 4),
            smoothed_confidence=turn.previous_smoothed,
            citations=[
                c for _, winner, hits in answers for c in self.choose.citations(winner, hits)
            ],
        )
