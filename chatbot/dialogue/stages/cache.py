"""Cache: an answer an agent approved for this very question is sent, before any guess
about scope. First looked up in the store (`chatbot.dialogue.answer_cache`, so an
approval counts at once), then among the retrieved past answers (approved pairs older
than the catalogue keeps are still found through the index). Only standalone questions
are cached: a follow-up ("and how long does that take?") depends on the turns before it.

Where its job ends: approving answers is `chatbot.support.review`'s."""

from __future__ import annotations

from collections.abc import Sequence

from chatbot.dialogue import repository as repo
from chatbot.dialogue.answer_cache import AnswerCatalogue
from chatbot.dialogue.judge import FitScorerSource, serving_ranker
from chatbot.dialogue.own_answers import OwnAnswers, snippet
from chatbot.dialogue.policy import smooth
from chatbot.dialogue.records import CachedCandidate, Decision, Reason, Reply
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.stages.check import PromptGuard
from chatbot.dialogue.stages.retrieve import Retrieved
from chatbot.dialogue.turn import Turn
from chatbot.retrieval.types import Citation, Hit
from chatbot.store.database import Database
from chatbot.text.measures import question_similarity


class Cache:
    def __init__(
        self,
        settings: DialogueSettings,
        database: Database,
        own: OwnAnswers,
        prompt: PromptGuard,
        ranker: FitScorerSource | None,
    ):
        self.settings = settings
        self.database = database
        self.own = own
        self.prompt = prompt
        self.ranker = ranker
        self.answers = AnswerCatalogue(settings.cache_origins)

    def before_retrieval(self, turn: Turn) -> Reply | None:
        """The store's approved answer for this question, filled for this customer."""
        if not self.settings.cache_enabled or turn.history_text:
            return None
        with turn.clock.stage("cache"):
            cached = self.own.hit(self._stored(turn.message), turn.facts, turn.withheld)
        if cached is None or self.prompt.reveals(cached[0].reply_text):
            return None
        turn.trusted.append(cached[0].reply_text)
        return self._reply(turn, *cached)

    def among_hits(self, turn: Turn, retrieved: Retrieved) -> Reply | None:
        """The closest approved answer among the hits whose question matches the message."""
        if not self.settings.cache_enabled:
            return None
        with turn.clock.stage("cache"):
            cached = self._among(turn.message, turn.history_text, retrieved.hits, retrieved.infos)
        if cached is None or self.prompt.reveals(cached[0].reply_text):
            return None
        return self._reply(turn, *cached)

    def _reply(self, turn: Turn, hit: Hit, similarity: float) -> Reply:
        """The approved answer is sent; the ranker, when one serves, still scores it, for
        the record (and the agents' review of the cache)."""
        confidence = round(similarity, 4)
        smoothed = round(smooth(turn.previous_smoothed, confidence, self.settings.smoothing), 4)
        components = None
        ranker = serving_ranker(self.ranker)
        if ranker is not None:
            fit = ranker.score([{"role": "customer", "text": turn.message}], [hit.reply_text])[0]
            components = {"question_similarity": confidence, "ranker": round(float(fit), 4)}
        return Reply(
            conversation_id=turn.conversation_id,
            message_id=turn.message_id,
            decision=Decision.ANSWER,
            reason=Reason.CACHE_HIT,
            text=hit.reply_text,
            shown_text=hit.reply_text,
            sent=True,
            confidence=confidence,
            smoothed_confidence=smoothed,
            citations=[hit.citation],
            candidates=[CachedCandidate(hit.pair_id, confidence, hit.reply_text, components)],
        )

    def _stored(self, message: str) -> tuple[Hit, float] | None:
        """The approved pair in the store whose question matches the message closely
        enough, as a hit that cites it."""
        with self.database.session() as session:
            match = self.answers.lookup(session, message, self.settings.cache_threshold)
        if match is None:
            return None
        pair = match.pair
        citation = Citation(
            pair.id,
            pair.conversation_id,
            pair.turn_index,
            pair.source,
            round(match.similarity, 4),
            snippet(pair.answer),
        )
        hit = Hit(
            pair_id=pair.id,
            score=match.similarity,
            context_text=pair.question,
            reply_text=pair.answer,
            citation=citation,
            scores={"question_similarity": match.similarity},
        )
        return hit, match.similarity

    def _among(
        self,
        message: str,
        history: Sequence[str],
        hits: Sequence[Hit],
        infos: dict[int, repo.PairInfo],
    ) -> tuple[Hit, float] | None:
        if history:
            return None
        best = None
        for hit in hits:
            info = infos.get(hit.pair_id)
            if info is None or info.origin not in self.settings.cache_origins or not info.question:
                continue
            similarity = question_similarity(message, info.question)
            if similarity >= self.settings.cache_threshold and (
                best is None or similarity > best[1]
            ):
                best = (hit, similarity)
        return best
