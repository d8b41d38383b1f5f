"""The scoring function: one 0-1 score for any candidate reply, generated or retrieved,
judged against the customer's question and the retrieved evidence, plus the problems
found, in words a model can act on. It measures; it neither writes nor decides.

Parts (each 0-1): relevance (the reply says what past answers to similar questions
said), support (other past answers agree with it), grounding (its content words appear
in the evidence or the conversation), length, and absence of repetition. Penalties: each
link, e-mail address, phone number, price, number or promise found in no evidence and not
in the customer's own words; heavier for personal data (e-mail addresses, phone numbers)
that the shop's answers never contain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chatbot.dialogue.records import Critique
from chatbot.dialogue.settings import DialogueSettings
from chatbot.retrieval.types import Hit
from chatbot.text.measures import (
    Facts,
    content_words,
    extract_facts,
    question_similarity,
    repetition_ratio,
    token_f1,
    words,
)

WEIGHTS = {"relevance": 0.35, "support": 0.2, "grounding": 0.25, "length": 0.1, "fluency": 0.1}
INVENTED_PENALTY = 0.15
PII_PENALTY = 0.4


@dataclass
class EvidenceItem:
    pair_id: int
    question: str  # the customer context the past answer replied to
    answer: str
    retrieval_score: float


@dataclass
class Evidence:
    """Everything a candidate is judged against, prepared once per message."""

    query: str
    history: list[str]
    items: list[EvidenceItem]
    customer_texts: list[str] = field(default_factory=list)
    question_fit: dict[int, float] = field(default_factory=dict)
    _facts: Facts | None = None
    _customer_facts: Facts | None = None
    # The content words of the message, the history and the past answers and questions.
    vocabulary: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        for item in self.items:
            # How well the past question fits ours: lexical overlap with the message
            # (and, for follow-ups, with the last turns) blended with the retriever's score.
            lexical = max(
                [
                    question_similarity(self.query, line)
                    for line in item.question.splitlines()
                    if line.strip()
                ]
                + [
                    question_similarity(" ".join(self.history[-2:] + [self.query]), item.question),
                    0.0,
                ]
            )
            self.question_fit[item.pair_id] = 0.5 * lexical + 0.5 * min(
                max(item.retrieval_score, 0.0), 1.0
            )
        self._facts = Facts()
        for item in self.items:
            self._facts = self._facts | extract_facts(item.answer)
        self._customer_facts = Facts()
        for text in [self.query, *self.customer_texts]:
            self._customer_facts = self._customer_facts | extract_facts(text)
        vocabulary: set[str] = set()
        for text in [
            self.query,
            *self.history,
            *(i.answer for i in self.items),
            *(i.question for i in self.items),
        ]:
            vocabulary.update(content_words(text))
        self.vocabulary = vocabulary


class Scorer:
    def __init__(self, settings: DialogueSettings):
        self.settings = settings

    def score(self, text: str, evidence: Evidence, *, own_pair_id: int | None = None) -> Critique:
        issues: list[str] = []
        if not text.strip():
            return Critique(0.0, {k: 0.0 for k in WEIGHTS}, ["The reply is empty."])
        relevance = support = 0.0
        for item in evidence.items:
            agreement = token_f1(text, item.answer)
            fit = evidence.question_fit.get(item.pair_id, 0.0)
            if item.pair_id == own_pair_id:
                relevance = max(relevance, fit)
            else:
                relevance = max(relevance, fit * agreement)
                support = max(support, fit * agreement)
        if relevance < 0.3:
            issues.append(
                "It does not answer the customer's question the way our past answers do; say what they say."
            )

        own = content_words(text)
        vocabulary = evidence.vocabulary
        grounding = sum(w in vocabulary for w in own) / len(own) if own else 0.0
        if grounding < 0.7:
            strange = sorted({w for w in own if w not in vocabulary})[:8]
            issues.append(
                f"It uses words found in no past answer ({', '.join(strange)}); stick to the facts in the past answers."
            )

        n = len(words(text))
        s = self.settings
        if n < s.min_words:
            length = n / s.min_words
            issues.append("It is too short; give the customer a complete answer.")
        elif n > s.max_words:
            length = max(0.0, 1.0 - (n - s.max_words) / s.max_words)
            issues.append(f"It is too long ({n} words); keep it under {s.max_words} words.")
        else:
            length = 1.0
        repeated = repetition_ratio(text)
        fluency = 1.0 - min(1.0, 2 * repeated)
        if repeated > 0.1:
            issues.append("It repeats itself; say each thing once.")

        facts = extract_facts(text)
        known, customer = evidence._facts, evidence._customer_facts
        invented = []
        for kind in ("urls", "prices", "numbers", "promises"):
            for fact in getattr(facts, kind) - getattr(known, kind) - getattr(customer, kind):
                invented.append(fact)
        leaked = [
            f
            for kind in ("emails", "phones")
            for f in getattr(facts, kind) - getattr(known, kind) - getattr(customer, kind)
        ]
        if invented:
            issues.append(
                f"It states things no past answer says ({', '.join(sorted(invented)[:6])}); remove them."
            )
        if leaked:
            issues.append("It contains contact details that are not the shop's; remove them.")

        components = {
            "relevance": round(relevance, 4),
            "support": round(support, 4),
            "grounding": round(grounding, 4),
            "length": round(length, 4),
            "fluency": round(fluency, 4),
            "invented": float(len(invented)),
            "personal_data": float(len(leaked)),
        }
        score = sum(WEIGHTS[k] * components[k] for k in WEIGHTS) - penalties(components)
        return Critique(round(min(1.0, max(0.0, score)), 4), components, issues)


def penalties(components: dict[str, float]) -> float:
    """What facts found in no evidence (`invented`) and contact details that are not the
    company's (`personal_data`) take off a score, whoever gave the score."""
    return min(
        0.6, INVENTED_PENALTY * components.get("invented", 0.0)
    ) + PII_PENALTY * components.get("personal_data", 0.0)


def evidence_from_hits(
    query: str, history: Sequence[str], hits: Sequence[Hit], customer_texts: Sequence[str] = ()
) -> Evidence:
    """Evidence built from `chatbot.retrieval.types.Hit`s."""
    items = [EvidenceItem(h.pair_id, h.context_text, h.reply_text, float(h.score)) for h in hits]
    return Evidence(
        query=query, history=list(history), items=items, customer_texts=list(customer_texts)
    )
