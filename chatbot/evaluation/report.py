"""Turning a `ReplyEvaluation` into text and files: the tables the CLI prints (what was
answered and how well, every turn at equal footing with latency, paired comparisons;
every figure with its 95% interval), report.json (every figure and every turn),
report.md (the tables a person reads), meta.json (what made it) and two PNG plots
(each figure per variant with its interval; the latency distribution). Each file is written to a
temporary name and renamed, so an interrupted run leaves no half-written report.
Running the evaluation is `replies`' job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatbot.evaluation.replies import ReplyEvaluation
from chatbot.files import atomic_path, write_json_atomic, write_text_atomic

PANELS = (
    ("coverage", "answered (share of turns)"),
    ("answered.rouge_l", "ROUGE-L, answered turns"),
    ("answered.embedding_similarity", "emb. sim., answered turns"),
    ("all_turns.rouge_l", "ROUGE-L, all turns (0 if not answered)"),
    ("all_turns.embedding_similarity", "emb. sim., all turns (0 if not answered)"),
)
QUALITY_NOTE = (
    "A turn is answered when the customer was sent a reply; a hand-off, a reply held for an agent or silence is not "
    "an answer and nothing of it is scored. Quality (ROUGE-L F-measure and embedding similarity, means 0-1; BLEU: "
    "sacrebleu corpus BLEU 0-100; doc match: turns where the real agent sent a help document, answered with a reply or "
    'citation that points to it) is over the answered turns; "all turns" scores an unanswered turn 0, the figure at '
    "equal footing when variants answer different turns. Every figure is followed by its 95% bootstrap interval "
    "[low, high] (resampling conversations). Comparisons are paired differences (first minus second variant; on the turns "
    "both answered also as a share of the first variant's figure, in parentheses); a "
    "variant is called better only where the interval of the difference excludes 0."
)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _get(figures: dict[str, Any], dotted: str) -> dict[str, Any] | None:
    """The figure at a dotted path ("answered.rouge_l"): {value, low, high}, or None."""
    found: object = figures
    for part in dotted.split("."):
        found = found.get(part) if isinstance(found, dict) else None
    return found if isinstance(found, dict) else None


def ci(figure: dict[str, Any] | None, spec: str = ".3f") -> str:
    """e.g. "0.145 [0.121, 0.170]"; "–" when there is nothing to show."""
    if not figure or figure.get("value") is None:
        return "–"
    return f"{format(figure['value'], spec)} [{format(figure['low'], spec)}, {format(figure['high'], spec)}]"


def ci_pct(figure: dict[str, Any] | None, signed: bool = False) -> str:
    """e.g. "81% [75, 86]" (a share) or "+12 [4, 20] pts" (a difference of shares)."""
    if not figure or figure.get("value") is None:
        return "–"
    sign = "+" if signed else ""
    text = f"{100 * figure['value']:{sign}.0f}% [{100 * figure['low']:{sign}.0f}, {100 * figure['high']:{sign}.0f}]"
    return text.replace("%", " pts", 1) if signed else text


def _diff(figure: dict[str, Any] | None) -> str:
    return ci(figure, "+.3f")


def _diff_relative(comparison: dict[str, Any], key: str) -> str:
    """e.g. "-0.042 [-0.069, -0.014] (-25% [-43, -8])": the difference on the turns both
    answered and, where recorded, the same as a share of the first variant's figure."""
    both = comparison["both_answered"]
    text = _diff(both[key])
    relative = both.get("relative", {}).get(key)
    if relative and relative.get("value") is not None:
        text += f" ({ci_pct(relative, signed=True).replace(' pts', '%', 1)})"
    return text


