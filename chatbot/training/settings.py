"""The `training` settings section (`CHATBOT_TRAINING__<KEY>`): every knob of a
training run, with defaults that fit the demo data on a 2-core CPU in under 15
minutes. Values and their checks only; `chatbot.training.loop` and
`chatbot.training.run` use them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from chatbot.settings_section import Section

# Knobs that moved to the `prompt` section (one prompt contract for training, serving and evaluation).
MOVED_TO_PROMPT = ("system_prompt", "evidence_k", "evidence_max_chars", "history_turns")


class TrainingSettings(Section):
    # What is trained.
    mode: Literal["lora", "full"] = Field(
        default="lora",
        description="LoRA adapters (merged into full weights at the end) or full fine-tuning.",
    )
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    lora_target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )
    trainable_layers: int | Literal["all", "auto"] = Field(
        default="auto",
        description="Train only the top N transformer layers (LoRA or full): backward then stops there, about "
        "twice as fast on a CPU. auto: the top 8 on a CPU, all on a GPU.",
    )

    # Budget and schedule.
    epochs: float = Field(
        default=1.0, gt=0, description="Passes over the training pairs when max_steps is not set."
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="Optimizer steps; overrides epochs."
    )
    max_minutes: float | None = Field(
        default=13.0,
        gt=0,
        description="Wall-clock budget of the whole run (loading, validations and fusion included; saving "
        "takes seconds more); the learning-rate schedule follows whichever of steps and clock runs out "
        "first. None: no clock limit.",
    )
    learning_rate: float | None = Field(
        default=None, gt=0, description="Peak LR; default 1e-3 for LoRA, 5e-5 for full."
    )
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_fraction: float = Field(default=0.1, ge=0, lt=1)
    min_lr_fraction: float = Field(
        default=0.1, ge=0, le=1, description="Cosine decay ends at this fraction of the peak LR."
    )
    batch_size: int = Field(default=4, ge=1, description="Examples per micro-batch per process.")
    grad_accum: int = Field(default=1, ge=1, description="Micro-batches per optimizer step.")
    max_grad_norm: float = Field(default=1.0, gt=0)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    seed: int = 1234

    # Examples.
    max_length: int = Field(default=384, ge=32, description="Tokens per example (prompt + reply).")
    max_target_tokens: int = Field(default=128, ge=8)

    # Which pairs, and how much each counts.
    origin_weights: dict[str, float] = Field(
        default_factory=lambda: {"imported": 1.0, "agent_approved": 2.0, "agent_edited": 3.0},
        description="Loss weight per pair origin: agents' corrections count more than imported history.",
    )
    min_quality: float | None = Field(
        default=None,
        description="Drop pairs whose quality is below this (pairs without quality are kept).",
    )
    quality_weight: float = Field(
        default=0.25,
        ge=0,
        description="Weight multiplier 1 + quality_weight * z, z = the pair's quality standardised within its source (clipped to 0.25..2).",
    )
    min_train_pairs: int = Field(default=16, ge=1)
    min_val_pairs: int = Field(default=2, ge=1)

    # Robustness.
    noise_probability: float = Field(
        default=0.3, ge=0, le=1, description="Chance that an example's customer text is noised."
    )

    # Retrieve and refine (Weston, Dinan & Miller 2018): a reply model trained only on other
    # conversations' answers learns to ignore them; showing it its own reply now and then
    # teaches it to copy the evidence when it fits and to edit it when it does not.
    true_reply_in_evidence: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Chance that a train example (per epoch) shows the agent's true reply among its past answers, "
        "at a random position among the prompt.evidence_k shown (the least relevant one makes room). Only for pairs "
        "that have retrieved evidence; validation examples never get it. 0: off.",
    )
    true_reply_noise: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Chance that the inserted reply is a near copy (a few words dropped or swapped, maybe a sentence "
        "dropped) rather than exact, so that the model learns to edit, not only to copy.",
    )

    # Validation, early stopping, checkpoints, fusion.
    val_max_pairs: int = Field(
        default=16,
        ge=1,
        description="Validation pairs used (a fixed subset, the same for every comparison).",
    )
    eval_every: int | None = Field(
        default=None,
        ge=1,
        description="Validate every N optimizer steps; default about 6 times a run.",
    )
    eval_every_minutes: float | None = Field(
        default=4.0,
        gt=0,
        description="Also validate when this much time passed since the last one.",
    )
    patience: int = Field(
        default=3, ge=1, description="Stop after this many validations without improvement."
    )
    min_delta: float = Field(default=0.001, ge=0)
    fuse_top_k: int = Field(
        default=3, ge=1, description="Average this many best checkpoints; 1 disables fusion."
    )
    auto_promote: bool = Field(
        default=True,
        description="Promote a new version when it beats the promoted one on the same validation pairs.",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: object) -> object:
        moved = sorted(k for k in MOVED_TO_PROMPT if isinstance(data, dict) and k in data)
        if moved:
            raise ValueError(
                f"{', '.join(moved)} moved to the prompt section (prompt.{moved[0]}, CHATBOT_PROMPT__{moved[0].upper()})"
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainingSettings:
        unknown = set(self.origin_weights) - {"imported", "agent_approved", "agent_edited"}
        if unknown:
            raise ValueError(
                f"origin_weights has unknown origins {sorted(unknown)} (use imported, agent_approved, agent_edited)"
            )
        if any(w < 0 for w in self.origin_weights.values()):
            raise ValueError("origin_weights must not be negative")
        if isinstance(self.trainable_layers, int) and self.trainable_layers < 1:
            raise ValueError(f"trainable_layers must be at least 1, got {self.trainable_layers}")
        if self.max_target_tokens >= self.max_length:
            raise ValueError(
                f"max_target_tokens ({self.max_target_tokens}) must be below max_length ({self.max_length})"
            )
        return self

    def layers_to_train(self, n_layers: int, on_gpu: bool) -> int | None:
        """How many top layers learn (None: all of them)."""
        if self.trainable_layers == "all" or (self.trainable_layers == "auto" and on_gpu):
            return None
        wanted = 8 if self.trainable_layers == "auto" else int(self.trainable_layers)
        return None if wanted >= n_layers else wanted

    @property
    def peak_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-3 if self.mode == "lora" else 5e-5
