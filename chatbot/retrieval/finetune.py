"""Fine-tuning the sentence embedder on a company's own labelled texts.

`fine_tune_classifier` trains MiniLM end to end with a cosine-softmax head (one unit
vector per label, initialised at the label's centroid) and label-smoothed cross
entropy, under a wall-clock budget: after it the embedder places requests of one
intent close together, which is what nearest-neighbour routing and the out-of-scope
score need. The word-embedding matrix stays frozen (half the parameters, little
gain) and batches are grouped by length (short requests, little padding), which
together make an epoch on 10k requests take a few minutes on 2 CPU cores.
Evaluating the result is `intents`'s job; saving a model is the caller's.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


@dataclass
class FineTuneReport:
    epochs_done: float
    steps: int
    seconds: float
    stopped_by_budget: bool
    final_loss: float


def _length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        group = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def fine_tune_classifier(
    model: SentenceTransformer,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    epochs: float = 3.0,
    batch_size: int = 32,
    lr: float = 6e-5,
    head_lr: float = 3e-3,
    scale: float = 20.0,
    label_smoothing: float = 0.1,
    max_seconds: float | None = None,
    max_length: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> FineTuneReport:
    """Train `model` in place on (text, label index) pairs; returns what happened.
    Stops early, at a step boundary, once `max_seconds` have passed."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    rng = random.Random(seed)
    transformer = model[0].auto_model
    tokenizer = model.tokenizer
    labels_t = torch.tensor(list(labels), dtype=torch.long)
    n_labels = int(labels_t.max()) + 1

    def embed(batch_texts: list[str]) -> torch.Tensor:
        enc = tokenizer(
            batch_texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        out = transformer(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    # Head initialised at the label centroids of the current embedder.
    with torch.inference_mode():
        start_vectors = torch.cat(
            [embed(list(texts[i : i + 128])) for i in range(0, len(texts), 128)]
        )
    centroids = torch.zeros(n_labels, start_vectors.shape[1])
    centroids.index_add_(0, labels_t, start_vectors)
    head = torch.nn.Parameter(F.normalize(centroids, dim=-1).clone())

    for p in transformer.embeddings.word_embeddings.parameters():
        p.requires_grad_(False)
    body = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": lr}, {"params": [head], "lr": head_lr, "weight_decay": 0.0}],
        weight_decay=0.01,
    )

    lengths = [len(t) for t in texts]
    steps_per_epoch = math.ceil(len(texts) / batch_size)
    total = max(1, int(steps_per_epoch * epochs))
    warmup = max(1, total // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup)),
    )
    transformer.train()
    started = time.monotonic()
    step, loss_value, stopped = 0, float("nan"), False
    bar = tqdm(total=total, desc="fine-tuning", unit="step", disable=not progress, leave=False)
    try:
        while step < total and not stopped:
            for batch in _length_batches(lengths, batch_size, rng):
                if step >= total:
                    break
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    stopped = True
                    break
                vectors = embed([texts[i] for i in batch])
                logits = scale * vectors @ F.normalize(head, dim=-1).T
                loss = F.cross_entropy(logits, labels_t[batch], label_smoothing=label_smoothing)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(body, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_value = float(loss.detach())
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}")
    finally:
        bar.close()
        transformer.eval()
        for p in transformer.embeddings.word_embeddings.parameters():
            p.requires_grad_(True)
    seconds = time.monotonic() - started
    if stopped:
        log.info("fine-tuning stopped by its time budget after %d of %d steps", step, total)
    return FineTuneReport(step / steps_per_epoch, step, seconds, stopped, loss_value)


def head_free_vectors(
    model: SentenceTransformer, texts: Sequence[str], batch_size: int = 128
) -> np.ndarray:
    """Unit vectors of `texts` from the (fine-tuned) model, float32."""
    return model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    ).astype(np.float32)
