"""How each evaluated variant answers one turn, timed:

- `retrieval`: the best retrieved past answer (it would hand off when the retriever
  calls the message out of scope);
- `base` / `trained`: one pass of a reply model (the untrained base, or the promoted
  version) on the prompt training uses (`chatbot.training.prompt`), with the retrieved
  past answers as evidence; never hands off;
- `refined`: the full dialogue manager (retrieval, answer cache, drafting, critique and
  revision rounds, candidate fusion, smoothing, the hand-off decision), on a fresh
  conversation holding the turns before the evaluated one.

Every variant sees the real conversation up to the evaluated turn, never its own
earlier replies. Building the store, the retriever and the models is `replies`' job;
scoring the replies is `metrics`'."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from chatbot.evaluation.items import EvalItem

VARIANTS = ("retrieval", "base", "trained", "refined")


@dataclass
class Prediction:
    """A variant's reply to one turn. `text` is what is scored: for `refined`, the
    reply or, when it hands off, the hand-off notice the customer sees; for
    `retrieval`, always the best retrieved answer (`handoff` then says that the
    out-of-scope check would have handed the turn to a human instead)."""

    text: str
    seconds: float
    handoff: bool = False
    decision: str = "answer"
    reason: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)  # pair_id, conversation_id, source
    model_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Variant(Protocol):
    name: str

    def predict(self, item: EvalItem) -> Prediction: ...


def _citation(hit: Any) -> dict[str, Any]:
    c = hit.citation
    return {"pair_id": c.pair_id, "conversation_id": c.conversation_id, "turn_index": c.turn_index, "source": c.source,
            "score": round(float(c.score), 4)}


class RetrievalVariant:
    name = "retrieval"

    def __init__(self, retriever: Any, k: int = 1):
        self.retriever = retriever
        self.k = max(1, k)

    def predict(self, item: EvalItem) -> Prediction:
        started = time.perf_counter()
        result = self.retriever.search(item.message, history=[t["text"] for t in item.history], k=self.k)
        seconds = time.perf_counter() - started
        if not result.hits:
            return Prediction("", seconds, handoff=True, decision="handoff", reason="no_hits")
        top = result.hits[0]
        return Prediction(top.reply_text, seconds, handoff=bool(result.out_of_scope),
                          decision="handoff" if result.out_of_scope else "answer",
                          reason="out_of_scope" if result.out_of_scope else "", citations=[_citation(top)])


class OnePassVariant:
    """One generation, no critique and no decision: what the model alone writes."""

    def __init__(self, name: str, model: Any, tokenizer: Any, version: str, retriever: Any, settings: Any):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.version = version
        self.retriever = retriever
        self.training = settings.training
        self.max_new_tokens = settings.dialogue.max_new_tokens

    def predict(self, item: EvalItem) -> Prediction:
        from chatbot.dialogue.text import token_f1
        from chatbot.models.generate import generate_text
        from chatbot.training.prompt import build_messages

        cfg = self.training
        started = time.perf_counter()
        hits = []
        if cfg.evidence_k > 0:
            hits = self.retriever.search(item.message, history=[t["text"] for t in item.history], k=cfg.evidence_k).hits
        messages = build_messages(item.context, [h.reply_text for h in hits], system_prompt=cfg.system_prompt,
                                  history_turns=cfg.history_turns, evidence_max_chars=cfg.evidence_max_chars)
        text = generate_text(self.model, self.tokenizer, messages, max_new_tokens=self.max_new_tokens)
        seconds = time.perf_counter() - started
        # Cited like the dialogue manager cites a draft: the past answers it agrees with,
        # or failing that those it was shown.
        agreeing = [h for h in hits if token_f1(text, h.reply_text) >= 0.2]
        return Prediction(text, seconds, citations=[_citation(h) for h in (agreeing or hits)], model_version=self.version)


class FixedReplySource:
    """A reply-model source for the dialogue manager that serves one loaded model."""

    def __init__(self, model: Any, tokenizer: Any, version: str):
        self._loaded = (model, tokenizer, version)

    def get(self) -> tuple[Any, Any, str]:
        return self._loaded


class RefinedVariant:
    name = "refined"

    def __init__(self, manager: Any, database: Any):
        self.manager = manager
        self.database = database

    def predict(self, item: EvalItem) -> Prediction:
        from chatbot.store.conversations import add_message, start_conversation

        with self.database.session() as session:
            conversation_id = start_conversation(session=session, source="evaluation", meta={"item": item.key}).id
            for turn in item.history:
                if turn["text"].strip():
                    add_message(session=session, conversation_id=conversation_id, role=turn["role"], text=turn["text"])
        started = time.perf_counter()
        reply = self.manager.respond(item.message, conversation_id, source="evaluation")
        seconds = time.perf_counter() - started
        handoff = reply.decision == "handoff"
        text = reply.shown_text if handoff else reply.text
        citations = [{k: c.get(k) for k in ("pair_id", "conversation_id", "turn_index", "source", "score")}
                     for c in reply.citations]
        return Prediction(text or "", seconds, handoff=handoff, decision=reply.decision, reason=reply.reason,
                          citations=citations, model_version=reply.model_version)
