"""The `dialogue` settings section: answer cache, refinement, candidate fusion,
confidence smoothing, hand-off thresholds, review mode and the int8 reply model.

Only the values and their checks live here; `chatbot.dialogue.manager` reads them from
`settings.dialogue`. Environment: `CHATBOT_DIALOGUE__<KEY>` (e.g.
`CHATBOT_DIALOGUE__MAX_ROUNDS=0` for one-pass generation).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from chatbot.settings_section import Section

DEFAULT_HANDOFF_MESSAGE = (
    "I'm passing you to a human colleague now; they can see everything you've written so far "
    "and will reply here as soon as they can."
)
DEFAULT_HOLD_MESSAGE = "Thanks! A colleague is checking my answer and will get back to you shortly."

CacheOrigin = Literal["imported", "agent_approved", "agent_edited"]


def _approved_origins() -> list[CacheOrigin]:
    return ["agent_approved", "agent_edited"]


class DialogueSettings(Section):
    # Evidence (what the reply model is shown of it is the `prompt` section's: prompt.evidence_k, prompt.history_turns).
    retrieve_k: int = Field(
        default=10,
        ge=1,
        le=50,
        description="Past answers retrieved per message (candidates and evidence).",
    )

    # Answer cache: agent-approved answers sent at once when the question matches closely.
    cache_enabled: bool = True
    cache_threshold: float = Field(
        default=0.85,
        ge=0.0,
        le=1.0,
        description="Similarity (0-1) between the message and an approved pair's question needed for a cache hit.",
    )
    cache_origins: list[CacheOrigin] = Field(
        default_factory=_approved_origins,
        description="Training-pair origins that count as approved answers.",
    )

    # Generation and refinement.
    generate: bool = Field(
        default=True,
        description="Draft replies with the reply model; false = retrieved answers only.",
    )
    max_rounds: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Critique-and-revise rounds after the first draft; 0 = one pass (the default: see docs/dialogue.md).",
    )
    min_improvement: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="A revision must beat the best score by this much, or refinement stops.",
    )
    max_new_tokens: int = Field(default=80, ge=8, le=1024)
    send_retrieved_at: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="A best retrieved answer scoring at least this is sent at once, without generating; "
        "None: answer_threshold (generate only where retrieval alone would not be sent unreviewed).",
    )

    # Bounds on every wait for the reply model; a bound passed falls back to the retrieved answers.
    model_wait_s: float = Field(
        default=20.0,
        gt=0,
        description="Longest wait for the reply model to load; meanwhile turns are answered without it.",
    )
    first_token_s: float = Field(
        default=10.0, gt=0, description="Longest wait for the first words of a draft."
    )
    next_token_s: float = Field(
        default=5.0, gt=0, description="Longest wait between two pieces of a draft."
    )
    generation_s: float = Field(
        default=30.0, gt=0, description="Longest time for one whole draft or revision."
    )
    quantize: Literal["none", "int8"] = Field(
        default="none",
        description="int8: dynamic int8 quantisation of the reply model's Linear layers (CPU).",
    )

    # Candidate fusion and scoring.
    fuse_retrieved: int = Field(
        default=10,
        ge=0,
        le=20,
        description="Best retrieved past answers that compete with the drafts.",
    )
    consensus: bool = Field(
        default=True,
        description="Send the candidate that agrees most with the others (chatbot.dialogue.consensus) where "
        "`chatbot index` found, on the company's validation questions, that this beats the judge's own pick; "
        "false: always the judge's best.",
    )
    min_words: int = Field(default=6, ge=1)
    max_words: int = Field(default=90, ge=2)

    # Decision.
    ranker_handoff_quantile: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="With a learned ranker serving (chatbot ranker train): hand off below the probability its picks "
        "reached on this share of the validation questions (0.05: 95% of in-domain questions clear it); "
        "replaces handoff_threshold, which is on the critique's scale.",
    )
    ranker_answer_quantile: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="With a ranker serving: send unreviewed from the probability its picks reached on all but this "
        "share of the validation questions; replaces answer_threshold (and so send_retrieved_at's default).",
    )
    answer_threshold: float = Field(
        default=0.55, ge=0.0, le=1.0, description="At or above: sent without review."
    )
    handoff_threshold: float = Field(
        default=0.3, ge=0.0, le=1.0, description="Smoothed confidence below this hands off."
    )
    smoothing: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description="EMA weight of the newest turn's confidence (1 = no smoothing).",
    )
    review_mode: Literal["flag", "hold"] = Field(
        default="flag", description="Between the thresholds: send and flag, or hold for an agent."
    )
    loop_repeats: int = Field(
        default=3, ge=2, le=20, description="The same question this many times hands off."
    )
    loop_similarity: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="How alike two messages must be to count as the same question.",
    )
    handoff_on_out_of_scope: bool = True
    out_of_scope_topics: list[str] = Field(
        default_factory=lambda: ["out_of_scope"],
        description="A best past answer whose pair is labelled with one of these topics means out of scope.",
    )
    handoff_topics: list[str] = Field(
        default_factory=lambda: ["handoff"],
        description="A best past answer whose pair is labelled with one of these topics was a hand-off: hand off too.",
    )

    # Understanding the question (`chatbot.retrieval.answer_classes`, fitted by `chatbot index`).
    answer_class_distance: float = Field(
        default=0.35,
        gt=0.0,
        lt=1.0,
        description="Replies closer than this cosine distance (average linkage) form one answer class.",
    )
    within_class: Literal["nearest", "consensus"] = Field(
        default="nearest",
        description="Which answer of the question's class is sent: the one whose past question "
        "and reply are closest to the question, or the consensus choice among them.",
    )
    merge_labelled_classes: bool = Field(
        default=True,
        description="Answer classes the import labelled with the same intent (or topic) are one class.",
    )
    answer_class_temperature: float = Field(
        default=0.05, gt=0.0, le=1.0, description="Softmax temperature of the class vote."
    )
    fit_answer_at: float = Field(
        default=0.85,  # chosen on the demo shop's natural validation questions (docs/customer_answers.md)
        ge=0.0,
        le=1.0,
        description="The fit model's probability that the best class is right, at or above which "
        "its answer is sent; below it the assistant asks which topic is meant (or declines, or hands off).",
    )
    fit_min_coverage: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description="The fit model decides only where at least this share of the questions held "
        "out when it was fitted reach fit_answer_at: a history whose answers it cannot tell apart "
        "(every reply its own) keeps the judge's thresholds instead.",
    )
    fit_clarify_at: float = Field(
        default=0.15,
        ge=0.0,
        le=1.0,
        description="A class this probable (below fit_answer_at) is offered as a clarification choice.",
    )
    acts: bool = Field(
        default=True,
        description="Answer greetings, thanks, goodbyes and 'are you a bot?' directly.",
    )
    decline_out_of_domain: bool = Field(
        default=True,
        description="Out-of-domain questions get a polite decline (a person on request) instead of a hand-off.",
    )
    decline_nearer_offtopic_by: float = Field(
        default=0.1,  # chosen on the demo shop's natural validation questions (docs/customer_answers.md)
        ge=-2.0,
        le=2.0,
        description="A question this much nearer (cosine) to one of the off-topic questions the gate was "
        "calibrated with than to any indexed question is declined at once, whatever topic its hits lean "
        "to: it reads like another domain's question. 2 switches this off.",
    )
    contact_details: bool = Field(
        default=True,
        description="Answer a question about how to reach the company (e-mail, opening hours, help "
        "site, phone) with the details its agents give in at least three conversations.",
    )
    clarify: bool = Field(default=True, description="Ask which topic is meant when unsure.")
    clarify_other: str = Field(
        default="Something else",
        min_length=1,
        description="The last choice of every clarifying question: none of the topics fits, and a "
        "person takes over.",
    )
    ask_for_order_number: bool = Field(
        default=True,
        description="Ask for the order number before answering a question about the customer's own order.",
    )
    person_offer: str = (
        "If you'd like to talk to a person instead, just say so or press 'Talk to a person'."
    )
    clarify_message: str = (
        "I want to be sure I answer the right question. Which of these is it about?"
    )
    # With one likely topic, a yes/no question ("yes" takes it, as do its number and words).
    clarify_one_message: str = "Just to be sure I answer the right question: is it about {topic}?"
    order_number_message: str = (
        "Could you give me your order number? You'll find it in your order confirmation e-mail."
    )

    handoff_message: str = DEFAULT_HANDOFF_MESSAGE
    hold_message: str = DEFAULT_HOLD_MESSAGE

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "evidence_k" in data:
            raise ValueError(
                "evidence_k was renamed retrieve_k (past answers retrieved per message); "
                "what the model is shown of them is prompt.evidence_k"
            )
        if isinstance(data, dict) and "revision_memory" in data:
            raise ValueError(
                "revision_memory was removed: a revision refines the best reply so far, shown to the "
                "model as its first past answer (retrieve and refine)"
            )
        if isinstance(data, dict) and "history_turns" in data:
            raise ValueError("history_turns moved to the prompt section (prompt.history_turns)")
        return data

    @property
    def retrieved_first_threshold(self) -> float:
        return self.answer_threshold if self.send_retrieved_at is None else self.send_retrieved_at

    @model_validator(mode="after")
    def _check(self) -> DialogueSettings:
        if self.handoff_threshold > self.answer_threshold:
            raise ValueError(
                f"handoff_threshold ({self.handoff_threshold}) must not exceed answer_threshold ({self.answer_threshold})"
            )
        if self.min_words >= self.max_words:
            raise ValueError(
                f"min_words ({self.min_words}) must be below max_words ({self.max_words})"
            )
        return self
