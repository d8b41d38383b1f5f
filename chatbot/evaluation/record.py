"""A model version's latest reply evaluation, kept in `model_versions.evaluation` under
the key "replies" beside what training wrote there (validation loss, promotion), and
a one-line summary of it for listings. Running the evaluation is `replies`' job."""

from __future__ import annotations

from typing import Any

KEY = "replies"


def record_evaluation(database: Any, version_name: str, summary: dict[str, Any]) -> None:
    """Replace the version's previous reply evaluation with `summary`, keeping the rest."""
    from chatbot.models.versions import get_version, set_evaluation

    current = get_version(database, version_name).evaluation
    set_evaluation(database, version_name, {**current, KEY: summary})


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def evaluation_line(evaluation: dict[str, Any] | None, variant: str = "trained") -> str | None:
    """e.g. "ROUGE-L 0.182 · BLEU 4.1 · sim 0.512 · hand-off 0% · p50 2.31s (40 turns of
    stc3_helpdesk_en.train.jsonl, 2026-05-01)", or None when the version was never evaluated."""
    replies = (evaluation or {}).get(KEY)
    if not replies:
        return None
    figures = (replies.get("variants") or {}).get(variant)
    if not figures:
        return None
    test = ", ".join(replies.get("test") or []) or "?"
    when = str(replies.get("evaluated_at", ""))[:10]
    latency = (figures.get("latency_s") or {}).get("p50")
    return (f"ROUGE-L {_fmt(figures.get('rouge_l'), '.3f')} · BLEU {_fmt(figures.get('bleu'), '.1f')} · "
            f"sim {_fmt(figures.get('embedding_similarity'), '.3f')} · hand-off {_fmt(figures.get('handoff_rate'), '.0f', 100)}% · "
            f"p50 {_fmt(latency, '.2f')}s ({figures.get('n', '?')} turns of {test}, {when})")
