"""A model version's latest reply evaluation, kept in `model_versions.evaluation` under
the key "replies" beside what training wrote there (validation loss, promotion), and
a one-line summary of it for listings (new evaluations carry 95% intervals; older ones,
made by the earlier scorer, are still read). Running the evaluation is `replies`' job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbot.store.database import Database

KEY = "replies"


def record_evaluation(database: Database, version_name: str, summary: dict[str, Any]) -> None:
    """Replace the version's previous reply evaluation with `summary`, keeping the rest."""
    from chatbot.models.versions import get_version, set_evaluation

    current = get_version(database, version_name).evaluation
    set_evaluation(database, version_name, {**current, KEY: summary})


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _ci(figure: object, spec: str, scale: float = 1.0, unit: str = "") -> str:
    """ "0.182 [0.150, 0.214]" from {value, low, high}."""
    if not isinstance(figure, dict) or figure.get("value") is None:
        return "-"
    return (
        f"{_fmt(figure['value'], spec, scale)}{unit} [{_fmt(figure.get('low'), spec, scale)}, "
        f"{_fmt(figure.get('high'), spec, scale)}]"
    )


def evaluation_line(evaluation: dict[str, Any] | None, variant: str = "trained") -> str | None:
    """e.g. "answered 100% [100, 100] · ROUGE-L 0.182 [0.150, 0.214] · sim 0.512 [0.480, 0.540] ·
    p50 2.31s [2.10, 2.52] (310 of 310 turns of stc3_helpdesk_en.train.jsonl, 2026-05-01)" (the quality
    figures are over the answered turns, brackets are 95% intervals), or None when the
    version was never evaluated. Evaluations stored before intervals existed keep their
    old line ("ROUGE-L 0.182 · BLEU 4.1 · ...")."""
    replies = (evaluation or {}).get(KEY)
    if not replies:
        return None
    figures = (replies.get("variants") or {}).get(variant)
    if not figures:
        return None
    test = ", ".join(replies.get("test") or []) or "?"
    when = str(replies.get("evaluated_at", ""))[:10]
    if "coverage" not in figures:  # stored by the earlier scorer
        latency = (figures.get("latency_s") or {}).get("p50")
        return (
            f"ROUGE-L {_fmt(figures.get('rouge_l'), '.3f')} · BLEU {_fmt(figures.get('bleu'), '.1f')} · "
            f"sim {_fmt(figures.get('embedding_similarity'), '.3f')} · hand-off {_fmt(figures.get('handoff_rate'), '.0f', 100)}% · "
            f"p50 {_fmt(latency, '.2f')}s ({figures.get('n', '?')} turns of {test}, {when}; earlier scorer)"
        )
    answered = figures.get("answered") or {}
    available = replies.get("turns_available")
    turns = f"{figures.get('n', '?')} of {available}" if available else str(figures.get("n", "?"))
    return (
        f"answered {_ci(figures.get('coverage'), '.0f', 100, '%')} · ROUGE-L {_ci(answered.get('rouge_l'), '.3f')} · "
        f"sim {_ci(answered.get('embedding_similarity'), '.3f')} · "
        f"p50 {_ci((figures.get('latency_s') or {}).get('p50'), '.2f', unit='s')} ({turns} turns of {test}, {when})"
    )
