"""The `ranker` settings section (`CHATBOT_RANKER__<KEY>`): what the learned ranker
reads, how it is trained (negatives, budget, schedule) and the rule that decides
whether a trained ranker replaces the serving one. Values and their checks only;
`chatbot.training.ranker` and `chatbot.ranking.model` use them.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from chatbot.settings_section import Section


class RankerSettings(Section):
    enabled: bool = Field(
        default=True, description="Serving uses the promoted ranker when one exists; false: never."
    )

    # What the ranker reads.
    history_turns: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Earlier turns put in the ranker's query text after the customer's last message.",
    )
    max_length: int = Field(
        default=256, ge=32, le=512, description="Tokens of one (conversation, reply) pair."
    )

    # Training examples.
    negatives: int = Field(
        default=3, ge=1, le=50, description="Negatives per training pair (hard ones first)."
    )
    retrieve_k: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Retrieved candidates per conversation: where hard negatives are drawn from in training "
        "and what the ranker chooses among in validation.",
    )
    near_copy_f1: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="A retrieved reply this close (content-word F1) to the true reply is not used as a negative.",
    )
    use_rejections: bool = Field(
        default=True,
        description="Suggestions agents rejected are negatives for their conversation.",
    )
    pos_weight: float | None = Field(
        default=None,
        gt=0,
        description="Loss weight of a positive pair; None: negatives / positives, so both count equally.",
    )
    min_pairs: int = Field(
        default=30, ge=2, description="Fewer train pairs than this: no training."
    )
    min_val_pairs: int = Field(
        default=5, ge=1, description="Fewer validation pairs than this: no training."
    )

    # Budget and schedule.
    batch_size: int = Field(
        default=16, ge=1, description="(conversation, reply) pairs per optimizer step."
    )
    epochs: float = Field(
        default=1.0, gt=0, description="Passes over the examples when max_steps is not set."
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="Optimizer steps; overrides epochs."
    )
    max_minutes: float | None = Field(
        default=5.0,
        gt=0,
        description="Wall-clock budget from the start of a run to the end of its training steps; validation "
        "and saving come after. None: no clock limit.",
    )
    learning_rate: float = Field(default=5e-5, gt=0)
    warmup_fraction: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    seed: int = 1234

    # Validation and acceptance.
    val_max_pairs: int = Field(
        default=300, ge=1, description="Validation pairs used (a fixed deterministic subset)."
    )
    min_gain_stderrs: float = Field(
        default=2.0,
        ge=0,
        description="Keep a new ranker only when its mean ROUGE-L gain over the better of retrieval and the "
        "promoted ranker is positive and this many standard errors of the paired differences.",
    )
    auto_promote: bool = Field(
        default=True,
        description="Promote a kept ranker at once; false: register it as a candidate.",
    )
    score_batch_size: int = Field(
        default=32, ge=1, description="Pairs per forward pass when scoring."
    )

    @model_validator(mode="after")
    def _check(self) -> RankerSettings:
        if self.min_val_pairs > self.val_max_pairs:
            raise ValueError(
                f"min_val_pairs ({self.min_val_pairs}) must not exceed val_max_pairs ({self.val_max_pairs})"
            )
        return self
