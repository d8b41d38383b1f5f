"""Turning a `ReplyEvaluation` into files: report.json (every figure and every turn),
report.md (the table a person reads), meta.json (what made it) and two PNG plots
(each metric per variant; the latency distribution). Each file is written to a
temporary name and renamed, so an interrupted run leaves no half-written report.
Running the evaluation is `replies`' job."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chatbot.evaluation.replies import ReplyEvaluation

METRICS = (("rouge_l", "ROUGE-L"), ("bleu", "BLEU"), ("embedding_similarity", "embedding sim."),
           ("handoff_rate", "hand-off rate"))


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def markdown_table(result: ReplyEvaluation) -> str:
    """The results table: one row per variant."""
    has_doc = any("document" in v for v in result.variants.values())
    head = ["variant", "turns", "ROUGE-L", "BLEU", "emb. sim.", "hand-off", "latency p50 / p95 (s)"]
    if has_doc:
        head.insert(6, "doc match")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in result.variants.items():
        lat = v["latency_s"]
        row = [name, str(v["n"]), _fmt(v["rouge_l"]), _fmt(v["bleu"], ".2f"), _fmt(v["embedding_similarity"]),
               f"{100 * v['handoff_rate']:.0f}%", f"{_fmt(lat['p50'], '.3f')} / {_fmt(lat['p95'], '.3f')}"]
        if has_doc:
            doc = v.get("document")
            row.insert(6, f"{100 * doc['match_rate']:.0f}% of {doc['n']}" if doc else "–")
        lines.append("| " + " | ".join(row) + " |")
    for name, why in result.skipped.items():
        lines.append(f"| {name} | skipped: {why} |" + " |" * (len(head) - 2))
    return "\n".join(lines)


def markdown(result: ReplyEvaluation) -> str:
    d = result.data
    test = ", ".join(Path(p).name for p in d["test_files"]) or f"held-out {d['test_fraction']:.0%} of the train conversations"
    parts = [
        "# Reply evaluation",
        "",
        f"- train: {', '.join(Path(p).name for p in d['train_files'])} "
        f"({d['imported']['conversations']} conversations, {d['index']['pairs']} indexed pairs, "
        f"out-of-scope {'calibrated' if d['index']['calibrated'] else 'not calibrated'})",
        f"- test: {test}; {d['turns_evaluated']} of {d['turns_available']} answered customer turns"
        + (f" (--limit {d['limit']}, seed {d['seed']})" if d["limit"] else ""),
        f"- evaluated at {result.meta['evaluated_at']} in {result.meta.get('seconds', 0):.0f} s",
        "",
        markdown_table(result),
        "",
        "ROUGE-L and embedding similarity are means over turns (0-1); BLEU is sacrebleu corpus BLEU (0-100); "
        "the scored text is the reply (refined: the hand-off notice when it hands off; retrieval: always its best "
        "retrieved answer, its hand-off rate being how often the out-of-scope check would hand off); "
        "\"answered\" figures in report.json cover only the turns not handed off. "
        "Doc match: turns where the real agent sent a help document, answered with a reply or citation that points to it.",
    ]
    if result.notes:
        parts += ["", *(f"- {n}" for n in result.notes)]
    if result.recorded_version:
        parts += ["", f"Recorded as the latest evaluation of model version `{result.recorded_version}`."]
    return "\n".join(parts) + "\n"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def plot_metrics(result: ReplyEvaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.variants)
    panels = list(METRICS)
    if any("document" in v for v in result.variants.values()):
        panels.append(("document", "doc match rate"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (key, label) in zip(axes, panels, strict=True):
        if key == "document":
            values = [(result.variants[n].get("document") or {}).get("match_rate") or 0.0 for n in names]
        else:
            values = [result.variants[n][key] or 0.0 for n in names]
        ax.bar(names, values, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"][: len(names)])
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=30)
        for i, v in enumerate(values):
            ax.annotate(f"{v:.2f}" if key != "bleu" else f"{v:.1f}", (i, v), ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"{result.data['turns_evaluated']} test turns")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def plot_latency(result: ReplyEvaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.variants)
    data = [[t["variants"][n]["seconds"] for t in result.turns if n in t["variants"]] for n in names]
    fig, ax = plt.subplots(figsize=(1.8 * len(names) + 2, 3.6))
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_yscale("log")
    ax.set_ylabel("seconds per turn (log)")
    ax.set_title("reply latency")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(result: ReplyEvaluation, out: Path) -> list[Path]:
    """Write the report files into `out` (created if needed); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in ("report.json", "report.md", "meta.json", "metrics.png", "latency.png")}
    _atomic_write(files["report.json"], (json.dumps(result.to_dict(), indent=2, default=str) + "\n").encode())
    _atomic_write(files["report.md"], markdown(result).encode())
    meta = {**result.meta, "data": {k: v for k, v in result.data.items()}, "files": sorted(files)}
    _atomic_write(files["meta.json"], (json.dumps(meta, indent=2, default=str) + "\n").encode())
    plot_metrics(result, files["metrics.png"])
    plot_latency(result, files["latency.png"])
    return list(files.values())
