"""What the training loop trains on: the run's examples encoded once
(`encode_examples`), each epoch's micro-batches for this process (`epoch_batches`), and
the example a train pair gives in a given epoch (`train_example`: clean, noised, or with
its own reply among the past answers shown, see `refine_examples`). Where its job ends:
the optimisation itself is `loop`'s; encoding one pair is `examples`'.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.pairs import PairRecord
from chatbot.text.prompt import PromptFormat
from chatbot.training.data import TrainingData
from chatbot.training.distributed import DistInfo
from chatbot.training.examples import Encoded, encode_pair
from chatbot.training.refine_examples import shown_evidence
from chatbot.training.settings import TrainingSettings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def epoch_batches(
    lengths: dict[int, int],
    pairs: list[PairRecord],
    epoch: int,
    cfg: TrainingSettings,
    info: DistInfo,
) -> list[list[PairRecord]]:
    """This process's micro-batches for one epoch: shuffled with (seed, epoch), grouped
    by length within windows to waste less padding, the same count on every process."""
    rng = random.Random(f"order:{cfg.seed}:{epoch}")
    order = pairs[:]
    rng.shuffle(order)
    window = cfg.batch_size * 8
    grouped: list[PairRecord] = []
    for i in range(0, len(order), window):
        grouped += sorted(order[i : i + window], key=lambda p: lengths.get(p.id, 0))
    batches = [grouped[i : i + cfg.batch_size] for i in range(0, len(grouped), cfg.batch_size)]
    rng.shuffle(batches)
    per_step = info.world_size * cfg.grad_accum
    usable = max(per_step, (len(batches) // per_step) * per_step)
    batches = (batches * math.ceil(usable / max(1, len(batches))))[:usable]
    return batches[info.rank :: info.world_size]


def is_noised(pair: PairRecord, epoch: int, cfg: TrainingSettings) -> bool:
    """Whether `epoch` noises this pair's customer text (seeded per run, epoch and pair)."""
    return random.Random(f"noise?:{cfg.seed}:{epoch}:{pair.id}").random() < cfg.noise_probability


def train_example(
    tokenizer: PreTrainedTokenizerBase,
    pair: PairRecord,
    evidence: list[str],
    epoch: int,
    cfg: TrainingSettings,
    prompt: PromptFormat,
    clean: Encoded | None,
) -> tuple[Encoded | None, str | None]:
    """The example a train pair gives in `epoch`, and whether its own reply is among the
    past answers shown (None, "exact" or "near_copy"). Its `clean` encoding, unless this
    epoch noises its customer text or shows it its reply (retrieve and refine); when
    that encoding does not fit the length budget, the clean one."""
    shown = shown_evidence(
        pair,
        evidence,
        cfg,
        evidence_k=prompt.evidence_k,
        epoch=epoch,
        visible_chars=prompt.evidence_max_chars,
    )
    noised = is_noised(pair, epoch, cfg)
    if not noised and shown.inserted is None:
        return clean, None
    e = encode_pair(
        tokenizer,
        pair,
        shown.texts,
        cfg,
        prompt,
        noise_seed=f"{cfg.seed}:{epoch}:{pair.id}" if noised else None,
    )
    return (e, shown.inserted) if e is not None else (clean, None)


@dataclass
class EncodedExamples:
    """The run's encodings, computed once: the clean train examples (also the lengths
    that group batches), the pairs that fit the length budget, and the validation examples."""

    clean: dict[int, Encoded | None]
    train_pairs: list[PairRecord]
    lengths: dict[int, int]
    val_encoded: list[Encoded]
    skipped: int


def encode_examples(
    tokenizer: PreTrainedTokenizerBase,
    data: TrainingData,
    evidence: dict[int, list[str]],
    cfg: TrainingSettings,
    prompt: PromptFormat,
) -> EncodedExamples:
    """Every train and validation pair encoded once (clean: no noise, no own reply shown)."""
    clean: dict[int, Encoded | None] = {
        p.id: encode_pair(tokenizer, p, evidence.get(p.id, []), cfg, prompt) for p in data.train
    }
    train_pairs = [p for p in data.train if clean[p.id] is not None]
    val_encoded = [
        e
        for e in (encode_pair(tokenizer, p, evidence.get(p.id, []), cfg, prompt) for p in data.val)
        if e is not None
    ]
    return EncodedExamples(
        clean=clean,
        train_pairs=train_pairs,
        lengths={pid: len(e.input_ids) for pid, e in clean.items() if e is not None},
        val_encoded=val_encoded,
        skipped=len(data.train) - len(train_pairs),
    )
