"""The dialogue manager: one customer message in, one stored `Reply` out.

For each message: store it (committed before anything else runs, so a crash never loses
it); stay silent if a human has taken over; hand off at once when the customer asks for
a person or repeats the same question; answer from an agent-approved answer when one
matches closely (the answer cache: looked up in the store, so an approval counts at
once, and among the retrieved past answers; before any guess about scope); retrieve
evidence with the conversation history; hand off when the request is out of scope;
otherwise draft with the reply model, refine over a few critique-and-revise rounds,
let the drafts compete with the best retrieved past answers under one scoring
function, smooth the winner's confidence across turns and decide. The reply record
(text, citations, confidence, decision and reason, refinement trace, candidates, time
per stage) is stored and returned; a hand-off also puts the conversation in the
agents' queue (reason, time, nobody assigned yet).

What it keeps and shows is guarded: the customer's message is cleaned of control and
bidirectional characters and redacted (e-mail addresses, phone and card numbers,
handles; the `ingest` redaction settings, the same as imports) before it is stored,
retrieved with or shown to a model, so the original is kept nowhere; the reply is
redacted the same way before it is stored and sent (addresses that the company's own
past answers or notices contain are allowed); a candidate that repeats the system
prompt is never sent (nor streamed further as a draft); only live, open
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from chatbot.dialogue import repository as repo
from chatbot.dialogue.answer_cache import AnswerCatalogue
from chatbot.dialogue.critique import Evidence, Scorer, evidence_from_hits
from chatbot.dialogue.handoff import asks_for_human, repeats
from chatbot.dialogue.policy import decide, smooth
from chatbot.dialogue.records import Candidate, Reply, RoundTrace
from chatbot.dialogue.refine import refine
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.text import question_similarity, token_f1
from chatbot.dialogue.writer import ReplyWriter
from chatbot.training.prompt import PromptFormat
from chatbot.training.settings import TrainingSettings
from chatbot.errors import InputError
from chatbot.ingest.redact import EMAIL_RE, Redactor
from chatbot.ingest.sanitize import clean_text
from chatbot.ingest.settings import IngestSettings
from chatbot.retrieval.types import Citation, Hit, Retriever, SearchResult
from chatbot.store.conversations import add_message, start_conversation
from chatbot.store.database import Database

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
SNIPPET_CHARS = 300
_ROLE = {"customer": "user", "agent": "assistant", "bot": "assistant"}
# A reply sharing this many consecutive words with the system prompt repeats it.
PROMPT_LEAK_WORDS = 6
_WORD_RE = re.compile(r"\w+")


def live_redactor(ingest: IngestSettings | None) -> Redactor:
    """The redactor for live messages: the same kinds and allowlist as imports."""
    ingest = ingest or IngestSettings()
    return Redactor(ingest.redact_kinds if ingest.redact else (), ingest.redact_allowlist)


def _shingles(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class ReplyModelSource(Protocol):
    def get(self) -> tuple[Any, Any, str]:
        """(model, tokenizer, version name) of the reply model to use now."""
        ...


@dataclass
class DialogueEvent:
    """One step of answering, for streaming UIs: `stage` (a stage started), `round` (a
    refinement round finished; `data` is its RoundTrace), `draft` (a piece of the first
    draft while it is generated), `token` (a piece of the final text), `done` (`reply`)."""

    kind: str
    text: str = ""
    data: Any = None
    reply: Reply | None = None


Listener = Callable[[DialogueEvent], None]


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._started = time.perf_counter()

    def stage(self, name: str):
        clock = self

        class _Stage:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                clock.timings[name] = round(clock.timings.get(name, 0.0) + time.perf_counter() - self.t, 5)

        return _Stage()

    def total(self) -> float:
        return round(time.perf_counter() - self._started, 5)


class DialogueManager:
    def __init__(
        self, settings: DialogueSettings, database: Database, retriever: Retriever, reply_source: ReplyModelSource | None,
        prompt: PromptFormat | None = None, ingest: IngestSettings | None = None,
    ):
        self.settings = settings
        # Live messages are redacted like imports (`ingest` settings; default: all kinds).
        self.redactor = live_redactor(ingest)
        # Serving prompts exactly as training did (the `training` settings section).
        self.prompt = prompt or PromptFormat.from_settings(TrainingSettings())
        self.database = database
        self.retriever = retriever
        self.reply_source = reply_source
        self.scorer = Scorer(settings)
        self._quantized: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.answers = AnswerCatalogue(settings.cache_origins)
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
        addresses = {re.sub(r"\s", "", m.group(0)).lower() for t in trusted if t and "@" in t for m in EMAIL_RE.finditer(t)}
        if not addresses or not self.redactor.kinds:
            return self.redactor
        return Redactor(self.redactor.kinds, [*self.redactor.allow, *sorted(addresses)])

    def _redact_reply(self, reply: Reply, trusted: Sequence[str]) -> Reply:
        """Every text of the reply record redacted: what is sent, stored and reviewed."""
        redactor = self._reply_redactor([*trusted, self.settings.handoff_message, self.settings.hold_message])
        reply.text = redactor.redact(reply.text)
        reply.shown_text = redactor.redact(reply.shown_text)
        for candidate in reply.candidates:
            if isinstance(candidate.get("text"), str):
                candidate["text"] = redactor.redact(candidate["text"])
        for step in reply.trace:
            step.text = redactor.redact(step.text)
        return reply

    # -- the reply model -------------------------------------------------------------

    def reply_model(self) -> tuple[Any, Any, str]:
        """The model to generate with: the source's, or its int8 copy when configured
        (made once per version and kept)."""
        if self.reply_source is None:
            raise RuntimeError("no reply model source configured")
        model, tokenizer, version = self.reply_source.get()
        if self.settings.quantize != "int8":
            return model, tokenizer, version
        with self._lock:
            if version not in self._quantized:
                from chatbot.dialogue.compress import quantize_int8

                self._quantized = {version: quantize_int8(model)}
            return self._quantized[version], tokenizer, f"{version}+int8"

    # -- answering ---------------------------------------------------------------------

    def respond(
        self, message: str, conversation_id: int | None = None, *, source: str = "widget", listener: Listener | None = None
    ) -> Reply:
        """Answer one customer message; see the module docstring for the steps."""
        emit = listener or (lambda event: None)
        message = clean_text(message or "").strip()
        if not message:
            raise InputError("the message is empty")
        if len(message) > MAX_MESSAGE_CHARS:
            raise InputError(f"the message is {len(message)} characters long; the limit is {MAX_MESSAGE_CHARS}")
        clock = _Clock()
        s = self.settings
        # From here on only the redacted message exists: stored, retrieved with, prompted.
        message = self.redactor.redact(message)

        with clock.stage("store"):
            with self.database.session() as session:
                if conversation_id is None:
                    conversation_id = start_conversation(session=session, source=source).id
                # Refused (InputError) for imported or closed conversations.
                stored = add_message(session=session, conversation_id=conversation_id, role="customer", text=message)
                conversation = repo.get_conversation(session=session, conversation_id=conversation_id)
                session.refresh(conversation)  # as it is now that this turn holds its lock
                state = conversation.state
                turns = repo.earlier_turns(
                    session=session, conversation_id=conversation_id, before_turn=stored.turn_index, limit=s.history_turns
                )
                earlier_customer = repo.earlier_customer_texts(
                    session=session, conversation_id=conversation_id, before_turn=stored.turn_index
                )
                previous_smoothed = repo.last_smoothed_confidence(session=session, conversation_id=conversation_id)
        history_text = [t.text for t in turns]
        history_chat = [{"role": _ROLE[t.role], "content": t.text} for t in turns if t.role in _ROLE]
        base = dict(conversation_id=conversation_id, message_id=stored.id)
        log.debug("conversation %s, message %s: %r", conversation_id, stored.id, message)
        trusted: list[str] = []  # texts whose e-mail addresses a reply may repeat

        def finish(reply: Reply) -> Reply:
            return self._persist(self._redact_reply(reply, trusted), clock, emit)

        if state == "handed_off":
            return finish(Reply(**base, decision="silent", reason="human_in_charge", text="", shown_text="",
                                sent=False, confidence=None, smoothed_confidence=previous_smoothed))
        if asks_for_human(message):
            return finish(self._handoff(base, "customer_asked_for_human", previous_smoothed))
        asked = repeats(message, earlier_customer, similarity=s.loop_similarity)
        if asked >= s.loop_repeats:
            return finish(self._handoff(base, f"loop: asked {asked} times", previous_smoothed))

        def cache_hit(hit: Hit, similarity: float) -> Reply:
            confidence = round(similarity, 4)
            smoothed = round(smooth(previous_smoothed, confidence, s.smoothing), 4)
            return finish(Reply(
                **base, decision="answer", reason="cache_hit", text=hit.reply_text, shown_text=hit.reply_text,
                sent=True, confidence=confidence, smoothed_confidence=smoothed,
                citations=[self._citation(hit)],
                candidates=[{"origin": "cache", "pair_id": hit.pair_id, "score": confidence, "text": hit.reply_text}],
            ))

        # An answer an agent approved for this very question beats any guess about scope.
        if s.cache_enabled and not history_text:
            with clock.stage("cache"):
                cached = self._stored_cache_lookup(message)
            if cached is not None and not self.reveals_prompt(cached[0].reply_text):
                trusted.append(cached[0].reply_text)
                return cache_hit(*cached)

        emit(DialogueEvent("stage", "retrieving"))
        with clock.stage("retrieve"):
            result: SearchResult = self.retriever.search(message, history=history_text, k=s.evidence_k)
        hits = list(result.hits)
        trusted.extend(h.reply_text for h in hits)
        with clock.stage("pairs"):
            with self.database.session() as session:
                infos = repo.pair_infos(session=session, pair_ids=[h.pair_id for h in hits])
        if s.cache_enabled:
            # Approved pairs older than the catalogue keeps are still found through the index.
            with clock.stage("cache"):
                cached = self._cache_lookup(message, history_text, hits, infos)
            if cached is not None and not self.reveals_prompt(cached[0].reply_text):
                return cache_hit(*cached)
        top_topic = infos[hits[0].pair_id].labels.get("topic") if hits and hits[0].pair_id in infos else None
        if s.handoff_on_out_of_scope and (result.out_of_scope or not hits or top_topic in s.out_of_scope_topics):
            why = "out_of_scope" if result.out_of_scope or not hits else f"out_of_scope: past answers are labelled {top_topic}"
            reply = self._handoff(base, why, previous_smoothed)
            reply.citations = [self._citation(h) for h in hits[:1]]
            return finish(reply)
        if top_topic in s.handoff_topics:
            reply = self._handoff(base, f"past answers hand off ({top_topic})", previous_smoothed)
            reply.citations = [self._citation(hits[0])]
            return finish(reply)

        evidence = evidence_from_hits(message, history_text, hits, earlier_customer)
        candidates: list[Candidate] = []
        trace: list[RoundTrace] = []
        version = None
        generation_error = None
        if s.generate and self.reply_source is not None:
            emit(DialogueEvent("stage", "drafting"))
            try:
                with clock.stage("load_model"):
                    model, tokenizer, version = self.reply_model()
                writer = ReplyWriter(model, tokenizer, s, self.prompt)
                candidates, trace = self._generate(writer, evidence, history_chat, clock, emit)
            except Exception as exc:  # noqa: BLE001 - any model failure falls back to retrieved answers
                log.warning("reply generation failed for conversation %s: %s", conversation_id, exc, exc_info=True)
                generation_error = f"{type(exc).__name__}: {exc}"
        with clock.stage("fuse"):
            for hit in hits[: s.fuse_retrieved]:
                critique = self.scorer.score(hit.reply_text, evidence, own_pair_id=hit.pair_id)
                candidates.append(Candidate(hit.reply_text, "retrieved", critique, pair_id=hit.pair_id))
        # The output guard: nothing that repeats the system prompt is sent, whatever asked for it.
        blocked = [{"origin": c.origin, "round": c.round, "pair_id": c.pair_id, "blocked": "repeats the system prompt"}
                   for c in candidates if self.reveals_prompt(c.text)]
        if blocked:
            candidates = [c for c in candidates if not self.reveals_prompt(c.text)]
            log.info("conversation %s: %d candidate(s) repeating the system prompt withheld", conversation_id, len(blocked))
        if not candidates:
            reply = self._handoff(base, "assistant_failed" if generation_error else "no_candidate", previous_smoothed)
            reply.model_version = version
            reply.candidates = ([{"error": generation_error}] if generation_error else []) + blocked
            return finish(reply)
        winner = max(candidates, key=lambda c: c.score)
        confidence = round(winner.score, 4)
        smoothed = round(smooth(previous_smoothed, confidence, s.smoothing), 4)
        decision, reason = decide(s, confidence=confidence, smoothed=smoothed)
        if decision == "handoff":
            reply = self._handoff(base, reason, previous_smoothed)
            reply.text, reply.confidence, reply.smoothed_confidence = winner.text, confidence, smoothed
        else:
            shown = winner.text if decision != "held" else s.hold_message
            reply = Reply(**base, decision=decision, reason=f"{reason}: {winner.origin} won", text=winner.text,
                          shown_text=shown, sent=decision != "held", confidence=confidence, smoothed_confidence=smoothed,
                          review_status=None if decision == "answer" else "pending")
        reply.citations = self._citations_for(winner, hits, evidence)
        reply.trace = trace
        reply.model_version = version
        reply.candidates = [
            {"origin": c.origin, "round": c.round, "pair_id": c.pair_id, "score": c.score, "text": c.text,
             "components": c.critique.components}
            for c in sorted(candidates, key=lambda c: -c.score)
        ] + ([{"error": generation_error}] if generation_error else []) + blocked
        return finish(reply)

    def respond_stream(self, message: str, conversation_id: int | None = None, *, source: str = "widget") -> Iterator[DialogueEvent]:
        """`respond`, as events: stages and refinement rounds while it thinks (and the
        first draft piece by piece), then the text shown to the customer word by word,
        then `done` with the stored reply. Errors are raised from the iterator."""
        events: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["reply"] = self.respond(message, conversation_id, source=source, listener=events.put)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                outcome["error"] = exc
            finally:
                events.put(None)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        while (event := events.get()) is not None:
            yield event
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        reply: Reply = outcome["reply"]
        for piece in re.findall(r"\s*\S+", reply.shown_text):
            yield DialogueEvent("token", piece)
        yield DialogueEvent("done", reply=reply)

    def hand_back(self, conversation_id: int) -> None:
        """An agent gives a handed-off conversation back to the assistant (checking who
        may do so is `chatbot.support.review.hand_back`'s job)."""
        with self.database.session() as session:
            repo.hand_back(session=session, conversation_id=conversation_id)

    def request_human(self, conversation_id: int) -> str | None:
        """The customer asked for a person with the widget's button: hand off and show
        the hand-off notice, which is returned (None when a human is already in charge)."""
        with self.database.session() as session:
            message = repo.request_human(session=session, conversation_id=conversation_id,
                                         message=self.settings.handoff_message)
        return message.text if message is not None else None

    # -- steps -----------------------------------------------------------------------

    def _generate(self, writer: ReplyWriter, evidence: Evidence, history: list[dict[str, str]], clock: _Clock,
                  emit: Listener) -> tuple[list[Candidate], list[RoundTrace]]:
        s = self.settings

        def draft() -> str:
            with clock.stage("draft"):
                pieces = []
                shown = True
                for piece in writer.stream(writer.draft_messages(evidence, history)):
                    pieces.append(piece)
                    # A draft that starts repeating the system prompt is not streamed further.
                    shown = shown and not self.reveals_prompt("".join(pieces))
                    if shown:
                        emit(DialogueEvent("draft", piece))
                return "".join(pieces)

        def revise(earlier: Sequence[Candidate]) -> str:
            with clock.stage("refine"):
                return writer.write(writer.revision_messages(evidence, history, earlier))

        def on_round(trace: RoundTrace) -> None:
            emit(DialogueEvent("round", f"round {trace.round}: score {trace.score:.2f}", data=trace))

        def score(text: str):
            with clock.stage("critique"):
                return self.scorer.score(text, evidence)

        result = refine(draft, revise, score,
                        max_rounds=s.max_rounds, min_improvement=s.min_improvement, on_round=on_round)
        # Only the best draft competes: the others lost to it already.
        return [result.best], result.trace

    def _stored_cache_lookup(self, message: str) -> tuple[Hit, float] | None:
        """The approved pair in the store whose question matches the message closely
        enough (see `chatbot.dialogue.answer_cache`), as a hit that cites it."""
        with self.database.session() as session:
            match = self.answers.lookup(session, message, self.settings.cache_threshold)
        if match is None:
            return None
        pair = match.pair
        snippet = pair.answer if len(pair.answer) <= SNIPPET_CHARS else pair.answer[: SNIPPET_CHARS - 1] + "…"
        citation = Citation(pair.id, pair.conversation_id, pair.turn_index, pair.source, round(match.similarity, 4), snippet)
        hit = Hit(pair_id=pair.id, score=match.similarity, context_text=pair.question, reply_text=pair.answer,
                  citation=citation, scores={"question_similarity": match.similarity})
        return hit, match.similarity

    def _cache_lookup(self, message: str, history: Sequence[str], hits: Sequence[Hit],
                      infos: dict[int, repo.PairInfo]) -> tuple[Hit, float] | None:
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
            if similarity >= self.settings.cache_threshold and (best is None or similarity > best[1]):
                best = (hit, similarity)
        return best

    def _handoff(self, base: dict[str, Any], reason: str, previous_smoothed: float | None) -> Reply:
        return Reply(**base, decision="handoff", reason=reason, text="", shown_text=self.settings.handoff_message,
                     sent=True, confidence=None, smoothed_confidence=previous_smoothed)

    @staticmethod
    def _citation(hit: Hit) -> dict[str, Any]:
        return asdict(hit.citation)

    def _citations_for(self, winner: Candidate, hits: Sequence[Hit], evidence: Evidence) -> list[dict[str, Any]]:
        """A retrieved winner cites itself; a draft cites the past answers it agrees with
        (or, failing that, those it was shown)."""
        if winner.pair_id is not None:
            return [self._citation(h) for h in hits if h.pair_id == winner.pair_id]
        shown = hits[: max(self.prompt.evidence_k, 1)]
        agreeing = [h for h in shown if token_f1(winner.text, h.reply_text) >= 0.2]
        return [self._citation(h) for h in (agreeing or shown)]

    def _persist(self, reply: Reply, clock: _Clock, emit: Listener) -> Reply:
        with clock.stage("persist"):
            record = {k: v for k, v in reply.to_dict().items() if k not in ("id", "reply_message_id")}
            with self.database.session() as session:
                if reply.decision == "handoff":
                    repo.hand_off(session=session, conversation_id=reply.conversation_id, reason=reply.reason)
                row = repo.save_reply(session=session, record=record, bot_text=reply.shown_text or None)
                reply.id, reply.reply_message_id = row.id, row.reply_message_id
                # Stored with every stage but the final commit.
                row.timings = reply.timings = dict(clock.timings, total=clock.total())
        reply.timings = dict(clock.timings, total=clock.total())
        emit(DialogueEvent("stage", "done"))
        return reply
