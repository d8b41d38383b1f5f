"""The optimisation loop of one run, on one process or many (DDP): AdamW with warm-up
and cosine decay (following the step budget or the clock, whichever runs out first),
gradient accumulation and clipping, noise augmentation and retrieve-and-refine examples
(the true reply among the past answers, see `refine_examples`), validation at intervals,
early stopping, and checkpoints plus resume state at every validation. `train_loop`
drives a `_Trainer` through named steps (set-up, one optimizer step, whether to
validate, validation with checkpoint and early stop, the replica check). The examples
and batches it trains on are `epoch_examples`'; the resume state's file format is
`resume`'s job; what happens to the checkpoints afterwards (fusion, versions) is `run`'s.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.pairs import PairRecord
from chatbot.text.prompt import PromptFormat
from chatbot.training import checkpoints as ck
from chatbot.training.data import TrainingData
from chatbot.training.distributed import DistInfo, all_reduce
from chatbot.training.epoch_examples import (
    encode_examples,
    epoch_batches,
    train_example,
)
from chatbot.training.examples import Encoded, collate
from chatbot.training.model import (
    autocast_context,
    build_loss_module,
    evaluate,
    load_trainable_state,
    trainable_state,
)
from chatbot.training.resume import RESUME_JSON, ResumeState, check_fits, save_resume_state
from chatbot.training.settings import TrainingSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

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


def _wrap_for_ddp(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """The loss module on the process's device; under DDP, wrapped so gradients sync."""
    loss_module = build_loss_module(model).to(info.device)
    if not info.distributed:
        return loss_module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        loss_module, device_ids=[info.local_rank] if info.device.startswith("cuda") else None
    )


def _build_optimizer(
    model: torch.nn.Module, cfg: TrainingSettings
) -> tuple[torch.optim.AdamW, list[torch.nn.Parameter]]:
    """AdamW over the trainable parameters, with no weight decay on biases and norms."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=cfg.peak_learning_rate,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    return optimizer, params


@dataclass
class _Position:
    """Where the loop is: what a resume state keeps, plus this session's clocks."""

    total_steps: int
    budget_s: float | None
    step: int = 0
    epoch: int = 0
    cursor: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    baseline: float = math.inf
    best_loss: float = math.inf
    bad_evals: int = 0
    prior_seconds: float = 0.0  # the loop's time before this session (a resumed run)
    train_tokens: int = 0
    compute_seconds: float = 0.0
    val_seconds: float = 0.0  # the longest validation so far, for the clock reserve
    resumed_from: int | None = None


@dataclass
class _StepOutcome:
    mean_loss: float
    now: float  # the loop's elapsed seconds, the slowest process's
    out_of_time: bool


