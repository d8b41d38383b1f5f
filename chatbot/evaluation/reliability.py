"""The question–answer fit model's calibration as a person reads it: a reliability
diagram (mean predicted probability against the share that was right, per bin) from the
report `chatbot index` stores with each version (`chatbot.indexing.answer_classes`).
Drawing only; measuring is the index build's job, printing `chatbot eval fit`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def reliability_plot(report: dict[str, Any], path: Path) -> Path:
    """Write the reliability diagram of `report` ("bins", "ece") as a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = report.get("bins") or []
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    if bins:
        ax.plot(
            [b["mean_probability"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label="fit model",
        )
        for b in bins:
            ax.annotate(str(b["n"]), (b["mean_probability"], b["accuracy"]), fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability that the best answer class is right")
    ax.set_ylabel("share right (held-out reworded questions)")
    ax.set_title(f"Reliability, ECE {report.get('ece')}")
    ax.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
