"""One training run from start to model version: read the pairs, compute the evidence,
train (one process or DDP), fuse the best checkpoints and keep the soup only when it
validates better, merge LoRA into full weights, write the version directory (with
meta.json, metrics.json and loss_curve.png), register it, and promote it when it beats
the promoted version on the same validation pairs. The CLI only parses options and
prints; everything a run does is here.
"""

from __future__ import annotations

import logging
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.files import replace_directory, write_json_atomic
from chatbot.text.prompt import PromptFormat, PromptSettings
from chatbot.training import TrainingError
from chatbot.training import checkpoints as ck
from chatbot.training import resume as rs
from chatbot.training.data import TrainingData, load_training_data
from chatbot.training.distributed import (
    DistInfo,
    all_reduce,
    barrier,
    broadcast_object,
    init_distributed,
    shutdown,
)
from chatbot.training.evidence import EvidenceFn, compute_evidence
from chatbot.training.examples import encode_pair
from chatbot.training.loop import LoopResult, Progress, train_loop
from chatbot.training.refine_examples import refine_meta
from chatbot.training.settings import MOVED_TO_PROMPT, TrainingSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from chatbot.config import DataPaths
    from chatbot.store.database import Database

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: str
    version_name: str
    version_path: str
    promoted: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)


def runs_dir(paths: DataPaths) -> Path:
    return paths.versions_dir / "runs"


def _new_name(paths: DataPaths, database: Database) -> str:
    from chatbot.models.versions import list_versions

    taken = {v.name for v in list_versions(database)} | {p.name for p in runs_dir(paths).glob("*")}
    base = "reply-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def validation_loss(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: TrainingData,
    evidence: dict[int, list[str]],
    cfg: TrainingSettings,
    prompt: PromptFormat,
    device: str,
) -> float:
    """Mean cross-entropy per reply token of `model` on the run's validation pairs."""
    from chatbot.training.model import build_loss_module, evaluate

    encoded = [
        e
        for e in (encode_pair(tokenizer, p, evidence.get(p.id, []), cfg, prompt) for p in data.val)
        if e is not None
    ]
    total, tokens = evaluate(
        build_loss_module(model).to(device),
        encoded,
        batch_size=cfg.batch_size * 2,
        device=device,
        pad_id=tokenizer.pad_token_id,
    )
    return total / max(tokens, 1.0)


def _choose_run(paths: DataPaths, database: Database, resume: bool, info: DistInfo) -> Path:
    """The run directory, decided on the main process and shared with the others."""
    choice: tuple[str | None, str | None] = (None, None)
    if info.is_main:
        runs = runs_dir(paths)
        runs.mkdir(parents=True, exist_ok=True)
        if resume:
            found = ck.latest_unfinished_run(runs)
            choice = (
                (str(found), None)
                if found
                else (None, f"there is no interrupted training run to resume in {runs}")
            )
        else:
            choice = (str(runs / _new_name(paths, database)), None)
    path, error = broadcast_object(choice, info)
    if error or path is None:
        raise TrainingError(error or "no run directory was chosen")
    return Path(path)


def _saved_settings(run_dir: Path) -> tuple[TrainingSettings, PromptSettings]:
    """A resumed run keeps its own settings (runs from before the prompt section kept
    the prompt's in training's)."""
    state = ck.read_json(run_dir / ck.STATE_FILE) or {}
    saved_training = state.get("training_settings")
    if not isinstance(saved_training, dict):
        raise TrainingError(f"{run_dir / ck.STATE_FILE}: the run's settings are missing")
    saved = dict(saved_training)
    old_prompt = {k: saved.pop(k) for k in MOVED_TO_PROMPT if k in saved}
    saved_prompt = state.get("prompt")
    return TrainingSettings(**saved), PromptSettings(
        **(saved_prompt if isinstance(saved_prompt, dict) else old_prompt)
    )


def run_training(
    paths: DataPaths,
    cfg: TrainingSettings,
    prompt_settings: PromptSettings,
    database: Database,
    *,
    evidence_for: EvidenceFn | None = None,
    evidence_note: str = "",
    resume: bool = False,
    progress: Progress | None = None,
) -> TrainResult | None:
    """Train, fuse, version and maybe promote. Returns the result on the main process,
    None on the others (under torchrun / accelerate launch). A resumed run keeps the
    training and prompt settings it started with."""
    from chatbot.models.offline import force_offline

    force_offline()
    started = time.monotonic()
    info = init_distributed()
    try:
        return _run(
            paths,
            cfg,
            prompt_settings,
            database,
            info,
            evidence_for,
            evidence_note,
            resume,
            progress,
            started,
        )
    finally:
        shutdown(info)


