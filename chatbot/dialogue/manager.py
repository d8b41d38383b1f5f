"""The dialogue manager: one customer message in, one stored `Reply` out, through a
pipeline of small stages (`chatbot.dialogue.stages`), each settling the reply or handing
the message on:

1. **admit**: the message cleaned (control and bidirectional characters), checked (not
   empty or invisible, at most MAX_MESSAGE_CHARS) and redacted (the `ingest` redaction
   settings, the same as imports): from here on only this text exists;
2. **intake**: stored (committed before anything else runs, so a crash never loses it)
   and its conversation read, with the order it names as the order system knows it;
3. **gate**: silent while a human is in charge; a hand-off when the customer asks for a
   person or repeats the same question;
4. **follow-up**: the customer's answer to the assistant's own question (the order
   number it asked for, or the topic it offered);
5. **acts**: a greeting, thanks, goodbye, "are you a bot?" answered in the company's words;
   **contact**: "what's your e-mail address?" answered with the company's contact details;
6. **cache**: an agent-approved answer for this very question (looked up in the store,
   so an approval counts at once);
7. **retrieve**: past answers for the message and its history, filled for this customer;
   the cache again among them;
8. **understand** (where the index has answer classes; else **scope**): the
   question–answer fit model's verdict: answer from the question's class, a clarifying
   question, a decline or a hand-off; **parts** answers two or three questions of one
   message one by one;
9. **compose**: the best past answers scored by the judge (the learned ranker when one
   serves, else the critique); drafts from the reply model (streamed as they come) and
   retrieve-and-refine rounds while the score rises, unless a past answer is confident
   enough to be sent at once; all screened (nothing repeating the system prompt,
   degenerate or holding another customer's specifics);
10. **decide**: the winner (the class's nearest answer, the consensus choice, or the
    judge's best), its confidence smoothed across turns, and the decision;
11. **check**: every text redacted; no slot or redaction placeholder ever sent;
12. **persist**: the reply record (text, citations, confidence, decision and reason,
    refinement trace, candidates, time per stage) stored, a hand-off put in the
    agents' queue.

Every wait for the reply model is bounded: a model that is still loading, raises or
stalls ends in the retrieved answers or a hand-off, never a hung turn. Message text is
logged at DEBUG only.

Where its job ends: it takes a `Retriever` and a reply-model source as given (building
them is `chatbot.retrieval` and `chatbot.models`' job), and it renders nothing: the CLI
and the UI show the `Reply` and the streamed events.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chatbot.dialogue import repository as repo
from chatbot.dialogue.judge import FitScorer, FitScorerSource, ranker_source
from chatbot.dialogue.model_wait import ReplyModelSource
from chatbot.dialogue.own_answers import OwnAnswers
from chatbot.dialogue.records import Reply
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.specifics import SpecificsGuard
from chatbot.dialogue.stages.admit import MAX_MESSAGE_CHARS, Admit
from chatbot.dialogue.stages.cache import Cache
from chatbot.dialogue.stages.check import FinalCheck, PromptGuard, Screen, Showable, live_redactor
from chatbot.dialogue.stages.choose import Choose
from chatbot.dialogue.stages.compose import Compose, ReplyModels
from chatbot.dialogue.stages.contact import Contact
from chatbot.dialogue.stages.conversation_acts import Acts
from chatbot.dialogue.stages.decide import Decide
from chatbot.dialogue.stages.follow_up import FollowUp
from chatbot.dialogue.stages.gate import Gate
from chatbot.dialogue.stages.intake import CaseLookup, Intake
from chatbot.dialogue.stages.parts import Parts
from chatbot.dialogue.stages.persist import Persist
from chatbot.dialogue.stages.retrieve import Retrieve
from chatbot.dialogue.stages.scope import Scope
from chatbot.dialogue.stages.understand import Understand, Understanding
from chatbot.dialogue.turn import Clock, DialogueEvent, EventKind, Listener, Turn, ignore
from chatbot.dialogue.understanding import deciding_classes
from chatbot.ingest.settings import IngestSettings
from chatbot.orders.connector import DEFAULT_NUMBER_PATTERN, OrderConnector
from chatbot.retrieval.types import Retriever
from chatbot.store.database import Database
from chatbot.text.prompt import PromptFormat

if TYPE_CHECKING:
    from chatbot.dialogue.model_wait import LoadedModel

__all__ = [
    "MAX_MESSAGE_CHARS",
    "DialogueEvent",
    "DialogueManager",
    "EventKind",
    "FitScorer",
    "FitScorerSource",
]


class DialogueManager:
    def __init__(
        self,
        settings: DialogueSettings,
        database: Database,
        retriever: Retriever,
        reply_source: ReplyModelSource | None,
        prompt: PromptFormat,
        ingest: IngestSettings | None = None,
        ranker: FitScorer | FitScorerSource | None = None,
        orders: OrderConnector | None = None,
        order_number_pattern: str = DEFAULT_NUMBER_PATTERN,
    ):
        self.settings = settings
        self.database = database
        self.retriever = retriever
        # Serving prompts exactly as training does: the one `prompt` settings section.
        self.prompt = prompt
        # Live messages are redacted like imports (`ingest` settings; default: all kinds).
        self.redactor = live_redactor(ingest)
        # The learned ranker (`chatbot.ranking`): a Ranker, or a source whose get() gives the
        # promoted one (None until one is trained and kept); without it the hand-set critique scores.
        self.ranker_source = ranker_source(ranker)
        self.models = ReplyModels(settings, reply_source)
        guard = PromptGuard(prompt.system_prompt)
        self.guard = guard
        # Fills slots and withholds other customers' specifics (`specifics = None`: no check,
        # for before/after benchmarks).
        own = OwnAnswers(SpecificsGuard(database), Showable(guard, self.redactor))
        self.own = own
        say = Say(settings, own, retriever)
        screen = Screen(guard, own)
        self.choose = Choose(settings, retriever, prompt.evidence_k)
        self.compose = Compose(settings, prompt, self.models, self.ranker_source, guard, screen)
        self.retrieve = Retrieve(settings, retriever, database, own)
        self.admit = Admit(self.redactor)
        self.intake = Intake(database, own, CaseLookup(orders, order_number_pattern))
        self.gate = Gate(settings, say)
        self.follow_up = FollowUp(
            settings, database, retriever, self.retrieve, own, say, self.compose, self.choose
        )
        self.acts = Acts(settings, say)
        self.contact = Contact(settings, say)
        self.cache = Cache(settings, database, own, guard, self.ranker_source)
        self.scope = Scope(settings, say)
        self.understand = Understand(settings, say)
        self.parts = Parts(settings, retriever, self.retrieve, own, self.compose, self.choose)
        self.decide = Decide(say, self.choose)
        self.check = FinalCheck(settings, self.redactor, own, say)
        self.persist = Persist(database)

    # -- what the callers reach -----------------------------------------------------------

    @property
    def specifics(self) -> SpecificsGuard | None:
        return self.own.specifics

    @specifics.setter
    def specifics(self, guard: SpecificsGuard | None) -> None:
        self.own.specifics = guard

    @property
    def reply_source(self) -> ReplyModelSource | None:
        return self.models.source

    def reveals_prompt(self, text: str) -> bool:
        """The text repeats part of the system prompt."""
        return self.guard.reveals(text)

    def reply_model(self) -> LoadedModel:
        """The model to generate with (`chatbot.dialogue.stages.compose.ReplyModels`)."""
        return self.models.get()

    # -- answering ---------------------------------------------------------------------

    def respond(
        self,
        message: str,
        conversation_id: int | None = None,
        *,
        source: str = "widget",
        listener: Listener | None = None,
    ) -> Reply:
        """Answer one customer message; see the module docstring for the stages."""
        emit = listener or ignore
        message = self.admit.run(message)
        turn = self.intake.run(message, conversation_id, source, Clock(), emit)
        reply = self.check.run(turn, self._answer(turn))
        return self.persist.run(turn, reply)

    def _answer(self, turn: Turn) -> Reply:
        """The stages that may settle the reply, in order."""
        for stage in (self.gate, self.follow_up, self.acts, self.contact):
            reply = stage.run(turn)
            if reply is not None:
                return reply
        # An answer an agent approved for this very question beats any guess about scope.
        reply = self.cache.before_retrieval(turn)
        if reply is not None:
            return reply
        retrieved = self.retrieve.run(turn, turn.question)
        reply = self.cache.among_hits(turn, retrieved)
        if reply is not None:
            return reply
        hits = retrieved.hits
        understanding: Understanding | None = None
        classes = deciding_classes(self.retriever, self.settings)
        if classes is None:
            reply = self.scope.run(turn, retrieved)
            if reply is not None:
                return reply
        else:
            verdict = self.understand.run(turn, classes, retrieved)
            several = self.parts.run(turn, classes) if turn.question is None else None
            if several is not None:
                return several
            if isinstance(verdict, Reply):
                return verdict
            understanding, hits = verdict, verdict.hits
        composed = self.compose.run(turn, hits)
        understood = understanding.understood if understanding is not None else None
        return self.decide.run(turn, composed, hits, understood)

    def respond_stream(
        self, message: str, conversation_id: int | None = None, *, source: str = "widget"
    ) -> Iterator[DialogueEvent]:
        """`respond`, as events: stages and refinement rounds while it thinks (and the
        first draft piece by piece), then the text shown to the customer word by word,
        then `done` with the stored reply. Errors are raised from the iterator."""
        events: queue.Queue[DialogueEvent | None] = queue.Queue()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["reply"] = self.respond(
                    message, conversation_id, source=source, listener=events.put
                )
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                events.put(None)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        # Every wait inside `respond` is bounded (store, model load, generation), so this ends.
        while (event := events.get()) is not None:
            yield event
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        yield DialogueEvent(EventKind.DONE, reply=outcome["reply"])

    def hand_back(self, conversation_id: int) -> None:
        """An agent gives a handed-off conversation back to the assistant (checking who
        may do so is `chatbot.support.review.hand_back`'s job)."""
        with self.database.session() as session:
            repo.hand_back(session=session, conversation_id=conversation_id)

    def request_human(self, conversation_id: int) -> str | None:
        """The customer asked for a person with the widget's button: hand off and show
        the hand-off notice, which is returned (None when a human is already in charge)."""
        with self.database.session() as session:
            message = repo.request_human(
                session=session,
                conversation_id=conversation_id,
                message=self.settings.handoff_message,
            )
        return message.text if message is not None else None
