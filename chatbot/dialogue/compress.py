"""Compression for CPU serving: an int8 copy of a causal LM, its Linear layers
dynamically quantised (weights int8, activations quantised on the fly). The original
model is left untouched. Whether it is worth it is measured by
`benchmarks/bench_dialogue.py`, not assumed here."""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch.nn import Module


def quantize_int8(model: Module) -> Module:
    import torch

    with warnings.catch_warnings():
        # torch.ao eager quantisation still works on CPU in torch 2.13 but warns that
        # it will move to torchao.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantized: Module = quantize_dynamic(  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )
    quantized.eval()
    return quantized


def linear_weight_bytes(model: Module) -> int:
    """Bytes held by the weights of Linear layers (float or int8-packed), for reports."""
    import torch

    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            total += module.weight.numel() * module.weight.element_size()
        elif hasattr(module, "_packed_params") and callable(
            packed := getattr(module, "weight", None)
        ):
            weight = packed()  # the int8 weight of a dynamically quantised Linear
            total += weight.numel() * weight.element_size()
    return total
