"""Checkpoints of a run on disk: the trainable weights at each validation (with a
meta.json), the run's state.json, which checkpoints are kept, and finding an unfinished
run to resume. Everything is written to a temporary path and renamed, so a kill never
leaves a half-written checkpoint. The resume state's file format is `resume`'s job;
deciding when to save is `loop`'s.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.files import replace_directory, write_json_atomic
from chatbot.training.resume import resume_files_exist

if TYPE_CHECKING:
    import torch

STATE_FILE = "state.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def read_json(path: Path) -> dict[str, object] | None:
    """A JSON object from `path`, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def save_checkpoint(
    run_dir: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, object]
) -> Path:
    """Trainable weights (safetensors) and meta.json for one validation point."""
    from safetensors.torch import save_file

    target = checkpoint_dir(run_dir, step)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(
        {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()},
        str(tmp / "trainable.safetensors"),
    )
    write_json_atomic(
        tmp / "meta.json",
        {
            "what": "training checkpoint (trainable weights only)",
            "step": step,
            "created_at": now_iso(),
            **meta,
        },
    )
    replace_directory(tmp, target)
    return target


def load_checkpoint_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "trainable.safetensors"))


def prune_checkpoints(
    run_dir: Path, validations: list[dict[str, Any]], keep_best: int, keep_steps: set[int]
) -> None:
    """Delete checkpoints that are neither among the `keep_best` lowest validation
    losses nor in `keep_steps` (the one the resume state points to)."""
    ranked = sorted(
        (v for v in validations if v.get("checkpoint")), key=lambda v: (v["val_loss"], v["step"])
    )
    keep = {v["step"] for v in ranked[:keep_best]} | keep_steps
    for v in validations:
        if v.get("checkpoint") and v["step"] not in keep:
            shutil.rmtree(v["checkpoint"], ignore_errors=True)
            v["checkpoint"] = None


def latest_unfinished_run(runs_dir: Path) -> Path | None:
    """The most recently started run whose state says it is still running (killed)."""
    candidates = []
    for state_path in runs_dir.glob(f"*/{STATE_FILE}"):
        state = read_json(state_path)
        if state and state.get("status") == "running" and resume_files_exist(state_path.parent):
            candidates.append((state.get("started_at", ""), state_path.parent))
    return max(candidates)[1] if candidates else None