def _run(
    paths: DataPaths,
    cfg: TrainingSettings,
    prompt_settings: PromptSettings,
    database: Database,
    info: DistInfo,
    evidence_for: EvidenceFn | None,
    evidence_note: str,
    resume: bool,
    progress: Progress | None,
    started: float,
) -> TrainResult | None:
    import torch

    from chatbot.models.reply_model import reply_model_path
    from chatbot.training.model import load_base, prepare_trainable

    run_dir = _choose_run(paths, database, resume, info)
    resume_state: rs.ResumeState | None = None
    if resume:
        cfg, prompt_settings = _saved_settings(run_dir)
        resume_state = rs.load_resume_state(run_dir)
    data = load_training_data(database, cfg)
    if resume_state is not None and resume_state.fingerprint != data.snapshot["fingerprint"]:
        raise TrainingError(
            f"the training pairs changed since run {run_dir.name} started (new import or edits); "
            "it cannot be resumed: start a new run with `chatbot train`"
        )
    evidence = compute_evidence([*data.train, *data.val], evidence_for)
    base_dir = reply_model_path(paths)
    torch.manual_seed(cfg.seed)
    base, tokenizer = load_base(base_dir, info.device)
    n_layers = int(base.config.num_hidden_layers)
    on_gpu = info.device.startswith("cuda")
    model = prepare_trainable(base, cfg, on_gpu=on_gpu)
    meta = {
        "run": run_dir.name,
        "base_model": str(base_dir),
        "mode": cfg.mode,
        "world_size": info.world_size,
        "device": info.device,
        "trainable_layers": cfg.layers_to_train(n_layers, info.device.startswith("cuda")) or "all",
        "dtype": "bfloat16 autocast, float32 weights" if on_gpu else "float32",
        "data_fingerprint": data.snapshot["fingerprint"],
        "evidence": evidence_note,
        "prompt": prompt_settings.model_dump(),
        "retrieve_and_refine": refine_meta(cfg, prompt_settings.evidence_k, data.train, evidence),
    }
    prompt = PromptFormat.from_settings(prompt_settings)
    if info.is_main:
        _write_run_start(run_dir, resume, cfg, data, meta)
    barrier(info)
    # max_minutes bounds the whole run: what was spent before the loop (loading, evidence)
    # comes off the loop's budget; the loop keeps back time for the finishing validations.
    budget_s = None
    (spent,) = all_reduce([time.monotonic() - started], info, op="max")
    meta["seconds_before_training"] = round(spent, 1)  # loading, evidence, encoding
    if cfg.max_minutes:
        budget_s = max(60.0, cfg.max_minutes * 60 - spent - 15.0)
    result = train_loop(
        model,
        tokenizer,
        data,
        evidence,
        cfg,
        prompt,
        run_dir=run_dir,
        info=info,
        resume_state=resume_state,
        checkpoint_meta={
            "run": run_dir.name,
            "mode": cfg.mode,
            "base_model": str(base_dir),
            "data_fingerprint": data.snapshot["fingerprint"],
        },
        progress=progress if info.is_main else None,
        budget_s=budget_s,
    )
    barrier(info)
    if not info.is_main:
        return None
    if progress:
        progress(
            {"event": "finishing", "message": "fusing checkpoints and writing the model version"}
        )
    return _finish(
        paths.versions_dir,
        database,
        cfg,
        prompt,
        info,
        run_dir,
        base_dir,
        model,
        data,
        evidence,
        result,
        meta,
        started,
    )


