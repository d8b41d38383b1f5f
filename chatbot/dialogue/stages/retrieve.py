"""Retrieve: past answers for the message and its history (or for an earlier question
alone), with what the store knows of their pairs, in slotted form filled for this
customer (foreign ones withheld, `chatbot.dialogue.own_answers`).

Where its job ends: searching is the `Retriever`'s; judging the hits is later stages'."""

from __future__ import annotations

from dataclasses import dataclass

from chatbot.dialogue import repository as repo
from chatbot.dialogue.own_answers import OwnAnswers
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.turn import DialogueEvent, EventKind, Turn
from chatbot.retrieval.types import Hit, Retriever, SearchResult
from chatbot.store.database import Database


@dataclass
class Retrieved:
    """What the search found (`result`, as the retriever gave it), the hits this customer
    may get (`hits`, filled for them), and the store's facts about their pairs (`infos`)."""

    result: SearchResult
    hits: list[Hit]
    infos: dict[int, repo.PairInfo]


class Retrieve:
    def __init__(
        self, settings: DialogueSettings, retriever: Retriever, database: Database, own: OwnAnswers
    ):
        self.settings = settings
        self.retriever = retriever
        self.database = database
        self.own = own

    def run(self, turn: Turn, question: str | None = None) -> Retrieved:
        k = self.settings.retrieve_k
        turn.emit(DialogueEvent(EventKind.STAGE, "retrieving"))
        with turn.clock.stage("retrieve"):
            result = (
                self.retriever.search(turn.message, history=turn.history_text, k=k)
                if question is None
                else self.retriever.search(question, k=k)
            )
        hits = list(result.hits)
        turn.trusted.extend(h.reply_text for h in hits)
        infos = self.pair_infos(turn, hits)
        return Retrieved(
            result, self.own.hits(hits, infos, turn.facts, turn.withheld, turn.case), infos
        )

    def pair_infos(self, turn: Turn, hits: list[Hit]) -> dict[int, repo.PairInfo]:
        with turn.clock.stage("pairs"):
            with self.database.session() as session:
                return repo.pair_infos(session=session, pair_ids=[h.pair_id for h in hits])
