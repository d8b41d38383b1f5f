"""Fine-tuning a sentence embedder on (anchor, positive) texts with sentence-transformers'
own trainer: `SentenceTransformerTrainer`, `MultipleNegativesRankingLoss` (in-batch
negatives) and the no-duplicates batch sampler (a batch never holds one text twice,
which would be its own false negative). Seeded, on the CPU, offline, bounded by a step
budget and a wall-clock budget, and nothing kept on disk: the model is trained in
place. What the texts are and whether the result is kept is the caller's job
(`adapt` for the index, `chatbot.evaluation.intents.finetune` for intent routing).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatbot.models.offline import force_offline

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.training_args import (
        SentenceTransformerTrainingArguments,
    )

log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """What one fine-tuning run did."""

    steps: int
    stopped_by: str  # "steps" (the step or epoch budget ran out) or "minutes"
    seconds: float
    epochs: float
    losses: list[float] = field(default_factory=list)  # per step, in order


def fine_tune_pairs(
    model: SentenceTransformer,
    anchors: Sequence[str],
    positives: Sequence[str],
    *,
    batch_size: int,
    learning_rate: float,
    max_steps: int | None = None,
    epochs: float = 1.0,
    max_seconds: float | None = None,
    max_seq_length: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> TrainingRun:
    """Train `model` in place so that each anchor lands nearest its positive. Stops
    after `max_steps` steps (or `epochs` passes when no step budget is given) or, at a
    step boundary, once `max_seconds` have passed. The learning rate warms up over the
    first tenth of the steps and then decays linearly; the word-embedding matrix stays
    frozen (half of MiniLM's weights, little to gain from them in a short run)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    from chatbot.models.training_budget import WallClockBudget

    force_offline()  # the trainer must not reach for a hub
    started = time.monotonic()
    budget = WallClockBudget.seconds(max_seconds, started=started)

    dataset = Dataset.from_dict({"anchor": list(anchors), "positive": list(positives)})
    first = model[0]
    saved_length = getattr(first, "max_seq_length", None)
    if saved_length is not None and max_seq_length is not None:
        first.max_seq_length = min(saved_length, max_seq_length)
    word_embeddings = getattr(
        getattr(getattr(first, "auto_model", None), "embeddings", None), "word_embeddings", None
    )
    frozen = list(word_embeddings.parameters()) if word_embeddings is not None else []
    for p in frozen:
        p.requires_grad_(False)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)  # the trainer's notes on a CPU run are not for users
    try:
        with tempfile.TemporaryDirectory(prefix="chatbot-fine-tune-") as output:
            args = _arguments(
                output, len(dataset), batch_size, learning_rate, max_steps, epochs, seed, progress
            )
            trainer = SentenceTransformerTrainer(
                model=model,
                args=args,
                train_dataset=dataset,
                loss=MultipleNegativesRankingLoss(model),
                callbacks=[budget],
            )
            # Without a progress bar the trainer prints its logs to stdout, where they
            # would break `--json` output; the model card it drafts is not wanted either.
            trainer.remove_callback(PrinterCallback)
            trainer.remove_callback(trainer.model_card_callback_class)
            trainer.train()
            state = trainer.state
    finally:
        hf_logging.set_verbosity(verbosity)
        model.eval()
        for p in frozen:
            p.requires_grad_(True)
        if saved_length is not None:
            first.max_seq_length = saved_length
    losses = [float(entry["loss"]) for entry in state.log_history if "loss" in entry]
    stopped_by = "minutes" if budget.stopped_by_clock else "steps"
    if stopped_by == "minutes":
        log.info("fine-tuning stopped by its time budget after %d steps", state.global_step)
    return TrainingRun(
        steps=int(state.global_step),
        stopped_by=stopped_by,
        seconds=round(time.monotonic() - started, 2),
        epochs=float(state.epoch or 0.0),
        losses=losses,
    )


def _arguments(
    output: str,
    pairs: int,
    batch_size: int,
    learning_rate: float,
    max_steps: int | None,
    epochs: float,
    seed: int,
    progress: bool,
) -> SentenceTransformerTrainingArguments:
    """The trainer's arguments for `fine_tune_pairs` (see its docstring), writing only
    into the scratch directory `output`."""
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.training_args import (
        SentenceTransformerTrainingArguments,
    )

    return SentenceTransformerTrainingArguments(
        output_dir=output,
        max_steps=max_steps if max_steps is not None else -1,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=0.01,
        max_grad_norm=1.0,
        warmup_steps=0.1,
        lr_scheduler_type="linear",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        # A last batch of one pair has no in-batch negative to learn from.
        dataloader_drop_last=pairs > batch_size,
        seed=seed,
        data_seed=seed,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=1,
        disable_tqdm=not progress,
    )