def quality_table(result: ReplyEvaluation) -> list[str]:
    """One row per variant: turns, the share answered, quality of the answered turns."""
    has_doc = any("document" in v.get("answered", {}) for v in result.variants.values())
    head = ["variant", "turns", "answered", "ROUGE-L", "emb. sim.", "BLEU"] + (
        ["doc match"] if has_doc else []
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in result.variants.items():
        a = v["answered"]
        row = [
            name,
            str(v["n"]),
            f"{v['answered_n']} = {ci_pct(v['coverage'])}",
            ci(a["rouge_l"]),
            ci(a["embedding_similarity"]),
            ci(a["bleu"], ".2f"),
        ]
        if has_doc:
            doc = a.get("document")
            row.append(f"{ci_pct(doc['match_rate'])} of {doc['n']}" if doc and doc["n"] else "–")
        lines.append("| " + " | ".join(row) + " |")
    for name, why in result.skipped.items():
        lines.append(f"| {name} | skipped: {why} |" + " |" * (len(head) - 2))
    return lines


def footing_table(result: ReplyEvaluation) -> list[str]:
    """One row per variant: quality over all turns (an unanswered turn scores 0) and latency."""
    has_doc = any("document" in v.get("all_turns", {}) for v in result.variants.values())
    head = (
        ["variant", "ROUGE-L, all turns", "emb. sim., all turns"]
        + (["doc match, all"] if has_doc else [])
        + ["latency p50 (s)", "latency p95 (s)"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, v in result.variants.items():
        t, lat = v["all_turns"], v["latency_s"]
        row = [name, ci(t["rouge_l"]), ci(t["embedding_similarity"])]
        if has_doc:
            doc = t.get("document")
            row.append(f"{ci_pct(doc['match_rate'])} of {doc['n']}" if doc else "–")
        lines.append("| " + " | ".join(row + [ci(lat["p50"]), ci(lat["p95"])]) + " |")
    return lines


def comparison_table(result: ReplyEvaluation) -> list[str]:
    """One row per pair of variants: paired differences and the verdict."""
    head = [
        "first − second",
        "answered",
        "ROUGE-L, all turns",
        "emb. sim., all turns",
        "both answered",
        "ROUGE-L, both answered",
        "emb. sim., both answered",
        "verdict",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in result.comparisons:
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{c['a']} − {c['b']}",
                    ci_pct(c["coverage"], signed=True),
                    _diff(c["all_turns"]["rouge_l"]),
                    _diff(c["all_turns"]["embedding_similarity"]),
                    str(c["both_answered"]["n"]),
                    _diff_relative(c, "rouge_l"),
                    _diff_relative(c, "embedding_similarity"),
                    c["verdict"],
                ]
            )
            + " |"
        )
    return lines


def markdown_table(result: ReplyEvaluation) -> str:
    """The results tables: what was answered and how well; at equal footing with latency;
    and, with two or more variants, their paired comparisons."""
    parts = [
        "Answered turns and their quality (95% intervals in brackets):",
        "",
        *quality_table(result),
    ]
    if result.variants:
        parts += [
            "",
            "Every turn, an unanswered one scoring 0, and latency:",
            "",
            *footing_table(result),
        ]
    if result.comparisons:
        parts += ["", "Paired differences (first minus second):", "", *comparison_table(result)]
    return "\n".join(parts)


def turns_line(result: ReplyEvaluation) -> str:
    """e.g. "all 310 held-out turns (41 conversations)" or "16 of 310 held-out turns (--limit 16, seed 0)"."""
    d = result.data
    held = "held-out" if d.get("test_from") != "files" else "test"
    conversations = d.get("conversations_evaluated")
    where = f" from {conversations} conversations" if conversations else ""
    if d["turns_evaluated"] >= d["turns_available"]:
        return f"all {d['turns_evaluated']} {held} turns{where}"
    return (
        f"{d['turns_evaluated']} of {d['turns_available']} {held} turns{where} "
        f"(--limit {d['limit']}, seed {d['seed']}: a quick run, not a measurement)"
    )


def markdown(result: ReplyEvaluation) -> str:
    d = result.data
    test = (
        ", ".join(Path(p).name for p in d["test_files"])
        or f"held-out {d['test_fraction']:.0%} of the train conversations"
    )
    boot = d.get("intervals") or {}
    parts = [
        "# Reply evaluation",
        "",
        f"- train: {', '.join(Path(p).name for p in d['train_files'])} "
        f"({d['imported']['conversations']} conversations, {d['index']['pairs']} indexed pairs, "
        f"out-of-scope {'calibrated' if d['index']['calibrated'] else 'not calibrated'})",
        f"- test: {test}; evaluated {turns_line(result)}",
        f"- intervals: 95% percentile bootstrap, {boot.get('resamples', '?')} resamples of the conversations "
        f"(seed {boot.get('seed', '?')})",
        f"- evaluated at {result.meta['evaluated_at']} in {result.meta.get('seconds', 0):.0f} s",
        "",
        markdown_table(result),
        "",
        QUALITY_NOTE,
    ]
    if result.notes:
        parts += ["", *(f"- {n}" for n in result.notes)]
    if result.recorded_version:
        parts += [
            "",
            f"Recorded as the latest evaluation of model version `{result.recorded_version}`.",
        ]
    return "\n".join(parts) + "\n"


def plot_metrics(result: ReplyEvaluation, path: Path) -> None:
    """One panel per figure (coverage, quality of the answered turns, quality over all
    turns), a bar per variant with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.variants)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.2 * len(PANELS), 3.4))
    for ax, (key, label) in zip(axes, PANELS, strict=True):
        figures = [_get(result.variants[n], key) or {} for n in names]
        values = [f.get("value") or 0.0 for f in figures]
        low = [v - _or(f.get("low"), v) for v, f in zip(values, figures, strict=True)]
        high = [_or(f.get("high"), v) - v for v, f in zip(values, figures, strict=True)]
        ax.bar(
            names,
            values,
            yerr=[low, high],
            capsize=4,
            color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"][: len(names)],
        )
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="x", rotation=30)
        for i, v in enumerate(values):
            ax.annotate(
                f"{v:.2f}",
                (i, v),
                ha="left",
                va="bottom",
                fontsize=7,
                xytext=(3, 0),
                textcoords="offset points",
            )
    fig.suptitle(f"{turns_line(result)}; bars: 95% bootstrap intervals", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_latency(result: ReplyEvaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.variants)
    data = [
        [t["variants"][n]["seconds"] for t in result.turns if n in t["variants"]] for n in names
    ]
    fig, ax = plt.subplots(figsize=(1.8 * len(names) + 2, 3.6))
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_yscale("log")
    ax.set_ylabel("seconds per turn (log)")
    ax.set_title("reply latency")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(result: ReplyEvaluation, out: Path) -> list[Path]:
    """Write the report files into `out` (created if needed); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        name: out / name
        for name in ("report.json", "report.md", "meta.json", "metrics.png", "latency.png")
    }
    write_json_atomic(files["report.json"], result.to_dict())
    write_text_atomic(files["report.md"], markdown(result))
    meta = {**result.meta, "data": {k: v for k, v in result.data.items()}, "files": sorted(files)}
    write_json_atomic(files["meta.json"], meta)
    plot_metrics(result, files["metrics.png"])
    plot_latency(result, files["latency.png"])
    return list(files.values())
