"""Checkpoint fusion ("model soup"): the plain full weights of the best single
checkpoint and the uniform average of the `fuse_top_k` best ones (LoRA deltas merged
before averaging, so the soup is an average of weights, not of adapter factors).
Whether the soup is kept is decided in `run` by validating it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.training.checkpoints import load_checkpoint_tensors
from chatbot.training.model import materialize
from chatbot.training.settings import TrainingSettings

if TYPE_CHECKING:
    import torch


def ranked_checkpoints(validations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validations that still have a checkpoint on disk, best first."""
    kept = [v for v in validations if v.get("checkpoint") and Path(v["checkpoint"]).is_dir()]
    return sorted(kept, key=lambda v: (v["val_loss"], v["step"]))


def best_and_fused(
    model: torch.nn.Module, validations: list[dict[str, Any]], cfg: TrainingSettings
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, list[int]]:
    """(best single checkpoint's weights, averaged weights or None, steps averaged)."""
    ranked = ranked_checkpoints(validations)
    if not ranked:
        raise ValueError("no checkpoint to build the model from")
    best = materialize(model, load_checkpoint_tensors(Path(ranked[0]["checkpoint"])), cfg)
    chosen = ranked[: cfg.fuse_top_k]
    if len(chosen) < 2:
        return best, None, [ranked[0]["step"]]
    total = {k: v.clone() for k, v in best.items()}
    for v in chosen[1:]:
        weights = materialize(model, load_checkpoint_tensors(Path(v["checkpoint"])), cfg)
        for k in total:
            total[k] += weights[k]
        del weights
    fused = {k: v / len(chosen) for k, v in total.items()}
    return best, fused, [v["step"] for v in chosen]
