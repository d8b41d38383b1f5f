"""The optimisation loop of one run, on one process or many (DDP): AdamW with warm-up
and cosine decay (following the step budget or the clock, whichever runs out first),
gradient accumulation and clipping, noise augmentation and retrieve-and-refine examples
(the true reply among the past answers, see `refine_examples`), validation at intervals,
early stopping, and checkpoints plus resume state at every validation. What happens to
the checkpoints afterwards (fusion, versions) is `run`'s job.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.pairs import PairRecord
from chatbot.training import checkpoints as ck
from chatbot.training.data import TrainingData
from chatbot.training.distributed import DistInfo, all_reduce
from chatbot.training.examples import Encoded, collate, encode_pair
from chatbot.training.model import (
    build_loss_module,
    evaluate,
    load_trainable_state,
    trainable_state,
)
from chatbot.training.prompt import PromptFormat
from chatbot.training.refine_examples import shown_evidence
from chatbot.training.settings import TrainingSettings

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]


@dataclass
class LoopResult:
    steps: int
    total_steps: int
    stopped_because: str  # max_steps | time | early_stop
    baseline_val_loss: float
    history: list[dict[str, Any]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    train_tokens: int = 0
    train_seconds: float = 0.0  # the loop's wall time, validations included
    compute_seconds: float = 0.0  # forward, backward and optimizer steps only
    skipped_examples: int = 0
    resumed_from_step: int | None = None
    replicas_checked: int = 1

    @property
    def best(self) -> dict[str, Any]:
        return min(self.validations, key=lambda v: (v["val_loss"], v["step"]))


def lr_at(progress: float, cfg: TrainingSettings) -> float:
    """Linear warm-up over `warmup_fraction` of the run, then cosine decay to `min_lr_fraction`."""
    peak = cfg.peak_learning_rate
    progress = min(max(progress, 0.0), 1.0)
    if cfg.warmup_fraction > 0 and progress < cfg.warmup_fraction:
        return peak * max(progress / cfg.warmup_fraction, 0.02)
    rest = (progress - cfg.warmup_fraction) / max(1e-9, 1 - cfg.warmup_fraction)
    floor = peak * cfg.min_lr_fraction
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * rest))


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


def _is_noised(pair: PairRecord, epoch: int, cfg: TrainingSettings) -> bool:
    return random.Random(f"noise?:{cfg.seed}:{epoch}:{pair.id}").random() < cfg.noise_probability


def train_example(
    tokenizer: Any,
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
    noised = _is_noised(pair, epoch, cfg)
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


def train_loop(
    model: Any,
    tokenizer: Any,
    data: TrainingData,
    evidence: dict[int, list[str]],
    cfg: TrainingSettings,
    prompt: PromptFormat,
    *,
    run_dir: Path,
    info: DistInfo,
    resume_state: dict[str, Any] | None = None,
    checkpoint_meta: dict[str, Any] | None = None,
    progress: Progress | None = None,
    budget_s: float | None = None,
) -> LoopResult:
    """Train `model` (already prepared for LoRA or full) in place; returns what happened.
    On the main process, writes a checkpoint and the resume state at each validation."""
    import torch

    device = info.device
    pad_id = tokenizer.pad_token_id
    loop_start = time.monotonic()  # the clock budget counts encoding and the first validation too
    # Clean encodings: validation examples, and the lengths used to group batches.
    clean: dict[int, Encoded | None] = {
        p.id: encode_pair(tokenizer, p, evidence.get(p.id, []), cfg, prompt) for p in data.train
    }
    train_pairs = [p for p in data.train if clean[p.id] is not None]
    skipped = len(data.train) - len(train_pairs)
    lengths = {pid: len(e.input_ids) for pid, e in clean.items() if e is not None}
    val_encoded = [
        e
        for e in (encode_pair(tokenizer, p, evidence.get(p.id, []), cfg, prompt) for p in data.val)
        if e is not None
    ]

    loss_module = build_loss_module(model).to(device)
    wrapped: Any = loss_module
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            loss_module, device_ids=[info.local_rank] if device.startswith("cuda") else None
        )

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.peak_learning_rate,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    steps_per_epoch = max(
        1, len(train_pairs) // (cfg.batch_size * cfg.grad_accum * info.world_size)
    )
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    eval_every = cfg.eval_every or max(1, total_steps // 6)
    # The clock budget covers the finishing work too: training stops early enough to leave
    # time for a last validation and the fused model's (about two validations).
    val_seconds = 0.0

    def validate() -> float:
        nonlocal val_seconds
        t0 = time.monotonic()
        total, tokens = evaluate(
            wrapped,
            val_encoded,
            batch_size=cfg.batch_size * 2,
            device=device,
            pad_id=pad_id,
            rank=info.rank,
            world_size=info.world_size,
        )
        total, tokens = all_reduce([total, tokens], info)
        loss = total / max(tokens, 1.0)
        val_seconds = max(val_seconds, time.monotonic() - t0)
        return loss if math.isfinite(loss) else float("inf")

    if resume_state is not None:
        load_trainable_state(model, ck.load_checkpoint_tensors(Path(resume_state["checkpoint"])))
        optimizer.load_state_dict(resume_state["optimizer"])
        step = resume_state["step"]
        epoch, cursor = resume_state["epoch"], resume_state["cursor"]
        history, validations = resume_state["history"], resume_state["validations"]
        baseline, bad_evals = resume_state["baseline_val_loss"], resume_state["bad_evals"]
        prior_seconds, train_tokens = resume_state["train_seconds"], resume_state["train_tokens"]
        compute_seconds = resume_state.get("compute_seconds", 0.0)
        total_steps = resume_state["total_steps"]
        budget_s, val_seconds = resume_state.get("budget_s"), resume_state.get("val_seconds", 0.0)
        torch.set_rng_state(resume_state["torch_rng"])
        resumed_from: int | None = step
        log.info("resuming at step %d of %d", step, total_steps)
    else:
        step, epoch, cursor, history, validations = 0, 0, 0, [], []
        baseline = validate()
        bad_evals, prior_seconds, train_tokens, resumed_from = 0, 0.0, 0, None
        compute_seconds = 0.0
        if progress:
            progress({"event": "baseline", "val_loss": baseline, "total_steps": total_steps})

    best_loss = min([v["val_loss"] for v in validations], default=baseline)
    last_eval_time = time.monotonic()
    batches = epoch_batches(lengths, train_pairs, epoch, cfg, info)
    stopped = "max_steps"
    shown_reply: dict[str, int] = {
        "exact": 0,
        "near_copy": 0,
        "examples": 0,
    }  # this process, this session

    def elapsed() -> float:
        return prior_seconds + (time.monotonic() - loop_start)

    while step < total_steps:
        step_started = time.monotonic()
        step_loss, step_tokens = 0.0, 0
        for micro in range(cfg.grad_accum):
            if cursor >= len(batches):
                epoch, cursor = epoch + 1, 0
                batches = epoch_batches(lengths, train_pairs, epoch, cfg, info)
            batch_pairs = batches[cursor]
            cursor += 1
            encoded = []
            for p in batch_pairs:
                e, inserted = train_example(
                    tokenizer, p, evidence.get(p.id, []), epoch, cfg, prompt, clean[p.id]
                )
                encoded.append(e)
                shown_reply["examples"] += 1
                if inserted:
                    shown_reply[inserted] += 1
            t = {k: v.to(device) for k, v in collate(encoded, pad_id).items()}
            sync = micro == cfg.grad_accum - 1 or not info.distributed
            ctx = wrapped.no_sync() if not sync else _null()
            with ctx:
                from chatbot.training.model import autocast_context

                with autocast_context(device):
                    loss, _, _ = wrapped(
                        t["input_ids"],
                        t["attention_mask"],
                        t["labels"],
                        t["weights"],
                        cfg.label_smoothing,
                    )
                (loss / cfg.grad_accum).backward()
            step_loss += float(loss.detach()) / cfg.grad_accum
            step_tokens += int(t["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        # Every process takes the same clock (the slowest one's) so schedules never diverge.
        now, reserve = all_reduce([elapsed(), 2.2 * val_seconds], info, op="max")
        frac = step / total_steps
        if budget_s:
            frac = max(frac, (now + reserve) / budget_s)
        lr = lr_at(frac, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        compute_seconds += time.monotonic() - step_started
        mean_loss, tokens_all = all_reduce([step_loss / info.world_size, float(step_tokens)], info)
        train_tokens += int(tokens_all)
        history.append(
            {
                "step": step,
                "train_loss": mean_loss,
                "lr": lr,
                "elapsed_s": round(now, 2),
                "tokens": train_tokens,
            }
        )
        out_of_time = bool(budget_s and now + reserve >= budget_s)
        (since_eval,) = all_reduce([time.monotonic() - last_eval_time], info, op="max")
        due = (
            step % eval_every == 0
            or step == total_steps
            or out_of_time
            or (cfg.eval_every_minutes is not None and since_eval >= cfg.eval_every_minutes * 60)
        )
        if progress:
            progress(
                {
                    "event": "step",
                    "step": step,
                    "total_steps": total_steps,
                    "train_loss": mean_loss,
                    "lr": lr,
                    "elapsed_s": now,
                    "budget_s": budget_s - reserve if budget_s else None,
                    "tokens": train_tokens,
                }
            )
        if due:
            val_loss = validate()
            last_eval_time = time.monotonic()
            improved = val_loss < best_loss - cfg.min_delta
            best_loss = min(best_loss, val_loss)
            bad_evals = 0 if improved else bad_evals + 1
            record = {
                "step": step,
                "val_loss": val_loss,
                "train_loss": mean_loss,
                "elapsed_s": round(elapsed(), 2),
                "checkpoint": None,
            }
            validations.append(record)
            if info.is_main:
                path = ck.save_checkpoint(
                    run_dir,
                    step,
                    trainable_state(model),
                    {"val_loss": val_loss, "train_loss": mean_loss, **(checkpoint_meta or {})},
                )
                record["checkpoint"] = str(path)
                ck.save_resume_state(
                    run_dir,
                    {
                        "checkpoint": str(path),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "epoch": epoch,
                        "cursor": cursor,
                        "history": history,
                        "validations": validations,
                        "baseline_val_loss": baseline,
                        "bad_evals": bad_evals,
                        "train_seconds": elapsed(),
                        "train_tokens": train_tokens,
                        "total_steps": total_steps,
                        "torch_rng": torch.get_rng_state(),
                        "budget_s": budget_s,
                        "val_seconds": val_seconds,
                        "compute_seconds": compute_seconds,
                        "fingerprint": data.snapshot.get("fingerprint"),
                    },
                )
                ck.prune_checkpoints(run_dir, validations, cfg.fuse_top_k, {step})
            if progress:
                progress(
                    {
                        "event": "validation",
                        "step": step,
                        "val_loss": val_loss,
                        "best_val_loss": best_loss,
                        "bad_evals": bad_evals,
                    }
                )
            if bad_evals >= cfg.patience:
                stopped = "early_stop"
                break
        if out_of_time:
            stopped = "time"
            break
    if shown_reply["exact"] + shown_reply["near_copy"]:
        log.info(
            "retrieve and refine: %d of %d train examples showed their own reply (%d as a near copy)",
            shown_reply["exact"] + shown_reply["near_copy"],
            shown_reply["examples"],
            shown_reply["near_copy"],
        )
    if info.distributed:
        # DDP keeps every replica identical; check it, since a silent divergence would
        # make the saved model (rank 0's) differ from what was validated.
        checksum = float(sum(p.detach().double().sum() for p in params))
        (high,) = all_reduce([checksum], info, op="max")
        (low,) = all_reduce([-checksum], info, op="max")
        if abs(high + low) > 1e-6 * max(1.0, abs(high)):
            from chatbot.training import TrainingError

            raise TrainingError(
                f"the {info.world_size} training processes ended with different weights"
            )
    return LoopResult(
        steps=step,
        total_steps=total_steps,
        stopped_because=stopped,
        baseline_val_loss=baseline,
        history=history,
        validations=validations,
        train_tokens=train_tokens,
        train_seconds=elapsed(),
        compute_seconds=compute_seconds,
        skipped_examples=skipped,
        resumed_from_step=resumed_from,
        replicas_checked=info.world_size,
    )


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