class _Trainer:
    """One run's optimisation, step by step; `train_loop` drives it."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        data: TrainingData,
        evidence: dict[int, list[str]],
        cfg: TrainingSettings,
        prompt: PromptFormat,
        *,
        run_dir: Path,
        info: DistInfo,
        checkpoint_meta: dict[str, Any],
        progress: Progress | None,
        budget_s: float | None,
    ) -> None:
        self.model, self.tokenizer, self.data, self.evidence = model, tokenizer, data, evidence
        self.cfg, self.prompt, self.run_dir, self.info = cfg, prompt, run_dir, info
        self.checkpoint_meta, self.progress = checkpoint_meta, progress
        self.pad_id = int(tokenizer.pad_token_id)
        # The clock budget counts encoding and the first validation too.
        self.loop_start = time.monotonic()
        self.examples = encode_examples(tokenizer, data, evidence, cfg, prompt)
        self.wrapped = _wrap_for_ddp(model, info)
        self.optimizer, self.params = _build_optimizer(model, cfg)
        steps_per_epoch = max(
            1,
            len(self.examples.train_pairs) // (cfg.batch_size * cfg.grad_accum * info.world_size),
        )
        total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
        self.eval_every = cfg.eval_every or max(1, total_steps // 6)
        self.pos = _Position(total_steps=total_steps, budget_s=budget_s)
        self.batches: list[list[PairRecord]] = []
        self.last_eval_time = 0.0
        # How often a train example showed its own reply (this process, this session).
        self.shown_reply = {"exact": 0, "near_copy": 0, "examples": 0}

    # -- set-up -------------------------------------------------------------------------

    def start(self, resume_state: ResumeState | None) -> None:
        """Measure the baseline, or take up a resumed run where its state left it."""
        if resume_state is not None:
            self._restore(resume_state)
        else:
            self.pos.baseline = self.validate()
            if self.progress:
                self.progress(
                    {
                        "event": "baseline",
                        "val_loss": self.pos.baseline,
                        "total_steps": self.pos.total_steps,
                    }
                )
        self.pos.best_loss = min(
            [float(v["val_loss"]) for v in self.pos.validations], default=self.pos.baseline
        )
        self.last_eval_time = time.monotonic()
        self.batches = epoch_batches(
            self.examples.lengths, self.examples.train_pairs, self.pos.epoch, self.cfg, self.info
        )

    def _restore(self, state: ResumeState) -> None:
        import torch

        check_fits(
            state,
            self.run_dir / RESUME_JSON,
            trainable_state(self.model),
            [list(group["params"]) for group in self.optimizer.param_groups],
        )
        load_trainable_state(self.model, state.weights)
        self.optimizer.load_state_dict(state.optimizer)
        torch.set_rng_state(state.torch_rng)
        self.pos = _Position(
            total_steps=state.total_steps,
            budget_s=state.budget_s,
            step=state.step,
            epoch=state.epoch,
            cursor=state.cursor,
            history=state.history,
            validations=state.validations,
            baseline=state.baseline_val_loss,
            bad_evals=state.bad_evals,
            prior_seconds=state.train_seconds,
            train_tokens=state.train_tokens,
            compute_seconds=state.compute_seconds,
            val_seconds=state.val_seconds,
            resumed_from=state.step,
        )
        log.info("resuming at step %d of %d", state.step, state.total_steps)

    # -- one optimizer step -------------------------------------------------------------

    def elapsed(self) -> float:
        return self.pos.prior_seconds + (time.monotonic() - self.loop_start)

    def _next_batch(self) -> list[Encoded]:
        """The next micro-batch's examples, starting a new epoch when this one is used up."""
        pos = self.pos
        if pos.cursor >= len(self.batches):
            pos.epoch, pos.cursor = pos.epoch + 1, 0
            self.batches = epoch_batches(
                self.examples.lengths, self.examples.train_pairs, pos.epoch, self.cfg, self.info
            )
        batch_pairs = self.batches[pos.cursor]
        pos.cursor += 1
        encoded: list[Encoded] = []
        for p in batch_pairs:
            e, inserted = train_example(
                self.tokenizer,
                p,
                self.evidence.get(p.id, []),
                pos.epoch,
                self.cfg,
                self.prompt,
                self.examples.clean[p.id],
            )
            assert e is not None  # train_pairs holds only pairs whose clean encoding fits
            encoded.append(e)
            self.shown_reply["examples"] += 1
            if inserted:
                self.shown_reply[inserted] += 1
        return encoded

    def _accumulate(self) -> tuple[float, int]:
        """Forward and backward over `grad_accum` micro-batches; (mean loss, tokens)."""
        cfg, info = self.cfg, self.info
        step_loss, step_tokens = 0.0, 0
        for micro in range(cfg.grad_accum):
            t = {k: v.to(info.device) for k, v in collate(self._next_batch(), self.pad_id).items()}
            sync = micro == cfg.grad_accum - 1 or not info.distributed
            with self.wrapped.no_sync() if not sync else contextlib.nullcontext():  # type: ignore[operator]  # no_sync exists whenever sync is False (DDP)
                with autocast_context(info.device):
                    loss, _, _ = self.wrapped(
                        t["input_ids"],
                        t["attention_mask"],
                        t["labels"],
                        t["weights"],
                        cfg.label_smoothing,
                    )
                (loss / cfg.grad_accum).backward()
            step_loss += float(loss.detach()) / cfg.grad_accum
            step_tokens += int(t["attention_mask"].sum())
        return step_loss, step_tokens

    def train_step(self) -> _StepOutcome:
        """One optimizer step: accumulate, clip, set the scheduled learning rate, update,
        and record the step in the history (and to `progress`)."""
        import torch

        pos, cfg, info = self.pos, self.cfg, self.info
        step_started = time.monotonic()
        step_loss, step_tokens = self._accumulate()
        torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        # Every process takes the same clock (the slowest one's) so schedules never diverge.
        now, reserve = all_reduce([self.elapsed(), 2.2 * pos.val_seconds], info, op="max")
        frac = pos.step / pos.total_steps
        if pos.budget_s:
            frac = max(frac, (now + reserve) / pos.budget_s)
        lr = lr_at(frac, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        pos.step += 1
        pos.compute_seconds += time.monotonic() - step_started
        mean_loss, tokens_all = all_reduce([step_loss / info.world_size, float(step_tokens)], info)
        pos.train_tokens += int(tokens_all)
        pos.history.append(
            {
                "step": pos.step,
                "train_loss": mean_loss,
                "lr": lr,
                "elapsed_s": round(now, 2),
                "tokens": pos.train_tokens,
            }
        )
        out_of_time = bool(pos.budget_s and now + reserve >= pos.budget_s)
        if self.progress:
            self.progress(
                {
                    "event": "step",
                    "step": pos.step,
                    "total_steps": pos.total_steps,
                    "train_loss": mean_loss,
                    "lr": lr,
                    "elapsed_s": now,
                    "budget_s": pos.budget_s - reserve if pos.budget_s else None,
                    "tokens": pos.train_tokens,
                }
            )
        return _StepOutcome(mean_loss=mean_loss, now=now, out_of_time=out_of_time)

    # -- validation, checkpoints, early stopping ------------------------------------------

    def validation_due(self, out_of_time: bool) -> bool:
        """Every `eval_every` steps, at the last step, when time is up, or every
        `eval_every_minutes`. Every process takes part (the clock is all-reduced)."""
        pos, cfg = self.pos, self.cfg
        (since_eval,) = all_reduce([time.monotonic() - self.last_eval_time], self.info, op="max")
        return (
            pos.step % self.eval_every == 0
            or pos.step == pos.total_steps
            or out_of_time
            or (cfg.eval_every_minutes is not None and since_eval >= cfg.eval_every_minutes * 60)
        )

    def validate(self) -> float:
        """The validation loss over all processes (inf when it is not finite)."""
        t0 = time.monotonic()
        total, tokens = evaluate(
            self.wrapped,
            self.examples.val_encoded,
            batch_size=self.cfg.batch_size * 2,
            device=self.info.device,
            pad_id=self.pad_id,
            rank=self.info.rank,
            world_size=self.info.world_size,
        )
        total, tokens = all_reduce([total, tokens], self.info)
        loss = total / max(tokens, 1.0)
        self.pos.val_seconds = max(self.pos.val_seconds, time.monotonic() - t0)
        return loss if math.isfinite(loss) else float("inf")

    def validate_and_checkpoint(self, train_loss: float) -> bool:
        """Validate, save a checkpoint and the resume state (main process), report, and
        say whether early stopping ends the run."""
        pos, cfg = self.pos, self.cfg
        val_loss = self.validate()
        self.last_eval_time = time.monotonic()
        improved = val_loss < pos.best_loss - cfg.min_delta
        pos.best_loss = min(pos.best_loss, val_loss)
        pos.bad_evals = 0 if improved else pos.bad_evals + 1
        record: dict[str, Any] = {
            "step": pos.step,
            "val_loss": val_loss,
            "train_loss": train_loss,
            "elapsed_s": round(self.elapsed(), 2),
            "checkpoint": None,
        }
        pos.validations.append(record)
        if self.info.is_main:
            self._save(record, val_loss, train_loss)
        if self.progress:
            self.progress(
                {
                    "event": "validation",
                    "step": pos.step,
                    "val_loss": val_loss,
                    "best_val_loss": pos.best_loss,
                    "bad_evals": pos.bad_evals,
                }
            )
        return pos.bad_evals >= cfg.patience

    def _save(self, record: dict[str, Any], val_loss: float, train_loss: float) -> None:
        import torch

        pos = self.pos
        weights = trainable_state(self.model)
        path = ck.save_checkpoint(
            self.run_dir,
            pos.step,
            weights,
            {"val_loss": val_loss, "train_loss": train_loss, **self.checkpoint_meta},
        )
        record["checkpoint"] = str(path)
        save_resume_state(
            self.run_dir,
            ResumeState(
                step=pos.step,
                epoch=pos.epoch,
                cursor=pos.cursor,
                total_steps=pos.total_steps,
                history=pos.history,
                validations=pos.validations,
                baseline_val_loss=pos.baseline,
                bad_evals=pos.bad_evals,
                train_seconds=self.elapsed(),
                train_tokens=pos.train_tokens,
                compute_seconds=pos.compute_seconds,
                budget_s=pos.budget_s,
                val_seconds=pos.val_seconds,
                fingerprint=self.data.snapshot.get("fingerprint"),
                weights=weights,
                optimizer=dict(self.optimizer.state_dict()),
                torch_rng=torch.get_rng_state(),
            ),
        )
        ck.prune_checkpoints(self.run_dir, pos.validations, self.cfg.fuse_top_k, {pos.step})

    # -- the end ------------------------------------------------------------------------

    def log_shown_replies(self) -> None:
        shown = self.shown_reply["exact"] + self.shown_reply["near_copy"]
        if shown:
            log.info(
                "retrieve and refine: %d of %d train examples showed their own reply "
                "(%d as a near copy)",
                shown,
                self.shown_reply["examples"],
                self.shown_reply["near_copy"],
            )

    def check_replicas(self) -> None:
        """DDP keeps every replica identical; check it, since a silent divergence would
        make the saved model (rank 0's) differ from what was validated."""
        if not self.info.distributed:
            return
        checksum = float(sum(float(p.detach().double().sum()) for p in self.params))
        (high,) = all_reduce([checksum], self.info, op="max")
        (low,) = all_reduce([-checksum], self.info, op="max")
        if abs(high + low) > 1e-6 * max(1.0, abs(high)):
            from chatbot.training import TrainingError

            raise TrainingError(
                f"the {self.info.world_size} training processes ended with different weights"
            )

    def result(self, stopped: str) -> LoopResult:
        pos = self.pos
        return LoopResult(
            steps=pos.step,
            total_steps=pos.total_steps,
            stopped_because=stopped,
            baseline_val_loss=pos.baseline,
            history=pos.history,
            validations=pos.validations,
            train_tokens=pos.train_tokens,
            train_seconds=self.elapsed(),
            compute_seconds=pos.compute_seconds,
            skipped_examples=self.examples.skipped,
            resumed_from_step=pos.resumed_from,
            replicas_checked=self.info.world_size,
        )


def train_loop(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: TrainingData,
    evidence: dict[int, list[str]],
    cfg: TrainingSettings,
    prompt: PromptFormat,
    *,
    run_dir: Path,
    info: DistInfo,
    resume_state: ResumeState | None = None,
    checkpoint_meta: dict[str, Any] | None = None,
    progress: Progress | None = None,
    budget_s: float | None = None,
) -> LoopResult:
    """Train `model` (already prepared for LoRA or full) in place; returns what happened.
    On the main process, writes a checkpoint and the resume state at each validation."""
    trainer = _Trainer(
        model,
        tokenizer,
        data,
        evidence,
        cfg,
        prompt,
        run_dir=run_dir,
        info=info,
        checkpoint_meta=checkpoint_meta or {},
        progress=progress,
        budget_s=budget_s,
    )
    trainer.start(resume_state)
    stopped = "max_steps"
    while trainer.pos.step < trainer.pos.total_steps:
        outcome = trainer.train_step()
        if trainer.validation_due(outcome.out_of_time) and trainer.validate_and_checkpoint(
            outcome.mean_loss
        ):
            stopped = "early_stop"
            break
        if outcome.out_of_time:
            stopped = "time"
            break
    trainer.log_shown_replies()
    trainer.check_replicas()
    return trainer.result(stopped)
