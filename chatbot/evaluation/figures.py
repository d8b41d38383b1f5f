"""A variant's figures and the comparisons between variants, every one with its 95%
bootstrap interval (`intervals`), from per-turn scores.

A turn is *answered* when the customer was sent a reply (decision "answer" or
"answer_flagged"); a hand-off, a held draft or silence is not an answer and its text is
never scored. Per variant:

- `coverage`: the share of turns answered;
- `answered`: quality of the answered turns only (ROUGE-L, embedding similarity, mean
  sentence BLEU, corpus BLEU, document match);
- `all_turns`: the same quality over every turn with an unanswered turn scoring 0: the
  figure at equal footing when variants answer different turns;
- `latency_s`: p50, p95 and mean seconds per turn.

Comparisons, for every pair of variants (a, b), are paired (the same resampled turns
for both): the difference in coverage, in the all-turns figures, and in quality on the
turns both answered (also as a share of a's figure); `better` names the variant whose figure is higher only where the
interval of the difference excludes 0. Scoring texts is `metrics`' job, producing them
`variants`'."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from chatbot.dialogue.records import SENT_REPLIES
from chatbot.evaluation import metrics as M
from chatbot.evaluation.intervals import Resampler, difference

ANSWERED_DECISIONS = tuple(str(d) for d in SENT_REPLIES)
QUALITY = (("rouge_l", "ROUGE-L"), ("embedding_similarity", "emb. sim."))


@dataclass
class TurnScores:
    """One variant's per-turn scores, aligned with the evaluated turns. Quality arrays
    hold 0 where the turn was not answered (and are only read there as the all-turns
    figure's 0); `doc` arrays cover the turns where the agent sent a document."""

    answered: np.ndarray  # bool
    rouge_l: np.ndarray
    embedding_similarity: np.ndarray
    sentence_bleu: np.ndarray
    bleu_stats: np.ndarray  # (turns, statistics); zero rows where not answered
    seconds: np.ndarray
    doc_applies: np.ndarray  # bool
    doc_any: np.ndarray  # bool, False where not answered
    doc_in_text: np.ndarray
    doc_cited: np.ndarray
    decisions: list[str] = field(default_factory=list)
    model_version: str | None = None


def _count(values: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def variant_figures(rs: Resampler, s: TurnScores) -> dict[str, Any]:
    n = int(s.answered.size)
    answered = s.answered.astype(bool)
    out: dict[str, Any] = {
        "n": n,
        "answered_n": int(answered.sum()),
        "coverage": rs.mean(answered.astype(np.float64)),
        "answered": {
            "n": int(answered.sum()),
            "rouge_l": rs.mean(s.rouge_l, answered),
            "embedding_similarity": rs.mean(s.embedding_similarity, answered),
            "sentence_bleu": rs.mean(s.sentence_bleu, answered, digits=2),
            "bleu": rs.summed(s.bleu_stats, M.bleu_from_statistics, answered, digits=2),
        },
        "all_turns": {
            "n": n,
            "rouge_l": rs.mean(np.where(answered, s.rouge_l, 0.0)),
            "embedding_similarity": rs.mean(np.where(answered, s.embedding_similarity, 0.0)),
        },
        "latency_s": {
            "p50": rs.quantile(s.seconds, 0.5),
            "p95": rs.quantile(s.seconds, 0.95),
            "mean": rs.mean(s.seconds),
        },
        "decisions": _count(s.decisions),
        "model_version": s.model_version,
    }
    docs = s.doc_applies.astype(bool)
    if docs.any():
        both = docs & answered
        out["answered"]["document"] = {
            "n": int(both.sum()),
            "match_rate": rs.mean(s.doc_any, both),
            "in_text_rate": rs.mean(s.doc_in_text, both),
            "cited_rate": rs.mean(s.doc_cited, both),
        }
        out["all_turns"]["document"] = {
            "n": int(docs.sum()),
            "match_rate": rs.mean(s.doc_any & answered, docs),
        }
    return out


def _diff(
    rs: Resampler, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None, names: tuple[str, str]
) -> dict[str, Any]:
    value, samples = rs.mean_samples(
        np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), mask
    )
    return difference(value, samples, a=names[0], b=names[1])


def _relative(
    rs: Resampler, a: np.ndarray, b: np.ndarray, mask: np.ndarray, names: tuple[str, str]
) -> dict[str, Any]:
    """(mean(a) - mean(b)) / mean(a) over the masked turns: the difference as a share of
    the first variant's figure (for "knn - refined", -0.41 reads "refined is 41% of
    knn's figure above it"), its interval from the same resamples."""
    value_a, samples_a = rs.mean_samples(a, mask)
    value_b, samples_b = rs.mean_samples(b, mask)
    if value_a is None or value_b is None or value_a <= 0:
        return difference(None, np.full(rs.resamples, np.nan), a=names[0], b=names[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = np.where(samples_a > 0, (samples_a - samples_b) / samples_a, np.nan)
    return difference((value_a - value_b) / value_a, samples, a=names[0], b=names[1])


def compare(
    rs: Resampler, name_a: str, a: TurnScores, name_b: str, b: TurnScores
) -> dict[str, Any]:
    """Paired differences a - b (see the module docstring) and a one-line verdict."""
    names = (name_a, name_b)
    ans_a, ans_b = a.answered.astype(bool), b.answered.astype(bool)
    both = ans_a & ans_b
    out: dict[str, Any] = {
        "a": name_a,
        "b": name_b,
        "coverage": _diff(rs, ans_a, ans_b, None, names),
        "all_turns": {
            key: _diff(
                rs,
                np.where(ans_a, getattr(a, key), 0.0),
                np.where(ans_b, getattr(b, key), 0.0),
                None,
                names,
            )
            for key, _ in QUALITY
        },
        "both_answered": {
            "n": int(both.sum()),
            **{key: _diff(rs, getattr(a, key), getattr(b, key), both, names) for key, _ in QUALITY},
            "relative": {
                key: _relative(rs, getattr(a, key), getattr(b, key), both, names)
                for key, _ in QUALITY
            },
        },
    }
    out["verdict"] = verdict(out)
    return out


def verdict(comparison: dict[str, Any]) -> str:
    """e.g. "retrieval answers more; base higher on ROUGE-L (all turns and turns both answered)",
    or "no difference shown"."""
    parts = []
    winner = comparison["coverage"]["better"]
    if winner:
        parts.append(f"{winner} answers more")
    found: dict[tuple[str, str], list[str]] = {}  # (winner, metric) -> scopes
    for scope, label in (("all_turns", "all turns"), ("both_answered", "turns both answered")):
        for key, name in QUALITY:
            w = comparison[scope][key]["better"]
            if w:
                found.setdefault((w, name), []).append(label)
    merged: dict[tuple[str, str], list[str]] = {}  # (winner, scopes) -> metrics
    for (w, name), scopes in found.items():
        merged.setdefault((w, " and ".join(scopes)), []).append(name)
    parts += [
        f"{w} higher on {' and '.join(names)} ({scopes})" for (w, scopes), names in merged.items()
    ]
    return "; ".join(parts) or "no difference shown"


def summarise(
    rs: Resampler, scores: dict[str, TurnScores]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(figures per variant, comparisons of every pair in the given order)."""
    figures = {name: variant_figures(rs, s) for name, s in scores.items()}
    pairs = [compare(rs, a, scores[a], b, scores[b]) for a, b in combinations(list(scores), 2)]
    return figures, pairs
