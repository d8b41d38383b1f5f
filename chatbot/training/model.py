"""The model side of training: loading the base model for LoRA or full fine-tuning,
the loss on reply tokens only (weighted, label-smoothed, the LM head applied to the
target positions only), validation loss, and turning a checkpoint into plain full
weights (LoRA deltas merged) for fusion and for the model version. The optimisation
loop is `loop`'s job.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, cast

from chatbot.training.examples import IGNORE, Encoded, collate
from chatbot.training.settings import TrainingSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PEFT_PREFIX = "base_model.model."


def load_base(model_dir: Path, device: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base causal LM (float32 master weights) and its tokenizer."""
    from chatbot.models.reply_model import load_reply_model

    model, tokenizer = load_reply_model(model_dir, device=device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _layer_count(model: PreTrainedModel) -> int:
    return int(model.config.num_hidden_layers)


def prepare_trainable(
    model: PreTrainedModel, cfg: TrainingSettings, *, on_gpu: bool = False
) -> torch.nn.Module:
    """Wrap in LoRA adapters or unfreeze for full fine-tuning; only the top layers
    learn when `trainable_layers` says so."""
    n_layers = _layer_count(model)
    count = cfg.layers_to_train(n_layers, on_gpu)
    top = list(range(n_layers - count, n_layers)) if count else None
    if cfg.mode == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_target_modules),
            layers_to_transform=top,
            task_type="CAUSAL_LM",
        )
        trainable: torch.nn.Module = get_peft_model(model, config)
    else:
        trainable = model
        for name, param in model.named_parameters():
            if top is None:
                param.requires_grad_(True)
            else:
                param.requires_grad_(
                    any(f".layers.{i}." in name for i in top) or name.endswith("model.norm.weight")
                )
    trainable.train()
    return trainable


def causal_lm(model: torch.nn.Module) -> PreTrainedModel:
    """The transformers causal LM inside a peft wrapper (or the model itself)."""
    get_base_model = getattr(model, "get_base_model", None)
    return cast("PreTrainedModel", get_base_model() if get_base_model is not None else model)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy `tensors` (a checkpoint's or a fusion's weights) over the model's parameters."""
    params = dict(model.named_parameters())
    missing = [k for k in tensors if k not in params]
    if missing:
        raise KeyError(f"the weights name parameters the model lacks: {missing[:3]}")
    import torch

    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def build_loss_module(model: torch.nn.Module) -> torch.nn.Module:
    """An nn.Module whose forward returns (training loss, summed plain CE, target
    tokens): what DDP wraps, so gradients are synchronised through its forward."""
    import torch
    import torch.nn.functional as F

    class ReplyLoss(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            labels: torch.Tensor,
            weights: torch.Tensor,
            label_smoothing: float = 0.0,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            lm = causal_lm(self.inner)
            # transformers leaves get_decoder and get_output_embeddings unannotated
            decoder = lm.get_decoder()  # type: ignore[no-untyped-call]
            head = lm.get_output_embeddings()  # type: ignore[no-untyped-call]
            hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            targets = labels[:, 1:]
            selected = targets != IGNORE
            logits = head(hidden[:, :-1][selected]).float()
            tgt = targets[selected]
            plain = F.cross_entropy(logits, tgt, reduction="none")
            smooth = (
                F.cross_entropy(logits, tgt, reduction="none", label_smoothing=label_smoothing)
                if label_smoothing
                else plain
            )
            w = weights[:, None].expand_as(targets)[selected].to(smooth.dtype)
            loss = (smooth * w).sum() / w.sum().clamp_min(1e-8)
            return loss, plain.detach().sum(), selected.sum()

    return ReplyLoss(model)


def autocast_context(device: str) -> contextlib.AbstractContextManager[object]:
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batches_by_length(encoded: list[Encoded], batch_size: int) -> list[list[Encoded]]:
    ordered = sorted(encoded, key=lambda e: len(e.input_ids))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def evaluate(
    loss_module: torch.nn.Module,
    encoded: list[Encoded],
    *,
    batch_size: int,
    device: str,
    pad_id: int,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[float, float]:
    """(summed cross-entropy, target tokens) of this process's share of the validation
    examples: plain CE, no smoothing, no weights, no noise, dropout off."""
    import torch

    module = cast("torch.nn.Module", getattr(loss_module, "module", loss_module))  # DDP's inner one
    was_training = module.training
    module.eval()
    total, tokens = 0.0, 0.0
    with torch.no_grad(), autocast_context(device):
        for batch in batches_by_length(encoded, batch_size)[rank::world_size]:
            t = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
            _, ce, n = module(t["input_ids"], t["attention_mask"], t["labels"], t["weights"])
            total += float(ce)
            tokens += float(n)
    module.train(was_training)
    return total, tokens


def materialize(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], cfg: TrainingSettings
) -> dict[str, torch.Tensor]:
    """Plain full weights (names of the unwrapped causal LM) that a checkpoint changes:
    for LoRA, base weight + the adapter's delta; for full fine-tuning, the weights themselves."""
    import torch

    if cfg.mode == "full":
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in tensors.items()}
    from peft.tuners.lora import LoraLayer

    load_trainable_state(model, tensors)
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer) and "default" in getattr(module, "lora_A", {}):
                base = cast("torch.Tensor", module.get_base_layer().weight)
                delta = module.get_delta_weight("default")  # type: ignore[attr-defined]  # peft defines it on each LoRA layer kind, not on LoraLayer
                merged = base.detach().float() + delta.float()
                plain = name[len(PEFT_PREFIX) :] if name.startswith(PEFT_PREFIX) else name
                out[f"{plain}.weight"] = merged.to("cpu").clone()
    return out


def plain_model_with(
    model_dir: Path, weights: dict[str, torch.Tensor] | None, device: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fresh base model with `weights` loaded over it (the merged/fused result)."""
    model, tokenizer = load_base(model_dir, device)
    if weights:
        load_trainable_state(model, weights)
    return model, tokenizer