def _write_run_start(
    run_dir: Path, resume: bool, cfg: TrainingSettings, data: TrainingData, meta: dict[str, Any]
) -> None:
    """The run's state file ("running") and meta.json, written as the run (re)starts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = ck.read_json(run_dir / ck.STATE_FILE) or {}
    # A run's files keep one temporary name each (as resume.py's do), so what a
    # killed run left half-written is replaced by the resumed run's next write.
    write_json_atomic(
        run_dir / ck.STATE_FILE,
        {
            "status": "running",
            "started_at": previous.get("started_at", ck.now_iso()),
            "resumed_at": ck.now_iso() if resume else None,
            "training_settings": cfg.model_dump(),
            **meta,
        },
        temp=run_dir / f".{ck.STATE_FILE}.tmp",
    )
    write_json_atomic(
        run_dir / "meta.json",
        {
            "what": "reply-model training run",
            "created_at": ck.now_iso(),
            "data_snapshot": data.snapshot,
            "training_settings": cfg.model_dump(),
            **meta,
        },
        temp=run_dir / ".meta.json.tmp",
    )


def _finish(
    versions_dir: Path,
    database: Database,
    cfg: TrainingSettings,
    prompt: PromptFormat,
    info: DistInfo,
    run_dir: Path,
    base_dir: Path,
    model: torch.nn.Module,
    data: TrainingData,
    evidence: dict[int, list[str]],
    result: LoopResult,
    meta: dict[str, Any],
    started: float,
) -> TrainResult:
    from chatbot.models.versions import promoted_version
    from chatbot.training.fusion import best_and_fused
    from chatbot.training.model import load_base

    device = info.device
    best = result.best
    best_weights, fused_weights, fused_steps = best_and_fused(model, result.validations, cfg)
    del model
    name = run_dir.name
    version_dir = versions_dir / name
    staging = versions_dir / f".{name}.tmp"
    use_fused, fused_loss, final_loss = _save_final_model(
        staging,
        base_dir,
        best_weights,
        fused_weights,
        float(best["val_loss"]),
        (data, evidence, cfg, prompt, device),
    )
    del best_weights, fused_weights

    current = promoted_version(database)
    if current is not None:
        current_model, current_tok = load_base(Path(current.path), device)
        current_loss = validation_loss(
            current_model, current_tok, data, evidence, cfg, prompt, device
        )
        compared_with = current.name
        del current_model
    else:
        current_loss, compared_with = result.baseline_val_loss, "base"
    better = final_loss < current_loss
    promoted = bool(better and cfg.auto_promote)
    wall = time.monotonic() - started
    metrics = {
        "val_loss_before": result.baseline_val_loss,
        "val_loss_best_checkpoint": best["val_loss"],
        "best_step": best["step"],
        "val_loss_fused": fused_loss,
        "fused_steps": fused_steps,
        "model": "fused" if use_fused else "best_checkpoint",
        "val_loss": final_loss,
        **_loop_metrics(result, wall, device),
        **meta,
    }
    evaluation = {
        "val_pairs": len(data.val),
        "val_loss": final_loss,
        "compared_with": compared_with,
        "compared_val_loss": current_loss,
        "better": better,
        "promoted": promoted,
    }
    what = f"reply model fine-tuned from {base_dir} ({cfg.mode}{', checkpoint soup' if use_fused else ''})"
    summary = _write_version(
        staging, version_dir, run_dir, what, cfg, data, result, meta, metrics, final_loss
    )
    _register(
        database,
        version_dir,
        {**cfg.model_dump(), **meta},
        data,
        summary,
        evaluation,
        parent_id=current.id if current is not None else None,
        promote_it=promoted,
    )
    if not promoted and not better:
        log.info(
            "not promoted: %.4f is not better than %s's %.4f",
            final_loss,
            compared_with,
            current_loss,
        )
    _close_run(run_dir, name, evaluation, database)
    return TrainResult(
        run_dir=str(run_dir),
        version_name=name,
        version_path=str(version_dir),
        promoted=promoted,
        metrics=summary,
        evaluation=evaluation,
    )


def _loop_metrics(result: LoopResult, wall: float, device: str) -> dict[str, Any]:
    """What the training loop did, as the version's metrics report it."""
    return {
        "steps": result.steps,
        "total_steps": result.total_steps,
        "stopped_because": result.stopped_because,
        "resumed_from_step": result.resumed_from_step,
        "train_tokens": result.train_tokens,
        "train_seconds": round(result.train_seconds, 1),
        "compute_seconds": round(result.compute_seconds, 1),
        "tokens_per_second": round(result.train_tokens / max(result.compute_seconds, 1e-9), 1),
        "wall_seconds": round(wall, 1),
        "peak_memory_mb": round(_peak_memory_mb(device), 1),
        "skipped_examples": result.skipped_examples,
        "replicas_in_sync": result.replicas_checked,
        "validations": result.validations,
        "history": result.history,
    }


