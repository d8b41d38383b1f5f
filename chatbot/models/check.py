"""`models check`: load each model the way serving does and report what works.

Reports; never converts or repairs (that is `prepare_reply_model`'s job)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from chatbot.config import Settings
from chatbot.errors import ChatbotError


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


def _timed(name: str, probe) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except ChatbotError as exc:
        detail, ok = str(exc), False
    return CheckResult(name, ok, detail, round(time.perf_counter() - started, 3))


def _embedder(settings: Settings) -> str:
    from chatbot.models.embedder import embedder_path, load_embedder

    model = load_embedder(settings)
    vector = model.encode(["Where is my parcel?"])
    return f"{embedder_path(settings)}: {vector.shape[1]}-dimensional embeddings"


def _reply_source() -> str:
    from chatbot.models.reply_model import packaged_gguf_path

    path = packaged_gguf_path()
    return f"{path} ({path.stat().st_size / 2**20:.0f} MiB)"


def _reply_model(settings: Settings) -> str:
    import torch

    from chatbot.models.reply_model import load_reply_model, read_meta, reply_model_path

    path = reply_model_path(settings)
    model, tokenizer = load_reply_model(path)
    ids = tokenizer("Hello", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    meta = read_meta(path) or {}
    params = meta.get("parameters") or sum(p.numel() for p in model.parameters())
    return f"{path}: {params / 1e6:.0f}M parameters, vocabulary {logits.shape[-1]}"


def run_checks(settings: Settings) -> list[CheckResult]:
    checks = [_timed("embedder", lambda: _embedder(settings))]
    if settings.reply_model_path is None:
        checks.append(_timed("reply model package", _reply_source))
    checks.append(_timed("reply model", lambda: _reply_model(settings)))
    return checks
