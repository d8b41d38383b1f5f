"""Compose: the candidates that compete for one message. The best retrieved past answers
scored by the judge (`chatbot.dialogue.judge`); unless one is confident enough to be sent
at once (`retrieved_first_threshold`), drafts from the reply model, its words streamed to
the customer as they come, refined over a few retrieve-and-refine rounds (the best reply
so far goes back in as a past answer) while the score rises (`chatbot.dialogue.refine`);
then all of them screened (`chatbot.dialogue.stages.check.Screen`). Every wait for the
reply model is bounded (`model_wait_s`, `first_token_s`, `next_token_s`,
`generation_s`): a model that is still loading, raises or stalls leaves its error, and
the retrieved answers compete alone.

Where its job ends: choosing the winner and deciding are the decide stage's."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatbot.dialogue.critique import Evidence, Scorer, evidence_from_hits
from chatbot.dialogue.degenerate import degenerate_reason
from chatbot.dialogue.judge import FitScorerSource, Judge, serving_ranker
from chatbot.dialogue.model_wait import BoundedModelSource, ReplyModelSource
from chatbot.dialogue.records import (
    BlockedCandidate,
    Candidate,
    Critique,
    Origin,
    RoundTrace,
)
from chatbot.dialogue.refine import refine
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.stages.check import PromptGuard, Screen
from chatbot.dialogue.turn import DialogueEvent, EventKind, Turn
from chatbot.dialogue.writer import ReplyWriter
from chatbot.errors import ChatbotError
from chatbot.retrieval.types import Hit
from chatbot.text.prompt import PromptFormat

if TYPE_CHECKING:
    from torch.nn import Module

    from chatbot.dialogue.model_wait import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class Drafted:
    """What the reply model gave for one message: its best draft (or none), the
    refinement trace, the model version, or the error it failed with."""

    candidates: list[Candidate] = field(default_factory=list)
    trace: list[RoundTrace] = field(default_factory=list)
    version: str | None = None
    error: str | None = None


@dataclass
class Composed:
    """The candidates allowed to compete, those blocked (with why), what the reply model
    did, and the settings to decide with (their thresholds on the judge's scale)."""

    candidates: list[Candidate]
    blocked: list[BlockedCandidate]
    drafted: Drafted
    settings: DialogueSettings


class ReplyModels:
    """The reply model to generate with: the source's, or its int8 copy when configured
    (made once per version and kept). ModelNotReady after `model_wait_s` seconds."""

    def __init__(self, settings: DialogueSettings, source: ReplyModelSource | None):
        self.settings = settings
        self.source = source
        self._bounded = BoundedModelSource(source) if source is not None else None
        self._quantized: dict[str, Module] = {}
        self._lock = threading.Lock()

    def get(self) -> LoadedModel:
        if self._bounded is None:
            raise RuntimeError("no reply model source configured")
        model, tokenizer, version = self._bounded.get(self.settings.model_wait_s)
        if self.settings.quantize != "int8":
            return model, tokenizer, version
        with self._lock:
            if version not in self._quantized:
                from chatbot.dialogue.compress import quantize_int8

                self._quantized = {version: quantize_int8(model)}
            return self._quantized[version], tokenizer, f"{version}+int8"


class Compose:
    def __init__(
        self,
        settings: DialogueSettings,
        prompt: PromptFormat,
        models: ReplyModels,
        ranker: FitScorerSource | None,
        guard: PromptGuard,
        screen: Screen,
    ):
        self.settings = settings
        self.prompt = prompt
        self.models = models
        self.ranker = ranker
        self.guard = guard
        self.screen = screen
        self.scorer = Scorer(settings)

    def run(self, turn: Turn, hits: list[Hit]) -> Composed:
        """Every candidate for the message: retrieved, drafted, screened."""
        evidence = evidence_from_hits(turn.message, turn.history_text, hits, turn.earlier_customer)
        # One judge for every candidate: the learned ranker when one is serving, else the critique.
        judge = Judge(self.scorer, evidence, serving_ranker(self.ranker), turn.context())
        retrieved = self.score_retrieved(turn, hits, judge)
        s = judge.thresholds(self.settings)  # on the ranker's scale while it scores
        drafted = self._draft_if_needed(turn, s, retrieved, evidence, judge)
        screened = self.screen.run(turn, drafted.candidates + retrieved)
        return Composed(screened.kept, screened.blocked, drafted, s)

    def retrieved_only(
        self, turn: Turn, question: str, history: list[str], hits: list[Hit]
    ) -> tuple[list[Candidate], list[BlockedCandidate]]:
        """Past answers to `question` (one class's, for a part of a message or a picked
        topic) as candidates, scored by the judge with `question` alone as the context,
        and screened like every other. Never drafted."""
        evidence = evidence_from_hits(question, history, hits, turn.earlier_customer)
        judge = Judge(
            self.scorer,
            evidence,
            serving_ranker(self.ranker),
            [{"role": "customer", "text": question}],
        )
        screened = self.screen.run(turn, self.score_retrieved(turn, hits, judge))
        return screened.kept, screened.blocked

    def score_retrieved(self, turn: Turn, hits: list[Hit], judge: Judge) -> list[Candidate]:
        """The best retrieved past answers as candidates, scored by the judge."""
        with turn.clock.stage("fuse"):
            fused = hits[: self.settings.fuse_retrieved]
            critiques = judge.score_many([h.reply_text for h in fused], [h.pair_id for h in fused])
            return [
                Candidate(hit.reply_text, Origin.RETRIEVED, critique, pair_id=hit.pair_id)
                for hit, critique in zip(fused, critiques, strict=True)
            ]

    def _draft_if_needed(
        self,
        turn: Turn,
        s: DialogueSettings,
        retrieved: list[Candidate],
        evidence: Evidence,
        judge: Judge,
    ) -> Drafted:
        """Drafts from the reply model, unless a retrieved answer is confident enough to be
        sent at once (or there is no model); a failed model leaves the error instead."""
        sendable = [c for c in retrieved if not self.guard.reveals(c.text)]
        best_retrieved = max((c.score for c in sendable), default=None)
        drafted = Drafted()
        if not (
            s.generate
            and self.models.source is not None
            and (best_retrieved is None or best_retrieved < s.retrieved_first_threshold)
        ):
            return drafted
        turn.emit(DialogueEvent(EventKind.STAGE, "drafting"))
        try:
            with turn.clock.stage("load_model"):
                model, tokenizer, drafted.version = self.models.get()
            writer = ReplyWriter(model, tokenizer, s, self.prompt)
            drafted.candidates, drafted.trace = self._generate(writer, evidence, turn, judge)
        except Exception as exc:
            log.warning(
                "reply generation failed for conversation %s: %s",
                turn.conversation_id,
                exc,
                exc_info=not isinstance(exc, ChatbotError),
            )
            drafted.error = f"{type(exc).__name__}: {exc}"
        return drafted

    def _generate(
        self, writer: ReplyWriter, evidence: Evidence, turn: Turn, judge: Judge
    ) -> tuple[list[Candidate], list[RoundTrace]]:
        s, clock, history = self.settings, turn.clock, turn.history_chat

        def draft() -> str:
            with clock.stage("draft"):
                pieces: list[str] = []
                # The draft's words reach the customer as the model writes them, each
                # checked on the way (`LiveText`); a refined or retrieved winner replaces them.
                for piece in writer.stream(writer.draft_messages(evidence, history)):
                    if not pieces:
                        clock.timings["first_draft_token"] = round(clock.total(), 5)
                    pieces.append(piece)
                    turn.live.add(piece)
                return "".join(pieces)

        def revise(earlier: Sequence[Candidate]) -> str:
            # Retrieve and refine: the best reply so far goes back in as the first past answer.
            best = max(earlier, key=lambda c: c.score)
            with clock.stage("refine"):
                return writer.write(writer.revision_messages(evidence, history, best))

        def on_round(trace: RoundTrace) -> None:
            turn.emit(
                DialogueEvent(
                    EventKind.ROUND, f"round {trace.round}: score {trace.score:.2f}", data=trace
                )
            )

        def score(text: str) -> Critique:
            with clock.stage("critique"):
                return judge.score_many([text])[0]

        result = refine(
            draft,
            revise,
            score,
            max_rounds=s.max_rounds,
            min_improvement=s.min_improvement,
            on_round=on_round,
            degenerate=lambda text: degenerate_reason(
                text,
                customer_message=evidence.query,
                prompt_texts=[self.prompt.system_prompt],
                cut_off=writer.cut_off(text),
            ),
        )
        for candidate in result.candidates:
            candidate.cut_off = writer.cut_off(candidate.text)
        # Only the best draft competes: the others lost to it already.
        return [result.best], result.trace
