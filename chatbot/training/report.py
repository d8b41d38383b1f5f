"""What a run leaves beside itself for people: the loss-curve PNG (matplotlib, Agg
backend) and the JSON of metrics. Computing the metrics is `loop`'s and `run`'s job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatbot.files import atomic_path, write_json_atomic


def write_metrics(directory: Path, metrics: dict[str, Any]) -> Path:
    path = directory / "metrics.json"
    # One temporary name (as a run's other files): a killed run's leftover is replaced.
    write_json_atomic(path, metrics, temp=directory / ".metrics.json.tmp")
    return path


def plot_loss_curve(
    directory: Path,
    history: list[dict[str, Any]],
    validations: list[dict[str, Any]],
    baseline: float | None,
    title: str,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if history:
        ax.plot(
            [h["step"] for h in history],
            [h["train_loss"] for h in history],
            label="train (label-smoothed, with noise)",
            alpha=0.7,
        )
    points = [(0, baseline)] if baseline is not None else []
    points += [(v["step"], v["val_loss"]) for v in validations]
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats per reply token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = directory / "loss_curve.png"
    with atomic_path(path, temp=directory / ".loss_curve.png.tmp") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
