"""The dialogue manager: one customer message in, one stored `Reply` out.

For each message: store it (committed before anything else runs, so a crash never loses
it); stay silent if a human has taken over; hand off at once when the customer asks for
a person or repeats the same question; take the customer's answer to the assistant's own
question (the order number it asked for, looked up in the order system, or the topic it
offered); answer a conversation act in the company's words (`chatbot.dialogue.acts`);
answer from an agent-approved answer when one matches closely (the answer cache: looked up in the store, so an approval counts at
once, and among the retrieved past answers; before any guess about scope); retrieve
evidence with the conversation history; where the index has answer classes, let the
question–answer fit model decide between answering from the question's class, a
clarifying question, a decline and a hand-off (`chatbot.dialogue.understanding`; see
docs/customer_answers.md), answering two questions of one message one by one; else hand
off when the request is out of scope; score the best retrieved past answers and, when the best is confident enough
(`send_retrieved_at`), send it at once without generating; otherwise draft with the
reply model (its words streamed to the customer as they come), refine over a few
retrieve-and-refine rounds (the best reply so far goes back in as a past answer) while
the score rises, let the drafts compete with the retrieved answers under one judge,
withhold anything degenerate (`chatbot.dialogue.degenerate`), send the candidate that
agrees most with the others where `chatbot index` found that this pays for the company
(`chatbot.ranking.consensus`; else the judge's best), smooth the judge's score of it
(the confidence) across turns and decide (with answer classes: the class's nearest
answer, sent at the fit model's calibrated probability). The judge is the learned ranker when one serves
(`chatbot.ranking`: its probability that the reply fits, less the critique's penalties,
with thresholds on its own scale from its validation picks), else the hand-set critique. Every wait for
the reply model is bounded (`model_wait_s`, `first_token_s`, `next_token_s`,
`generation_s`): a model that is still loading, raises or stalls ends in the retrieved
answers or a hand-off, never a hung turn. The reply record
(text, citations, confidence, decision and reason, refinement trace, candidates, time
per stage) is stored and returned; an answer about the customer's own order never
asserts a state the order system did not establish (`chatbot.dialogue.case`), and no slot
or redaction placeholder is ever sent; a hand-off also puts the conversation in the
agents' queue (reason, time, nobody assigned yet).

What it keeps and shows is guarded: the customer's message is cleaned of control and
bidirectional characters and redacted (e-mail addresses, phone and card numbers,
handles; the `ingest` redaction settings, the same as imports) before it is stored,
retrieved with or shown to a model, so the original is kept nowhere; the reply is
redacted the same way before it is stored and sent (addresses that the company's own
past answers or notices contain are allowed); a candidate that repeats the system
prompt is never sent (nor streamed further as a draft); every candidate, cached,
retrieved (in its slotted form) or drafted, has its slots filled from this conversation,
and one holding another customer's specifics, or about another customer's case, is
withheld, with why, in the candidates (`chatbot.dialogue.specifics`); only live, open
conversations take new messages (`chatbot.store.conversations.add_message`). Message
text is logged at DEBUG only.

Where its job ends: it takes a `Retriever` and a reply-model source as given (building
them is `chatbot.retrieval` and `chatbot.models`' job), and it renders nothing: the CLI
and the UI show the `Reply` and the streamed events.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from chatbot.dialogue import repository as repo
from chatbot.dialogue.acts import Act, default_replies, main_act, recognise
from chatbot.dialogue.answer_cache import AnswerCatalogue
from chatbot.dialogue.case import (
    Case,
    claimed_states,
    not_found_message,
    promises_action,
    status_line,
)
from chatbot.dialogue.critique import Evidence, Scorer, evidence_from_hits, penalties
from chatbot.dialogue.degenerate import degenerate_reason
from chatbot.dialogue.handoff import asks_for_human, repeats
from chatbot.dialogue.model_wait import BoundedModelSource, ReplyModelSource
from chatbot.dialogue.policy import decide, smooth
from chatbot.dialogue.records import (
    ANSWERED,
    Blocked,
    BlockedCandidate,
    CachedCandidate,
    Candidate,
    Critique,
    Decision,
    GenerationFailure,
    KeptCandidate,
    Origin,
    Reason,
    Reply,
    RoundTrace,
    ScoredCandidate,
    numbered_choices,
    with_detail,
)
from chatbot.dialogue.refine import refine
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.specifics import Checked, ConversationFacts, SpecificsGuard, reports_on_a_case
from chatbot.dialogue.text import question_similarity, token_f1
from chatbot.dialogue.understanding import (
    Understood,
    Verdict,
    picked_option,
    question_parts,
    read_hits,
    understand,
    without_salutation,
)
from chatbot.dialogue.writer import ReplyWriter
from chatbot.errors import ChatbotError, InputError
from chatbot.ingest.redact import EMAIL_RE, PLACEHOLDERS, Redactor
from chatbot.ingest.sanitize import clean_text
from chatbot.ingest.settings import IngestSettings
from chatbot.ingest.specifics import SLOT_RE
from chatbot.orders.connector import (
    DEFAULT_NUMBER_PATTERN,
    OrderConnector,
    normalise_order_number,
)
from chatbot.ranking import consensus
from chatbot.retrieval.answer_classes import AnswerClasses, ClassScore
from chatbot.retrieval.types import Citation, Hit, Retriever, SearchResult
from chatbot.store.conversations import add_message, start_conversation
from chatbot.store.database import Database
from chatbot.store.enums import ReviewState
from chatbot.training.prompt import PromptFormat

if TYPE_CHECKING:
    from torch.nn import Module

    from chatbot.dialogue.model_wait import LoadedModel

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
SNIPPET_CHARS = 300
_ROLE = {"customer": "user", "agent": "assistant", "bot": "assistant"}
# A reply sharing this many consecutive words with the system prompt repeats it.
PROMPT_LEAK_WORDS = 6
REPLY_VECTOR_CACHE = 4096  # candidate reply vectors kept for consensus (1.5 KB each)
_WORD_RE = re.compile(r"\w+")
# Earlier turns read per message: retrieval keeps its own window of them (retrieval.history_turns)
# and the prompt its own (prompt.history_turns); this only bounds what is read from the store.
HISTORY_READ = 20
# Slots that tie a past reply to one customer's case (`_not_usable`). Names are not among them,
# nor amounts and dates: in a small history a price or a deadline may look like one case's.
CASE_SLOTS = repo.CASE_IDENTIFIERS | {"address"}
# What the assistant says when an index has no answer classes (an older or very small one).
DEFAULT_HELPS_WITH = "questions about our service"
DEFAULT_DECLINE = "Sorry, that's not something I can help with."
MAX_PARTS = 3  # questions in one message answered one by one
# What `chatbot.dialogue.understanding` says of a hand-off, as the reply's reason.
_HANDOFF_REASONS = {
    "clarification_failed": str(Reason.CLARIFICATION_FAILED),
    "low_confidence": str(Reason.LOW_CONFIDENCE),
    "no_close_match": with_detail(Reason.OUT_OF_SCOPE, "no close match in the history"),
}
AFTER_A_CHOICE = "order_number, for the topic picked"


_PLACEHOLDER_RE = re.compile(
    "|".join(re.escape(p) for p in PLACEHOLDERS.values()) + r"|" + SLOT_RE.pattern
)


def has_placeholder(text: str) -> bool:
    """The text holds a slot (`{order_number}`) or a redaction placeholder (`<EMAIL>`)."""
    return bool(_PLACEHOLDER_RE.search(text or ""))


def live_redactor(ingest: IngestSettings | None) -> Redactor:
    """The redactor for live messages: the same kinds and allowlist as imports."""
    ingest = ingest or IngestSettings()
    return Redactor(ingest.redact_kinds if ingest.redact else (), ingest.redact_allowlist)


def _shingles(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@runtime_checkable
class FitScorer(Protocol):
    """A learned ranker (`chatbot.ranking.model.Ranker`): the probability that each
    candidate fits the conversation. It may also carry the `meta` its version recorded."""

    def score(self, context: Sequence[dict[str, str]], candidates: Sequence[str]) -> list[float]:
        """One probability per candidate."""
        ...


@runtime_checkable
class FitScorerSource(Protocol):
    """Gives the ranker serving now (`chatbot.ranking.model.RankerSource`), or None."""

    def get(self) -> FitScorer | None:
        """The ranker to use for this message, or None."""
        ...


class EventKind(StrEnum):
    """What a `DialogueEvent` says (see there)."""

    STAGE = "stage"
    ROUND = "round"
    TOKEN = "token"
    REPLACE = "replace"
    DONE = "done"


@dataclass
class DialogueEvent:
    """One step of answering, for streaming UIs: `stage` (a stage started), `round` (a
    refinement round finished; `data` is its RoundTrace), `token` (the next piece of the
    text shown to the customer, as soon as it is known: a draft's words while the model
    writes them, or the chosen answer's), `replace` (the text shown so far is replaced by
    `text`, the final one: a retrieved answer beat the draft, or the draft was withheld),
    `done` (`reply`). The tokens, with any replace applied, add up to `reply.shown_text`."""

    kind: EventKind
    text: str = ""
    data: RoundTrace | None = None
    reply: Reply | None = None


Listener = Callable[[DialogueEvent], None]


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Adds the time spent inside to the stage's total (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(
                self.timings.get(name, 0.0) + time.perf_counter() - started, 5
            )

    def total(self) -> float:
        return round(time.perf_counter() - self._started, 5)


def _ignore(event: DialogueEvent) -> None:
    pass


@dataclass
class _Turn:
    """What answering one message knows as it goes: the stored message and what was read
    of its conversation, the stage clock, the stream to the customer, and what the steps
    collect on the way (texts whose addresses a reply may repeat; candidates withheld for
    holding another customer's specifics)."""

    message: str
    conversation_id: int
    message_id: int
    state: str
    history: list[tuple[str, str]]  # earlier turns, (role, text), oldest first
    earlier_customer: list[str]
    previous_smoothed: float | None
    facts: ConversationFacts | None
    clock: _Clock
    emit: Listener
    live: _LiveText
    last: repo.LastReply | None = None  # what the assistant did with the previous message
    case: Case | None = None  # the order this conversation named, as the order system knows it
    case_given_now: bool = False  # this message named it
    question: str | None = None  # what to answer when not the message itself (an earlier question)
    trusted: list[str] = field(default_factory=list)
    withheld: list[BlockedCandidate] = field(default_factory=list)

    @property
    def history_text(self) -> list[str]:
        return [text for _, text in self.history]

    @property
    def history_chat(self) -> list[dict[str, str]]:
        return [
            {"role": _ROLE[role], "content": text} for role, text in self.history if role in _ROLE
        ]


@dataclass
class _Drafted:
    """What the reply model gave for one message: its best draft (or none), the
    refinement trace, the model version, or the error it failed with."""

    candidates: list[Candidate] = field(default_factory=list)
    trace: list[RoundTrace] = field(default_factory=list)
    version: str | None = None
    error: str | None = None


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
        # The company's order system (`chatbot.orders`): None when it connected none.
        self.orders = orders
        self.order_number_pattern = order_number_pattern
        # Live messages are redacted like imports (`ingest` settings; default: all kinds).
        self.redactor = live_redactor(ingest)
        # Serving prompts exactly as training does: the one `prompt` settings section.
        self.prompt = prompt
        self.database = database
        self.retriever = retriever
        self.reply_source = reply_source
        self._bounded_source = (
            BoundedModelSource(reply_source) if reply_source is not None else None
        )
        self.scorer = Scorer(settings)
        # The learned ranker (`chatbot.ranking`): a Ranker, or a source whose get() gives the
        # promoted one (None until one is trained and kept); without it the hand-set critique scores.
        self.ranker_source: FitScorerSource | None = (
            ranker
            if ranker is None or isinstance(ranker, FitScorerSource)
            else _FixedRanker(ranker)
        )
        self._quantized: dict[str, Module] = {}
        self._vector_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vector_lock = threading.Lock()  # the web app answers on several threads
        self._lock = threading.Lock()
        self.answers = AnswerCatalogue(settings.cache_origins)
        # Fills slots and withholds other customers' specifics (None: no check, for before/after benchmarks).
        self.specifics: SpecificsGuard | None = SpecificsGuard(database)
        prompt_words = _WORD_RE.findall(self.prompt.system_prompt.lower())
        self._leak_n = max(3, min(PROMPT_LEAK_WORDS, len(prompt_words)))
        self._prompt_shingles = _shingles(prompt_words, self._leak_n)

    # -- what may be kept and said --------------------------------------------------------

    def reveals_prompt(self, text: str) -> bool:
        """The text repeats part of the system prompt (PROMPT_LEAK_WORDS words in a row)."""
        if not self._prompt_shingles or not text:
            return False
        words = _WORD_RE.findall(text.lower())
        return any(shingle in self._prompt_shingles for shingle in _shingles(words, self._leak_n))

    def _reply_redactor(self, trusted: Sequence[str]) -> Redactor:
        """The live redactor, also allowing the exact addresses in `trusted` texts (the
        company's past answers, already redacted when imported, and its own notices)."""
        addresses = {
            re.sub(r"\s", "", m.group(0)).lower()
            for t in trusted
            if t and "@" in t
            for m in EMAIL_RE.finditer(t)
        }
        if not addresses or not self.redactor.kinds:
            return self.redactor
        return Redactor(self.redactor.kinds, [*self.redactor.allow, *sorted(addresses)])

    def _redact_reply(self, reply: Reply, trusted: Sequence[str]) -> Reply:
        """Every text of the reply record redacted: what is sent, stored and reviewed."""
        redactor = self._reply_redactor(
            [*trusted, self.settings.handoff_message, self.settings.hold_message]
        )
        reply.text = redactor.redact(reply.text)
        reply.shown_text = redactor.redact(reply.shown_text)
        reply.candidates = [
            replace(c, text=redactor.redact(c.text))
            if not isinstance(c, GenerationFailure) and c.text is not None
            else c
            for c in reply.candidates
        ]
        for step in reply.trace:
            step.text = redactor.redact(step.text)
        return reply

    # -- the reply model -------------------------------------------------------------

    def reply_model(self) -> LoadedModel:
        """The model to generate with: the source's, or its int8 copy when configured
        (made once per version and kept). ModelNotReady after `model_wait_s` seconds."""
        if self._bounded_source is None:
            raise RuntimeError("no reply model source configured")
        model, tokenizer, version = self._bounded_source.get(self.settings.model_wait_s)
        if self.settings.quantize != "int8":
            return model, tokenizer, version
        with self._lock:
            if version not in self._quantized:
                from chatbot.dialogue.compress import quantize_int8

                self._quantized = {version: quantize_int8(model)}
            return self._quantized[version], tokenizer, f"{version}+int8"

    # -- answering ---------------------------------------------------------------------

    def respond(
        self,
        message: str,
        conversation_id: int | None = None,
        *,
        source: str = "widget",
        listener: Listener | None = None,
    ) -> Reply:
        """Answer one customer message; see the module docstring for the steps."""
        emit = listener or _ignore
        message = self._admit(message)
        clock = _Clock()
        turn = self._store_message(message, conversation_id, source, clock, emit)
        reply = self._answer(turn)
        reply = self._without_placeholders(self._redact_reply(reply, turn.trusted), turn)
        return self._persist(reply, clock, emit, turn.live)

    def _without_placeholders(self, reply: Reply, turn: _Turn) -> Reply:
        """The last check on every path: no slot (`{customer_name}`) or redaction
        placeholder (`<EMAIL>`) ever reaches a customer. A slot left over is phrased out
        as `chatbot.dialogue.specifics` does; a reply that still holds one is not sent:
        the conversation goes to an agent, with the text kept for them to review."""
        if not reply.sent or not has_placeholder(reply.shown_text):
            return reply
        filled = self._filled(reply.shown_text, turn)
        if not has_placeholder(filled):
            reply.shown_text = filled
            if reply.decision in ANSWERED:
                reply.text = filled
            return reply
        log.warning(
            "conversation %s: a reply holding a placeholder was withheld", turn.conversation_id
        )
        withheld = self._handoff(turn, with_detail(Reason.NO_CANDIDATE, "placeholder withheld"))
        withheld.text, withheld.confidence = reply.text, reply.confidence
        withheld.citations, withheld.candidates = reply.citations, reply.candidates
        return withheld

    def _admit(self, message: str) -> str:
        """The message cleaned, checked and redacted: from here on only this exists
        (stored, retrieved with, prompted)."""
        message = clean_text(message or "").strip()
        if not message:
            raise InputError("the message is empty")
        if len(message) > MAX_MESSAGE_CHARS:
            raise InputError(
                f"the message is {len(message)} characters long; the limit is {MAX_MESSAGE_CHARS}"
            )
        return self.redactor.redact(message)

    def _store_message(
        self,
        message: str,
        conversation_id: int | None,
        source: str,
        clock: _Clock,
        emit: Listener,
    ) -> _Turn:
        """Store the message (committed before anything else runs) and read what the
        answer needs of the conversation."""
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
        facts = (
            self.specifics.facts([*earlier_customer, message], history_text)
            if self.specifics
            else None
        )
        case, given_now = self._case(message, earlier_customer)
        return _Turn(
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
            live=_LiveText(emit, lambda text: self._own_showable(text, facts)),
        )

    def _answer(self, turn: _Turn) -> Reply:
        """The steps, each of which may settle the reply: the gate (a human in charge or
        asked for; a loop), the stored answer cache, retrieval (and the cache among its
        hits), the scope gate, then candidates scored, drafted, screened and decided."""
        s = self.settings
        reply = self._gate(turn)
        if reply is not None:
            return reply
        reply = self._case_followup(turn)
        if reply is not None:
            return reply
        choice = self._clarification_choice(turn)
        if choice is not None:
            return self._answer_choice(turn, choice)
        reply = self._act(turn)
        if reply is not None:
            return reply
        # An answer an agent approved for this very question beats any guess about scope.
        if s.cache_enabled and not turn.history_text:
            with turn.clock.stage("cache"):
                cached = self._own_hit(
                    self._stored_cache_lookup(turn.message), turn.facts, turn.withheld
                )
            if cached is not None and not self.reveals_prompt(cached[0].reply_text):
                turn.trusted.append(cached[0].reply_text)
                return self._cache_hit(turn, *cached)
        result, hits, infos = self._retrieve(turn, turn.question)
        if s.cache_enabled:
            # Approved pairs older than the catalogue keeps are still found through the index.
            with turn.clock.stage("cache"):
                cached = self._cache_lookup(turn.message, turn.history_text, hits, infos)
            if cached is not None and not self.reveals_prompt(cached[0].reply_text):
                return self._cache_hit(turn, *cached)
        classes = self._answer_classes()
        understood: Understood | None = None
        if classes is None:
            reply = self._scope_gate(turn, result, hits, infos)
        else:
            understood, reply = self._understand(turn, classes, result)
            several = self._answer_parts(turn, classes) if turn.question is None else None
            if several is not None:
                return several
            if understood.verdict is Verdict.ANSWER and understood.chosen is not None:
                hits = self._class_hits(turn, classes, understood.chosen, hits)
                if not hits:
                    reply = self._no_usable_answer(turn, classes, understood)
        if reply is not None:
            return reply
        evidence = evidence_from_hits(turn.message, turn.history_text, hits, turn.earlier_customer)
        # One judge for every candidate: the learned ranker when one is serving, else the critique.
        judge = _Judge(
            self.scorer,
            evidence,
            self._ranker(),
            [
                *({"role": role, "text": text} for role, text in turn.history if role in _ROLE),
                {"role": "customer", "text": turn.message},
            ],
        )
        candidates = self._score_retrieved(turn, hits, judge)
        s = judge.thresholds(s)  # on the ranker's scale while it scores (not once it failed)
        drafted = self._draft_if_needed(turn, s, candidates, evidence, judge)
        candidates, blocked = self._screen(turn, drafted.candidates + candidates)
        return self._decide(turn, s, candidates, blocked, drafted, hits, understood)

    def _gate(self, turn: _Turn) -> Reply | None:
        """No answer at all: a human is in charge (silent), or the customer asked for one
        or keeps asking the same question (hand-off)."""
        s = self.settings
        if turn.state == "handed_off":
            return Reply(
                conversation_id=turn.conversation_id,
                message_id=turn.message_id,
                decision=Decision.SILENT,
                reason=Reason.HUMAN_IN_CHARGE,
                text="",
                shown_text="",
                sent=False,
                confidence=None,
                smoothed_confidence=turn.previous_smoothed,
            )
        # "Am I talking to a person or a bot?" asks what the assistant is, not for a person.
        if (
            asks_for_human(turn.message)
            and main_act(recognise(turn.message)) is not Act.BOT_QUESTION
        ):
            return self._handoff(turn, Reason.CUSTOMER_ASKED)
        asked = repeats(turn.message, turn.earlier_customer, similarity=s.loop_similarity)
        if asked >= s.loop_repeats:
            return self._handoff(turn, with_detail(Reason.LOOP, f"asked {asked} times"))
        return None

    def _cache_hit(self, turn: _Turn, hit: Hit, similarity: float) -> Reply:
        """An answer an agent approved for this very question is sent; the ranker, when one
        serves, still scores it, for the record (and the agents' review of the cache)."""
        confidence = round(similarity, 4)
        smoothed = round(smooth(turn.previous_smoothed, confidence, self.settings.smoothing), 4)
        components = None
        ranker = self._ranker()
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

    def _retrieve(
        self, turn: _Turn, question: str | None = None
    ) -> tuple[SearchResult, list[Hit], dict[int, repo.PairInfo]]:
        """Past answers for the message and its history (or for `question` alone), with
        what the store knows of their pairs, in slotted form filled for this customer
        (foreign ones withheld)."""
        s = self.settings
        turn.emit(DialogueEvent(EventKind.STAGE, "retrieving"))
        with turn.clock.stage("retrieve"):
            result = (
                self.retriever.search(turn.message, history=turn.history_text, k=s.retrieve_k)
                if question is None
                else self.retriever.search(question, k=s.retrieve_k)
            )
        hits = list(result.hits)
        turn.trusted.extend(h.reply_text for h in hits)
        with turn.clock.stage("pairs"):
            with self.database.session() as session:
                infos = repo.pair_infos(session=session, pair_ids=[h.pair_id for h in hits])
        return result, self._own_hits(hits, infos, turn.facts, turn.withheld, turn.case), infos

    def _scope_gate(
        self,
        turn: _Turn,
        result: SearchResult,
        hits: list[Hit],
        infos: dict[int, repo.PairInfo],
    ) -> Reply | None:
        """A hand-off when the request is out of scope, or its past answers' topic is one
        that hands off."""
        s = self.settings
        # A conversation's topic label says what it was opened for: it speaks for the reply to
        # its first message, not for a later in-scope question ("...then how do I track my
        # order?" in a conversation opened about stock tips).
        top = infos.get(hits[0].pair_id) if hits else None
        top_topic = top.labels.get("topic") if top is not None and top.opening else None
        if s.handoff_on_out_of_scope and (
            result.out_of_scope or not hits or top_topic in s.out_of_scope_topics
        ):
            why = (
                str(Reason.OUT_OF_SCOPE)
                if result.out_of_scope or not hits
                else with_detail(Reason.OUT_OF_SCOPE, f"past answers are labelled {top_topic}")
            )
            reply = self._handoff(turn, why)
            reply.citations = [h.citation for h in hits[:1]]
            return reply
        if top_topic in s.handoff_topics:
            reply = self._handoff(turn, f"{Reason.TOPIC_HANDOFF} ({top_topic})")
            reply.citations = [hits[0].citation]
            return reply
        return None

    def _score_retrieved(self, turn: _Turn, hits: list[Hit], judge: _Judge) -> list[Candidate]:
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
        turn: _Turn,
        s: DialogueSettings,
        retrieved: list[Candidate],
        evidence: Evidence,
        judge: _Judge,
    ) -> _Drafted:
        """Drafts from the reply model, unless a retrieved answer is confident enough to be
        sent at once (or there is no model); a failed model leaves the error instead."""
        sendable = [c for c in retrieved if not self.reveals_prompt(c.text)]
        best_retrieved = max((c.score for c in sendable), default=None)
        drafted = _Drafted()
        if not (
            s.generate
            and self.reply_source is not None
            and (best_retrieved is None or best_retrieved < s.retrieved_first_threshold)
        ):
            return drafted
        turn.emit(DialogueEvent(EventKind.STAGE, "drafting"))
        try:
            with turn.clock.stage("load_model"):
                model, tokenizer, drafted.version = self.reply_model()
            writer = ReplyWriter(model, tokenizer, s, self.prompt)
            drafted.candidates, drafted.trace = self._generate(
                writer, evidence, turn.history_chat, turn.clock, turn.emit, turn.live, judge
            )
        except Exception as exc:
            log.warning(
                "reply generation failed for conversation %s: %s",
                turn.conversation_id,
                exc,
                exc_info=not isinstance(exc, ChatbotError),
            )
            drafted.error = f"{type(exc).__name__}: {exc}"
        return drafted

    def _screen(
        self, turn: _Turn, candidates: list[Candidate]
    ) -> tuple[list[Candidate], list[BlockedCandidate]]:
        """The candidates allowed to compete, and those blocked with why: nothing that
        repeats the system prompt, nothing degenerate (empty, a sentence said twice, the
        customer's words echoed, cut off), nothing holding another customer's specifics."""
        blocked = [
            BlockedCandidate(c.origin, c.round, c.pair_id, Blocked.PROMPT)
            for c in candidates
            if self.reveals_prompt(c.text)
        ]
        if blocked:
            candidates = [c for c in candidates if not self.reveals_prompt(c.text)]
            log.info(
                "conversation %s: %d candidate(s) repeating the system prompt withheld",
                turn.conversation_id,
                len(blocked),
            )
        kept = []
        for c in candidates:
            why = degenerate_reason(
                c.text,
                customer_message=turn.message,
                prompt_texts=[self.prompt.system_prompt],
                cut_off=c.cut_off,
            )
            if why is None:
                kept.append(c)
            else:
                blocked.append(
                    BlockedCandidate(
                        c.origin, c.round, c.pair_id, Blocked.DEGENERATE, why, text=c.text
                    )
                )
        kept = self._own_candidates(kept, turn.facts, turn.withheld)
        return kept, blocked + turn.withheld

    def _decide(
        self,
        turn: _Turn,
        s: DialogueSettings,
        candidates: list[Candidate],
        blocked: list[BlockedCandidate],
        drafted: _Drafted,
        hits: list[Hit],
        understood: Understood | None = None,
    ) -> Reply:
        """The best candidate, its confidence smoothed across turns, and the decision
        (`chatbot.dialogue.policy`); a hand-off when nothing may be sent. Where the
        question was understood (`chatbot.dialogue.understanding`), the confidence is the
        fit model's calibrated probability that the answer's class is right, and it was
        at or above `fit_answer_at`: the answer is sent."""
        failure: list[KeptCandidate] = (
            [GenerationFailure(drafted.error)] if drafted.error is not None else []
        )
        if not candidates:
            reply = self._handoff(
                turn, Reason.ASSISTANT_FAILED if drafted.error else Reason.NO_CANDIDATE
            )
            reply.model_version = drafted.version
            reply.trace = drafted.trace
            reply.candidates = [*failure, *blocked]
            return reply
        if understood is not None and understood.chosen is not None and s.within_class == "nearest":
            winner = self._nearest(candidates, hits)
        else:
            winner = self._choose(turn, candidates)
        confidence = round(winner.score, 4)
        if understood is not None and understood.chosen is not None:
            confidence = round(understood.chosen.probability, 4)
        smoothed = round(smooth(turn.previous_smoothed, confidence, s.smoothing), 4)
        decision, reason = decide(s, confidence=confidence, smoothed=smoothed)
        if understood is not None and understood.chosen is not None:
            decision, reason = Decision.ANSWER, Reason.CONFIDENT
        if decision == Decision.HANDOFF:
            reply = self._handoff(turn, reason)
            reply.text, reply.confidence, reply.smoothed_confidence = (
                winner.text,
                confidence,
                smoothed,
            )
        else:
            reply = Reply(
                conversation_id=turn.conversation_id,
                message_id=turn.message_id,
                decision=decision,
                reason=with_detail(reason, f"{winner.origin} won"),
                text=winner.text,
                shown_text=winner.text if decision != Decision.HELD else s.hold_message,
                sent=decision != Decision.HELD,
                confidence=confidence,
                smoothed_confidence=smoothed,
                review_status=None if decision == Decision.ANSWER else ReviewState.PENDING,
            )
        reply = self._with_status_line(reply, turn)
        reply.citations = self._citations_for(winner, hits)
        reply.trace = drafted.trace
        reply.model_version = drafted.version
        reply.candidates = [*_scored(candidates), *failure, *blocked]
        return reply

    @staticmethod
    def _nearest(candidates: list[Candidate], hits: Sequence[Hit]) -> Candidate:
        """Within the question's answer class, the answer whose past question (and reply)
        is closest to this one: the class says what it is about, the nearest pair which
        of its answers (consensus would send the class's most common answer to every
        question of it). A candidate with the critique's penalties only when all have them."""
        closeness = {
            h.pair_id: float(h.scores.get("dense", h.score)) + float(h.scores.get("answer", 0.0))
            for h in hits
        }
        return max(
            candidates,
            key=lambda c: (
                penalties(c.critique.components) == 0,
                closeness.get(c.pair_id, -1.0) if c.pair_id is not None else -1.0,
                c.score,
            ),
        )

    def _choose(self, turn: _Turn, candidates: list[Candidate]) -> Candidate:
        """The candidate to send: the one that agrees most with the others, with the judge's
        score beside it (`chatbot.ranking.consensus`), where `chatbot index` chose that for
        this company; else the judge's best. The confidence stays the judge's score of it."""
        choice = getattr(self.retriever, "consensus", None) if self.settings.consensus else None
        if choice is None or len(candidates) < consensus.MIN_CANDIDATES:
            return max(candidates, key=lambda c: c.score)
        with turn.clock.stage("consensus"):
            texts = [c.text for c in candidates]
            best, utility = consensus.choose(
                texts,
                self._reply_vectors(texts),
                [c.score for c in candidates],
                [penalties(c.critique.components) > 0 for c in candidates],
                choice,
            )
        for candidate, value in zip(candidates, utility, strict=True):
            candidate.critique.components = {
                **candidate.critique.components,
                "consensus": round(float(value), 4),
            }
        return candidates[best]

    def _reply_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The embedder's unit vectors of candidate replies; past answers recur from
        message to message, so the last REPLY_VECTOR_CACHE are kept."""
        from chatbot.retrieval.embedding import embed_texts

        model = self.retriever.model  # type: ignore[attr-defined]
        with self._vector_lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vector_cache]
        embedded: Sequence[np.ndarray] = (  # outside the lock: embedding is the slow part
            list(embed_texts(model, missing)) if missing else []
        )
        with self._vector_lock:
            self._vector_cache.update(zip(missing, embedded, strict=True))
            found = [self._vector_cache[t] for t in texts]
            for text in texts:
                self._vector_cache.move_to_end(text)
            while len(self._vector_cache) > REPLY_VECTOR_CACHE:
                self._vector_cache.popitem(last=False)
        return np.stack(found)

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

    # -- the customer's own case (chatbot.dialogue.case, chatbot.orders) ------------------

    def _case(self, message: str, earlier_customer: Sequence[str]) -> tuple[Case | None, bool]:
        """The order this conversation names (the latest number the customer gave) and
        what the order system says of it; and whether this message gave it."""
        number = normalise_order_number(message, self.order_number_pattern)
        given_now = number is not None
        for text in reversed(earlier_customer):
            if number is not None:
                break
            number = normalise_order_number(text, self.order_number_pattern)
        if number is None:
            return None, False
        if self.orders is None:
            return Case(number, None, looked_up=False), given_now
        try:
            return Case(number, self.orders.lookup(number), looked_up=True), given_now
        except ChatbotError as exc:
            log.warning("the order system could not be asked about %s: %s", number, exc)
            return Case(number, None, looked_up=False), given_now

    @staticmethod
    def _case_allows_text(text: str, case: Case | None) -> bool:
        """Every order state the text asserts is the one this conversation established,
        and, while no order is named, it promises no action on one."""
        if case is not None:
            return case.allows(text)
        return not claimed_states(text) and not promises_action(text)

    @staticmethod
    def _with_status_line(reply: Reply, turn: _Turn) -> Reply:
        """An answer to the message that gave the order number starts with what the
        order system says of that order."""
        if (
            reply.decision in ANSWERED
            and turn.case is not None
            and turn.case_given_now
            and turn.case.order is not None
        ):
            line = status_line(turn.case.order)
            reply.text = f"{line}\n\n{reply.text}"
            reply.shown_text = f"{line}\n\n{reply.shown_text}"
        return reply

    def _case_allows(self, hit: Hit, case: Case | None, withheld: list[BlockedCandidate]) -> bool:
        """A past answer may be sent only if every order state it asserts is the one this
        conversation established, and, while no order is named, it promises no action on one."""
        text = hit.reply_text
        if self._case_allows_text(text, case):
            return True
        why = (
            "asserts an order state this conversation has not established"
            if claimed_states(text)
            else "promises an action on an order this conversation has not named"
        )
        withheld.append(
            self._withheld(
                Origin.RETRIEVED,
                hit.pair_id,
                text,
                f"about another customer's case ({why})",
                score=hit.score,
            )
        )
        return False

    def _case_followup(self, turn: _Turn) -> Reply | None:
        """The customer gave the order number the assistant asked for: the question they
        asked before is answered for that order (`turn.question`), or they are told the
        number was not found, or, with no order system to ask, an agent takes over with it."""
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
                return self._said(
                    turn,
                    Decision.CLARIFY,
                    with_detail(Reason.NEEDS_CASE, "order number not found"),
                    not_found_message(turn.case.number),
                )
            return self._handoff(turn, with_detail(Reason.NEEDS_CASE, turn.case.number))
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
            if offered is not None and label is not None:
                return self._answer_choice(turn, label, offered.question)
        turn.question = last.question
        return None

    # -- understanding the question (chatbot.dialogue.understanding) ----------------------

    def _fitted_classes(self) -> AnswerClasses | None:
        classes = getattr(self.retriever, "answer_classes", None)
        return classes if isinstance(classes, AnswerClasses) else None

    def _answer_classes(self) -> AnswerClasses | None:
        """The current index version's answer classes and fit model, where they may decide:
        None when none were fitted, or when too few of the questions held out when fitting
        reach the answer bar (`fit_min_coverage`): the history's answers cannot be told
        apart well enough, and the judge's thresholds decide as before."""
        classes = self._fitted_classes()
        if classes is None:
            return None
        coverage = classes.coverage(self.settings.fit_answer_at)
        if coverage is not None and coverage[0] < self.settings.fit_min_coverage:
            return None
        return classes

    def _voice(self) -> dict[str, Any]:
        classes = self._fitted_classes()
        return classes.voice if classes is not None else {}

    def _said(
        self,
        turn: _Turn,
        decision: Decision,
        reason: str,
        text: str,
        options: Sequence[str] = (),
        confidence: float | None = None,
    ) -> Reply:
        """A reply that is not an answer from the history (an act, a decline, a clarifying
        question): the company's words with their slots filled for this customer."""
        shown = self._filled(text, turn) + numbered_choices(options)
        turn.trusted.append(shown)
        return Reply(
            conversation_id=turn.conversation_id,
            message_id=turn.message_id,
            decision=decision,
            reason=reason,
            text=shown,
            shown_text=shown,
            sent=True,
            confidence=confidence,
            smoothed_confidence=turn.previous_smoothed,
            options=list(options),
        )

    def _filled(self, text: str, turn: _Turn) -> str:
        """Text from the company's history with its slots filled from this conversation
        (a name it does not know is phrased out: "Hi {customer_name}," becomes "Hi,")."""
        if self.specifics is None or turn.facts is None:
            return text
        checked = self.specifics.prepare(text, turn.facts)
        return checked.text if checked.ok else text

    def _act(self, turn: _Turn) -> Reply | None:
        """A greeting, thanks, goodbye, "are you a bot?" or yes / no answered in the
        company's words (`chatbot.dialogue.acts`); "yes" to the offer of a person hands off."""
        if not self.settings.acts:
            return None
        act = main_act(recognise(turn.message))
        if act is None:
            return None
        last = turn.last
        if act is Act.YES and last is not None and last.decision == Decision.DECLINE:
            return self._handoff(turn, Reason.CUSTOMER_ASKED)
        if (
            act is Act.YES
            and last is not None
            and last.decision in ANSWERED
            and promises_action(last.shown_text)
        ):
            # The answer offered what only an agent can do ("Shall I cancel it?"): a person does it.
            number = f" for {turn.case.number}" if turn.case is not None else ""
            return self._handoff(
                turn, with_detail(Reason.CUSTOMER_ASKED, f"accepted the offered action{number}")
            )
        replies = {str(k): v for k, v in default_replies(None, DEFAULT_HELPS_WITH).items()}
        replies.update(self._voice().get("acts") or {})
        text = replies.get(str(act)) or replies[str(Act.GREETING)]
        return self._said(turn, Decision.ACT, with_detail(Reason.ACT, str(act)), text)

    def _decline(self, turn: _Turn, why: str) -> Reply:
        """Out of the company's domain: its own polite decline, with the offer of a person
        (the conversation enters the agents' queue only if the customer takes it)."""
        voice = self._voice()
        text = str(voice.get("decline") or DEFAULT_DECLINE)
        if not re.search(r"\b(person|colleague|agent|human|team member)\b", text, re.IGNORECASE):
            text = f"{text} {self.settings.person_offer}"
        return self._said(turn, Decision.DECLINE, with_detail(Reason.OUT_OF_DOMAIN, why), text)

    def _understand(
        self, turn: _Turn, classes: AnswerClasses, result: SearchResult
    ) -> tuple[Understood, Reply | None]:
        """The verdict for the message (`chatbot.dialogue.understanding.understand`) and,
        unless it is an answer, the reply that says so."""
        s = self.settings
        with turn.clock.stage("understand"):
            reading = read_hits(classes, result.hits)
            # a clarifying question about the topic, not the request for an order number
            after_clarification = (
                turn.last is not None
                and turn.last.decision == Decision.CLARIFY
                and turn.last.reason.startswith(str(Reason.UNSURE))
            )
            understood = understand(
                classes,
                reading,
                s,
                outside_domain=result.outside_domain,
                no_close_match=result.out_of_scope or not result.hits,
                after_clarification=after_clarification,
            )
        top = understood.reading.top
        confidence = round(top.probability, 4) if top is not None else None
        citations = [h.citation for h in result.hits[:1]]
        if understood.verdict is Verdict.DECLINE and s.decline_out_of_domain:
            reply = self._decline(turn, understood.why)
        elif understood.verdict is Verdict.DECLINE or understood.verdict is Verdict.HANDOFF:
            # A decline, when declining is switched off, is the out-of-scope hand-off of old;
            # a hand-off's why is its reason ("past answers hand off (Complaint)") or names one.
            reason = (
                str(Reason.OUT_OF_SCOPE)
                if understood.verdict is Verdict.DECLINE
                else _HANDOFF_REASONS.get(understood.why, understood.why)
            )
            reply = self._handoff(turn, reason)
            reply.citations = citations
        elif understood.verdict is Verdict.CLARIFY:
            reply = self._said(
                turn,
                Decision.CLARIFY,
                with_detail(Reason.UNSURE, f"{len(understood.options)} topics"),
                s.clarify_one_message.format(topic=understood.options[0])
                if len(understood.options) == 1
                else s.clarify_message,
                understood.options,
                confidence,
            )
        else:
            return understood, None
        reply.confidence = confidence
        return understood, reply

    def _answer_parts(self, turn: _Turn, classes: AnswerClasses) -> Reply | None:
        """A message that asks two or three questions (`question_parts`) gets an answer to
        each, joined, when every one is understood with confidence and they are about
        different classes; otherwise None (the message is answered as one question)."""
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
                with self.database.session() as session:
                    infos = repo.pair_infos(
                        session=session, pair_ids=[h.pair_id for h in result.hits]
                    )
                withheld: list[BlockedCandidate] = []
                own = self._own_hits(list(result.hits), infos, turn.facts, withheld, turn.case)
                mine = [h for h in own if classes.pair_class.get(h.pair_id) == top.index]
                if not mine:
                    return None
                candidates, _ = self._class_candidates(turn, part, turn.history_text, mine)
                if not candidates:
                    return None
                answers.append((top, self._choose(turn, candidates), mine))
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
            citations=[c for _, winner, hits in answers for c in self._citations_for(winner, hits)],
        )

    def _class_candidates(
        self, turn: _Turn, question: str, history: list[str], hits: list[Hit]
    ) -> tuple[list[Candidate], list[BlockedCandidate]]:
        """One class's past answers to `question` as candidates, scored by the judge (the
        critique, or the ranker when one serves) and screened like every other."""
        evidence = evidence_from_hits(question, history, hits, turn.earlier_customer)
        judge = _Judge(
            self.scorer, evidence, self._ranker(), [{"role": "customer", "text": question}]
        )
        return self._screen(turn, self._score_retrieved(turn, hits, judge))

    def _class_hits(
        self, turn: _Turn, classes: AnswerClasses, chosen: ClassScore, hits: list[Hit]
    ) -> list[Hit]:
        """The hits (already filled for this customer) whose answers are the chosen class's."""
        return [h for h in hits if classes.pair_class.get(h.pair_id) == chosen.index]

    def _no_usable_answer(
        self, turn: _Turn, classes: AnswerClasses, understood: Understood
    ) -> Reply:
        """The question's class is sure, but every answer of it was about another
        customer's own case: ask for the order number (the case this answer needs), or
        hand off when that is not asked for."""
        assert understood.chosen is not None
        kind = classes.classes[understood.chosen.index]
        has_case = turn.facts is not None and any(
            k in turn.facts.values for k in repo.CASE_IDENTIFIERS
        )
        case = turn.case
        if case is not None and case.looked_up and case.order is None:
            reply = self._said(
                turn,
                Decision.CLARIFY,
                with_detail(Reason.NEEDS_CASE, "order number not found"),
                not_found_message(case.number),
                confidence=round(understood.chosen.probability, 4),
            )
        elif kind.case_bound and not has_case and self.settings.ask_for_order_number:
            reply = self._said(
                turn,
                Decision.CLARIFY,
                with_detail(Reason.NEEDS_CASE, "order_number"),
                self.settings.order_number_message,
                confidence=round(understood.chosen.probability, 4),
            )
        else:
            reply = self._handoff(
                turn, with_detail(Reason.NEEDS_CASE, "an agent must look at the case")
            )
            reply.confidence = round(understood.chosen.probability, 4)
        reply.candidates = list(turn.withheld)  # the agents see why each answer was withheld
        return reply

    def _clarification_choice(self, turn: _Turn) -> str | None:
        """The choice this message takes from the clarifying question before it, if any."""
        last = turn.last
        if last is None or last.decision != Decision.CLARIFY or not last.options:
            return None
        if len(last.options) == 1 and main_act(recognise(turn.message)) is Act.YES:
            return last.options[0]
        return picked_option(turn.message, last.options)

    def _answer_choice(self, turn: _Turn, label: str, question: str | None = None) -> Reply:
        """The customer picked a topic: the best answer of that topic to the question
        they asked before the clarification (`question`: the last message's by default)."""
        classes = self._answer_classes()
        assert turn.last is not None
        question = turn.last.question if question is None else question
        result, hits, infos = self._retrieve(turn, question)
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
            reading = read_hits(classes, result.hits)
            found = [sc.probability for sc in reading.scores if sc.index in wanted]
            probability = round(max(found), 4) if found else None
        if not mine and classes is not None and wanted:
            largest = max(wanted, key=lambda i: classes.classes[i].size)
            kind = classes.classes[largest]
            if kind.case_bound and turn.case is None and self.settings.ask_for_order_number:
                return self._said(
                    turn,
                    Decision.CLARIFY,
                    with_detail(Reason.NEEDS_CASE, AFTER_A_CHOICE),
                    self.settings.order_number_message,
                )
            text = self._own_showable(kind.answer, turn.facts)
            if text and not self._case_allows_text(text, turn.case):
                text = None
            if text is None and turn.case is not None:
                return self._handoff(turn, with_detail(Reason.NEEDS_CASE, turn.case.number))
            if text:
                return self._said(
                    turn,
                    Decision.ANSWER,
                    with_detail(Reason.CONFIDENT, "chosen by the customer"),
                    text,
                    confidence=probability,
                )
        if not mine:
            return self._handoff(turn, str(Reason.CLARIFICATION_FAILED))
        candidates, blocked = self._class_candidates(turn, question, [], mine)
        if not candidates:
            return self._handoff(turn, str(Reason.CLARIFICATION_FAILED))
        winner = self._choose(turn, candidates)
        reply = self._with_status_line(
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
                citations=self._citations_for(winner, mine),
            ),
            turn,
        )
        reply.candidates = [*_scored(candidates), *blocked]
        return reply

    # -- never another customer's specifics (chatbot.dialogue.specifics) ---------------

    def _own_showable(self, text: str, facts: ConversationFacts | None) -> str | None:
        """`_showable` for text with its slots filled; None when it holds another customer's specifics."""
        if self.specifics is not None and facts is not None:
            checked = self.specifics.prepare(text, facts)
            if self._not_usable(checked) is not None:
                return None
            text = checked.text
        return self._showable(text)

    @staticmethod
    def _withheld(
        origin: Origin,
        pair_id: int | None,
        text: str,
        why: str,
        round: int | None = None,
        score: float | None = None,
    ) -> BlockedCandidate:
        return BlockedCandidate(origin, round, pair_id, Blocked.SPECIFICS, why, text, score)

    @staticmethod
    def _not_usable(checked: Checked) -> str | None:
        """Why a filled candidate must not be sent: it holds another customer's specifics,
        or it was about one customer's case (it named their order, parcel, ticket or
        address) and this customer gave none to put in its place: phrased without
        it ("your order has already been dispatched") it would tell this customer about
        someone else's order. A name phrased out ("Hi,") changes nothing of the sort."""
        if not checked.ok:
            return checked.why
        case = sorted({slot for slot in checked.unfilled if slot in CASE_SLOTS})
        if case:
            return (
                f"about another customer's case ({', '.join(case)} not given in this conversation)"
            )
        return None

    def _own_hit(
        self,
        cached: tuple[Hit, float] | None,
        facts: ConversationFacts | None,
        withheld: list[BlockedCandidate],
    ) -> tuple[Hit, float] | None:
        """An approved answer from the cache, slotted and filled for this customer, or None when it cannot be."""
        if cached is None or self.specifics is None or facts is None:
            return cached
        hit, similarity = cached
        checked = self.specifics.prepare(self.specifics.slot(hit.reply_text, facts.known), facts)
        if (why := self._not_usable(checked)) is not None:
            withheld.append(self._withheld(Origin.CACHE, hit.pair_id, hit.reply_text, why))
            return None
        return self._filled_hit(hit, checked.text), similarity

    @staticmethod
    def _filled_hit(hit: Hit, text: str) -> Hit:
        """The hit as this customer may see it: its reply, and the snippet its citation shows
        under the reply (the widget's Sources), filled for them, never the past customer's."""
        snippet = text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"
        return replace(hit, reply_text=text, citation=replace(hit.citation, snippet=snippet))

    def _own_hits(
        self,
        hits: list[Hit],
        infos: dict[int, repo.PairInfo],
        facts: ConversationFacts | None,
        withheld: list[BlockedCandidate],
        case: Case | None = None,
    ) -> list[Hit]:
        """Retrieved past answers as their slotted form (the store's; slotted now when it has
        none yet) filled for this customer; those still holding someone else's specifics are withheld."""
        if self.specifics is None or facts is None:
            return [h for h in hits if self._case_allows(h, case, withheld)]
        kept = []
        for hit in hits:
            info = infos.get(hit.pair_id)
            slotted = (
                info.reply_slotted if info is not None and info.reply_slotted is not None else None
            )
            checked = self.specifics.prepare(
                slotted
                if slotted is not None
                else self.specifics.slot(hit.reply_text, facts.known),
                facts,
            )
            if (why := self._not_usable(checked)) is None:
                kept.append(self._filled_hit(hit, checked.text))
            else:
                withheld.append(
                    self._withheld(
                        Origin.RETRIEVED, hit.pair_id, hit.reply_text, why, score=hit.score
                    )
                )
        # A reply to a customer who had named their order, reporting on it ("the parcel is
        # already on its way; I've asked the carrier..."), is about that order: never told
        # to a customer who named none.
        if not any(kind in facts.values for kind in repo.CASE_IDENTIFIERS):
            about_a_case = [
                h
                for h in kept
                if h.pair_id in infos
                and infos[h.pair_id].case_bound
                and reports_on_a_case(h.reply_text)
            ]
            for hit in about_a_case:
                withheld.append(
                    self._withheld(
                        Origin.RETRIEVED,
                        hit.pair_id,
                        hit.reply_text,
                        "about another customer's case (it reports on the order they named)",
                        score=hit.score,
                    )
                )
            kept = [h for h in kept if h not in about_a_case]
        return [h for h in kept if self._case_allows(h, case, withheld)]

    def _own_candidates(
        self,
        candidates: list[Candidate],
        facts: ConversationFacts | None,
        withheld: list[BlockedCandidate],
    ) -> list[Candidate]:
        """The last check before anything is chosen, whatever wrote the candidate: slots
        filled, and any candidate holding another customer's specifics withheld."""
        if self.specifics is None or facts is None:
            return candidates
        kept = []
        for candidate in candidates:
            checked = self.specifics.prepare(candidate.text, facts)
            if (why := self._not_usable(checked)) is None:
                candidate.text = checked.text
                kept.append(candidate)
            else:
                withheld.append(
                    self._withheld(
                        candidate.origin,
                        candidate.pair_id,
                        candidate.text,
                        why,
                        candidate.round,
                        candidate.score,
                    )
                )
        return kept

    # -- steps -----------------------------------------------------------------------

    def _showable(self, text: str) -> str | None:
        """What of a reply (or the start of one) may be shown to the customer: the text
        redacted, or None when it must not be shown at all (it repeats the system prompt,
        or holds a placeholder)."""
        if self.reveals_prompt(text):
            return None
        shown = self.redactor.redact(text)
        return None if has_placeholder(shown) else shown

    def _generate(
        self,
        writer: ReplyWriter,
        evidence: Evidence,
        history: list[dict[str, str]],
        clock: _Clock,
        emit: Listener,
        live: _LiveText,
        judge: _Judge,
    ) -> tuple[list[Candidate], list[RoundTrace]]:
        s = self.settings

        def draft() -> str:
            with clock.stage("draft"):
                pieces: list[str] = []
                # The draft's words reach the customer as the model writes them, each
                # checked on the way (`_LiveText`); a refined or retrieved winner replaces them.
                for piece in writer.stream(writer.draft_messages(evidence, history)):
                    if not pieces:
                        clock.timings["first_draft_token"] = round(clock.total(), 5)
                    pieces.append(piece)
                    live.add(piece)
                return "".join(pieces)

        def revise(earlier: Sequence[Candidate]) -> str:
            # Retrieve and refine: the best reply so far goes back in as the first past answer.
            best = max(earlier, key=lambda c: c.score)
            with clock.stage("refine"):
                return writer.write(writer.revision_messages(evidence, history, best))

        def on_round(trace: RoundTrace) -> None:
            emit(
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

    def _ranker(self) -> FitScorer | None:
        """The ranker serving now, or None (none trained and kept, or it cannot be loaded)."""
        if self.ranker_source is None:
            return None
        try:
            return self.ranker_source.get()
        except ChatbotError as exc:
            log.warning("the ranker is not available (%s); scoring with the critique", exc)
            return None

    def _stored_cache_lookup(self, message: str) -> tuple[Hit, float] | None:
        """The approved pair in the store whose question matches the message closely
        enough (see `chatbot.dialogue.answer_cache`), as a hit that cites it."""
        with self.database.session() as session:
            match = self.answers.lookup(session, message, self.settings.cache_threshold)
        if match is None:
            return None
        pair = match.pair
        snippet = (
            pair.answer
            if len(pair.answer) <= SNIPPET_CHARS
            else pair.answer[: SNIPPET_CHARS - 1] + "…"
        )
        citation = Citation(
            pair.id,
            pair.conversation_id,
            pair.turn_index,
            pair.source,
            round(match.similarity, 4),
            snippet,
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

    def _cache_lookup(
        self,
        message: str,
        history: Sequence[str],
        hits: Sequence[Hit],
        infos: dict[int, repo.PairInfo],
    ) -> tuple[Hit, float] | None:
        """The closest agent-approved answer whose question matches the message closely
        enough. Only standalone questions are cached: a follow-up ("and how long does
        that take?") depends on the turns before it."""
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

    def _handoff(self, turn: _Turn, reason: str) -> Reply:
        return Reply(
            conversation_id=turn.conversation_id,
            message_id=turn.message_id,
            decision=Decision.HANDOFF,
            reason=reason,
            text="",
            shown_text=self.settings.handoff_message,
            sent=True,
            confidence=None,
            smoothed_confidence=turn.previous_smoothed,
        )

    def _citations_for(self, winner: Candidate, hits: Sequence[Hit]) -> list[Citation]:
        """A retrieved winner cites itself; a draft cites the past answers it agrees with
        (or, failing that, those it was shown)."""
        if winner.pair_id is not None:
            return [h.citation for h in hits if h.pair_id == winner.pair_id]
        shown = hits[: max(self.prompt.evidence_k, 1)]
        agreeing = [h for h in shown if token_f1(winner.text, h.reply_text) >= 0.2]
        return [h.citation for h in (agreeing or shown)]

    def _persist(self, reply: Reply, clock: _Clock, emit: Listener, live: _LiveText) -> Reply:
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
        live.settle(reply.shown_text)
        reply.timings = dict(clock.timings, total=clock.total())
        emit(DialogueEvent(EventKind.STAGE, "done"))
        return reply


def _scored(candidates: list[Candidate]) -> list[KeptCandidate]:
    """What a reply keeps of the candidates that competed: each with its score, best first."""
    return [
        ScoredCandidate(c.origin, c.round, c.pair_id, c.score, c.text, c.critique.components)
        for c in sorted(candidates, key=lambda c: -c.score)
    ]


class _FixedRanker:
    def __init__(self, ranker: FitScorer):
        self.ranker = ranker

    def get(self) -> FitScorer:
        return self.ranker


class _Judge:
    """Scores candidates for one message. With a ranker, a candidate's score is the
    ranker's probability that it fits the conversation, less the critique's penalties
    for facts, links or contact details found in no evidence; the critique's parts and
    problems are kept beside it. Without one, the critique's hand-set score."""

    def __init__(
        self,
        scorer: Scorer,
        evidence: Evidence,
        ranker: FitScorer | None,
        context: list[dict[str, str]],
    ):
        self.scorer = scorer
        self.evidence = evidence
        self.ranker = ranker
        self.context = context

    def score_many(
        self, texts: Sequence[str], own_pair_ids: Sequence[int | None] = ()
    ) -> list[Critique]:
        own = list(own_pair_ids) + [None] * (len(texts) - len(own_pair_ids))
        critiques = [self.scorer.score(t, self.evidence, own_pair_id=o) for t, o in zip(texts, own)]
        if self.ranker is None or not texts:
            return critiques
        try:
            probabilities = self.ranker.score(self.context, list(texts))
        except Exception as exc:
            log.warning(
                "the ranker failed (%s: %s); scoring with the critique for this message",
                type(exc).__name__,
                exc,
            )
            self.ranker = None
            return critiques
        for critique, p, text in zip(critiques, probabilities, texts):
            penalty = penalties(critique.components)
            critique.components = {
                **critique.components,
                "critique": critique.score,
                "ranker": round(float(p), 4),
            }
            critique.score = round(max(0.0, float(p) - penalty), 4) if text.strip() else 0.0
        return critiques

    def thresholds(self, settings: DialogueSettings) -> DialogueSettings:
        """The decision thresholds on the ranker's scale (see `ranker_thresholds`), or the settings' own."""
        if self.ranker is None:
            return settings
        found = ranker_thresholds(settings, getattr(self.ranker, "meta", {}) or {})
        return settings if found is None else settings.model_copy(update=found)


def ranker_thresholds(settings: DialogueSettings, meta: dict[str, Any]) -> dict[str, float] | None:
    """Hand-off and answer thresholds for a ranker, from the probabilities its picks got
    on the validation questions (its meta.json): hand off below the
    `ranker_handoff_quantile` of them, send unreviewed from the `ranker_answer_quantile`.
    None when the ranker recorded none."""
    picks = (
        meta.get("val_pick_probability") or {}
    )  # keyed by str(quantile), as `chatbot.ranking.train` writes them

    def quantile(q: float) -> float | None:
        value = picks.get(str(q))
        return float(value) if isinstance(value, (int, float)) else None

    handoff, answer = (
        quantile(settings.ranker_handoff_quantile),
        quantile(settings.ranker_answer_quantile),
    )
    if handoff is None or answer is None:
        return None
    return {
        "handoff_threshold": round(min(handoff, answer), 4),
        "answer_threshold": round(answer, 4),
    }


class _LiveText:
    """What the customer has been shown of the reply while it is being written: whole
    words only, and only while every prefix passes `showable` (which returns the text as
    it may be shown, or None); at the first one that does not, nothing more is shown
    until the final text settles it (`settle`: the rest of it, or a `replace`)."""

    def __init__(self, emit: Listener, showable: Callable[[str], str | None]):
        self.emit = emit
        self.showable = showable
        self.raw = ""
        self.shown = ""
        self.stopped = False

    def add(self, piece: str) -> None:
        self.raw += piece
        if self.stopped:
            return
        raw = self.raw.lstrip()  # a reply never starts with blank space (drafts are stripped too)
        cut = max(raw.rfind(" "), raw.rfind("\n"))
        if cut <= 0:
            return
        text = self.showable(raw[:cut])
        if text is None or not text.startswith(self.shown):
            self.stopped = True
            return
        if len(text) > len(self.shown):
            self.emit(DialogueEvent(EventKind.TOKEN, text[len(self.shown) :]))
            self.shown = text

    def settle(self, final: str) -> None:
        """Bring what was shown to the final text: its remaining words, or a replace."""
        if self.shown and not final.startswith(self.shown):
            self.emit(DialogueEvent(EventKind.REPLACE, final))
            return
        rest = final[len(self.shown) :]
        pieces = re.findall(r"\s*\S+", rest)
        trailing = rest[len("".join(pieces)) :]
        for piece in (
            pieces[:-1] + [pieces[-1] + trailing] if pieces else ([trailing] if trailing else [])
        ):
            self.emit(DialogueEvent(EventKind.TOKEN, piece))
        self.shown = final