# What a validation loss is computed on: (data, evidence, settings, prompt, device).
Validation = tuple[TrainingData, dict[int, list[str]], TrainingSettings, PromptFormat, str]


def _save_final_model(
    staging: Path,
    base_dir: Path,
    best_weights: dict[str, torch.Tensor],
    fused_weights: dict[str, torch.Tensor] | None,
    best_loss: float,
    validation: Validation,
) -> tuple[bool, float | None, float]:
    """Save the better of the best checkpoint and the checkpoint soup (the fused weights,
    used only when they validate better) as plain full weights into `staging`; returns
    (fused used, the soup's validation loss, the saved model's validation loss)."""
    from chatbot.training.model import plain_model_with

    data, evidence, cfg, prompt, device = validation
    fused_loss = None
    if fused_weights is not None:
        fused_model, tokenizer = plain_model_with(base_dir, fused_weights, device)
        fused_loss = validation_loss(fused_model, tokenizer, data, evidence, cfg, prompt, device)
        del fused_model
    use_fused = fused_loss is not None and fused_loss < best_loss
    final_loss = fused_loss if fused_loss is not None and use_fused else best_loss
    final_model, tokenizer = plain_model_with(
        base_dir, fused_weights if use_fused else best_weights, device
    )
    shutil.rmtree(staging, ignore_errors=True)
    final_model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    del final_model
    return use_fused, fused_loss, final_loss


def _write_version(
    staging: Path,
    version_dir: Path,
    run_dir: Path,
    what: str,
    cfg: TrainingSettings,
    data: TrainingData,
    result: LoopResult,
    meta: dict[str, Any],
    metrics: dict[str, Any],
    final_loss: float,
) -> dict[str, Any]:
    """Complete the staged version (meta.json, metrics, loss curve, checksums) and rename
    it into place; the run directory gets the metrics and curve too. Returns the metrics
    without the loss history (what the version is registered with)."""
    from chatbot.models.checksums import write_checksums
    from chatbot.training.report import plot_loss_curve, write_metrics

    (staging / "meta.json").write_text(
        __import__("json").dumps(
            {
                "what": what,
                "created_at": ck.now_iso(),
                "data_snapshot": data.snapshot,
                "training_settings": cfg.model_dump(),
                "val_loss": final_loss,
                "val_loss_before": result.baseline_val_loss,
                **meta,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    summary = {k: v for k, v in metrics.items() if k != "history"}
    write_metrics(staging, summary)
    title = f"{run_dir.name}: val {result.baseline_val_loss:.3f} → {final_loss:.3f}"
    plot_loss_curve(staging, result.history, result.validations, result.baseline_val_loss, title)
    write_checksums(staging)  # verified before every load (chatbot.models.checksums)
    replace_directory(staging, version_dir)
    write_metrics(run_dir, metrics)
    plot_loss_curve(run_dir, result.history, result.validations, result.baseline_val_loss, title)
    return summary


def _register(
    database: Database,
    version_dir: Path,
    settings: dict[str, Any],
    data: TrainingData,
    summary: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    parent_id: int | None,
    promote_it: bool,
) -> None:
    """Register the version (and promote it when it is to be)."""
    from chatbot.models.versions import promote, register_version

    version = register_version(
        database,
        name=version_dir.name,
        path=version_dir,
        settings=settings,
        data_snapshot=data.snapshot,
        metrics=summary,
        evaluation=evaluation,
        parent_id=parent_id,
    )
    if promote_it:
        promote(database, version.name)


def _close_run(run_dir: Path, name: str, evaluation: dict[str, Any], database: Database) -> None:
    """Record the evaluation, and close the run: the version holds the model now; the run
    keeps its metrics, curve and meta."""
    from chatbot.models.versions import set_evaluation

    set_evaluation(database, name, evaluation)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    rs.remove_resume_state(run_dir)
    state = ck.read_json(run_dir / ck.STATE_FILE) or {}
    write_json_atomic(
        run_dir / ck.STATE_FILE,
        {**state, "status": "finished", "finished_at": ck.now_iso(), "version": name},
        temp=run_dir / f".{ck.STATE_FILE}.tmp",
    )
