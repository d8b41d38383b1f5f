"""How each evaluated variant answers one turn, timed:

- `knn`: the floor every other variant must clear: the customer's messages of the
  conversation so far, embedded as one text with the index's embedder, and the reply of
  the indexed pair whose customer messages are closest; never hands off;
- `retrieval`: the best retrieved past answer, sent unless the retriever calls the
  message out of scope (then the turn is handed off);
- `ranker`: the retrieved past answers reordered by the learned ranker
  (`chatbot.ranking`), its best sent; the same hand-offs as `retrieval`;
- `base` / `trained`: one pass of a reply model (the untrained base, or the promoted
  version) on the prompt training uses (`chatbot.text.prompt`), with the retrieved
  past answers as evidence; never hands off;
- `refined`: the full dialogue manager (retrieval, answer cache, drafting, critique and
  revision rounds, candidate fusion, smoothing, the hand-off decision), on a fresh
  conversation holding the turns before the evaluated one; `refined@N` the same with
  N refinement rounds (`dialogue.max_rounds`) and a draft on every turn.

A past answer is sent as the dialogue manager would send it: its slots
(`{customer_name}`, `{order_number}`...) filled from this conversation or phrased out.

Every variant sees the real conversation up to the evaluated turn, never its own
earlier replies. A prediction's `text` is what the customer was sent as an answer, and
empty when the turn was handed off, held for an agent or left silent: a reply nobody
received is kept apart (`unsent`) and never scored. Building the store, the retriever and the models is `replies`' job;
scoring the replies is `metrics`'."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from chatbot.dialogue.records import SENT_REPLIES, Decision, Reason
from chatbot.evaluation.items import EvalItem
from chatbot.text.prompt import PromptFormat, PromptSettings

if TYPE_CHECKING:
    from torch.nn import Module
    from transformers import PreTrainedTokenizerBase

    from chatbot.dialogue.manager import DialogueManager, FitScorer
    from chatbot.dialogue.model_wait import LoadedModel
    from chatbot.retrieval.retriever import PairRetriever
    from chatbot.retrieval.types import Hit
    from chatbot.store.database import Database

VARIANTS = ("knn", "retrieval", "ranker", "base", "trained", "refined")
MAX_ROUNDS_VARIANT = 5  # refined@0 .. refined@5


def variant_base(name: str) -> str:
    """`refined@2` -> `refined`; other names as they are."""
    return name.split("@", 1)[0]


def check_variant(name: str) -> str | None:
    """Why `name` is not a variant, or None."""
    base, _, rounds = name.partition("@")
    if base not in VARIANTS:
        return f"unknown variant {name!r}"
    if rounds or "@" in name:
        if base != "refined":
            return f"{name!r}: only refined takes @rounds"
        if not rounds.isdigit() or int(rounds) > MAX_ROUNDS_VARIANT:
            return f"{name!r}: rounds must be 0..{MAX_ROUNDS_VARIANT}"
    return None


ANSWERED_DECISIONS = SENT_REPLIES


class PredictionCitation(TypedDict):
    """A cited past answer as the evaluation report keeps it (no snippet)."""

    pair_id: int
    conversation_id: int | None
    turn_index: int | None
    source: str
    score: float


# Fills a past answer's slots for the evaluated conversation (`SlotFiller`), or not.
Fill = Callable[[str, EvalItem], str]


@dataclass
class Prediction:
    """A variant's outcome for one turn. `text` is the answer the customer was sent (the
    only text scored), "" when `answered` is false; `shown_text` is whatever the
    customer saw (the answer, the hand-off or hold notice, or nothing); `unsent` is a
    reply that was written or found but not sent (a held draft, the best retrieved
    answer of an out-of-scope turn), for reading, never scored."""

    text: str
    seconds: float
    decision: Decision = Decision.ANSWER
    reason: str = ""
    citations: list[PredictionCitation] = field(default_factory=list)
    model_version: str | None = None
    shown_text: str = ""
    unsent: str = ""

    @property
    def answered(self) -> bool:
        return self.decision in ANSWERED_DECISIONS

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decision": str(self.decision), "answered": self.answered}


class Variant(Protocol):
    name: str

    def predict(self, item: EvalItem) -> Prediction: ...


def _citation(hit: Hit) -> PredictionCitation:
    c = hit.citation
    return {
        "pair_id": c.pair_id,
        "conversation_id": c.conversation_id,
        "turn_index": c.turn_index,
        "source": c.source,
        "score": round(float(c.score), 4),
    }


class SlotFiller:
    """A past answer as the dialogue manager sends it: slots filled from the evaluated
    conversation (the customer's own name or order number) or phrased out."""

    def __init__(self, database: Database | None):
        from chatbot.dialogue.specifics import SpecificsGuard

        self.guard = SpecificsGuard(database) if database is not None else None

    def __call__(self, text: str, item: EvalItem) -> str:
        if self.guard is None or "{" not in text:
            return text
        customer = [t["text"] for t in item.context if t.get("role") == "customer"]
        others = [t["text"] for t in item.context if t.get("role") != "customer"]
        return self.guard.fill(text, self.guard.facts(customer, others))[0]


def _no_fill(text: str, item: EvalItem) -> str:
    return text


def customer_text(context: list[dict[str, str]]) -> str:
    """What `knn` embeds of a conversation: its customer messages, oldest first, as one text."""
    return "\n".join(
        t["text"] for t in context if t.get("role") == "customer" and t.get("text", "").strip()
    )


class KnnVariant:
    """The plain nearest neighbour (see the module docstring)."""

    name = "knn"

    def __init__(
        self,
        retriever: PairRetriever,
        database: Database,
        fill: Fill = _no_fill,
        batch_size: int = 64,
    ):
        from sqlalchemy import select

        from chatbot.retrieval.embedding import embed_texts
        from chatbot.store.schema import TrainingPair

        self.retriever = retriever
        self.fill = fill
        indexed = {r.id: r for r in retriever.records}
        with database.session() as session:
            rows = session.execute(
                select(TrainingPair.id, TrainingPair.context).where(
                    TrainingPair.id.in_(list(indexed))
                )
            ).all()
        texts = {pair_id: customer_text(list(context or [])) for pair_id, context in rows}
        self.records = [indexed[i] for i in sorted(texts) if texts[i]]
        self.vectors = embed_texts(
            retriever.model, [texts[r.id] for r in self.records], batch_size=batch_size
        )

    def predict(self, item: EvalItem) -> Prediction:
        from chatbot.retrieval.embedding import embed_texts

        started = time.perf_counter()
        if not self.records:
            return Prediction(
                "", time.perf_counter() - started, decision=Decision.HANDOFF, reason=Reason.NO_HITS
            )
        vector = embed_texts(self.retriever.model, [customer_text(item.context) or item.message])[0]
        row = int((self.vectors @ vector).argmax())
        record = self.records[row]
        text = self.fill(record.target, item)
        seconds = time.perf_counter() - started
        citation: PredictionCitation = {
            "pair_id": record.id,
            "conversation_id": record.conversation_id,
            "turn_index": record.turn_index,
            "source": record.source,
            "score": round(float(self.vectors[row] @ vector), 4),
        }
        return Prediction(text, seconds, citations=[citation], shown_text=text)


class RetrievalVariant:
    name = "retrieval"

    def __init__(self, retriever: PairRetriever, k: int = 1, fill: Fill = _no_fill):
        self.retriever = retriever
        self.k = max(1, k)
        self.fill = fill

    def predict(self, item: EvalItem) -> Prediction:
        started = time.perf_counter()
        result = self.retriever.search(
            item.message, history=[t["text"] for t in item.history], k=self.k
        )
        if not result.hits:
            return Prediction(
                "", time.perf_counter() - started, decision=Decision.HANDOFF, reason=Reason.NO_HITS
            )
        top = self.choose(item, result.hits)
        text = self.fill(top.reply_text, item)
        seconds = time.perf_counter() - started
        if result.out_of_scope:
            return Prediction(
                "", seconds, decision=Decision.HANDOFF, reason=Reason.OUT_OF_SCOPE, unsent=text
            )
        return Prediction(text, seconds, citations=[_citation(top)], shown_text=text)

    def choose(self, item: EvalItem, hits: list[Hit]) -> Hit:
        return hits[0]


class RankerVariant(RetrievalVariant):
    """`retrieval`'s candidates (the best `k`), the learned ranker's favourite sent."""

    name = "ranker"

    def __init__(self, retriever: PairRetriever, ranker: FitScorer, k: int, fill: Fill = _no_fill):
        super().__init__(retriever, k, fill)
        self.ranker = ranker

    def choose(self, item: EvalItem, hits: list[Hit]) -> Hit:
        probabilities = self.ranker.score(
            item.context, [self.fill(h.reply_text, item) for h in hits]
        )
        return hits[max(range(len(hits)), key=lambda i: probabilities[i])]


class OnePassVariant:
    """One generation, no critique and no decision: what the model alone writes."""

    def __init__(
        self,
        name: str,
        model: Module,
        tokenizer: PreTrainedTokenizerBase,
        version: str,
        retriever: PairRetriever,
        prompt: PromptSettings,
        max_new_tokens: int,
    ):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.version = version
        self.retriever = retriever
        self.prompt = PromptFormat.from_settings(prompt)  # the prompt training and serving use
        self.max_new_tokens = max_new_tokens

    def predict(self, item: EvalItem) -> Prediction:
        from chatbot.models.generate import generate_text
        from chatbot.text.measures import token_f1

        started = time.perf_counter()
        hits: list[Hit] = []
        if self.prompt.evidence_k > 0:
            hits = self.retriever.search(
                item.message, history=[t["text"] for t in item.history], k=self.prompt.evidence_k
            ).hits
        messages = self.prompt.messages(item.context, [h.reply_text for h in hits])
        text = generate_text(
            self.model, self.tokenizer, messages, max_new_tokens=self.max_new_tokens
        )
        seconds = time.perf_counter() - started
        # Cited like the dialogue manager cites a draft: the past answers it agrees with,
        # or failing that those it was shown.
        agreeing = [h for h in hits if token_f1(text, h.reply_text) >= 0.2]
        return Prediction(
            text,
            seconds,
            citations=[_citation(h) for h in (agreeing or hits)],
            model_version=self.version,
            shown_text=text,
        )


class FixedReplySource:
    """A reply-model source for the dialogue manager that serves one loaded model."""

    def __init__(self, model: Module, tokenizer: PreTrainedTokenizerBase, version: str):
        self._loaded: LoadedModel = (model, tokenizer, version)

    def get(self) -> LoadedModel:
        return self._loaded


class RefinedVariant:
    def __init__(self, manager: DialogueManager, database: Database, name: str = "refined"):
        self.name = name
        self.manager = manager
        self.database = database

    def predict(self, item: EvalItem) -> Prediction:
        from chatbot.store.conversations import add_message, start_conversation

        with self.database.session() as session:
            conversation_id = start_conversation(
                session=session, source="evaluation", meta={"item": item.key}
            ).id
            for turn in item.history:
                if turn["text"].strip():
                    add_message(
                        session=session,
                        conversation_id=conversation_id,
                        role=turn["role"],
                        text=turn["text"],
                    )
        started = time.perf_counter()
        reply = self.manager.respond(item.message, conversation_id, source="evaluation")
        seconds = time.perf_counter() - started
        # Scored: what the customer was sent in reply (after the manager's output redaction
        # and guards: an answer, an act's reply, a decline, a clarifying question); nothing
        # for a hand-off, a held draft or silence.
        answered = reply.decision in ANSWERED_DECISIONS and reply.sent
        shown = (reply.shown_text or "") if reply.sent else ""
        citations = (
            [
                PredictionCitation(
                    pair_id=c.pair_id,
                    conversation_id=c.conversation_id,
                    turn_index=c.turn_index,
                    source=c.source,
                    score=c.score,
                )
                for c in reply.citations
            ]
            if answered
            else []
        )
        return Prediction(
            shown if answered else "",
            seconds,
            decision=reply.decision,
            reason=reply.reason,
            citations=citations,
            model_version=reply.model_version,
            shown_text=shown,
            unsent="" if answered else (reply.text or ""),
        )
