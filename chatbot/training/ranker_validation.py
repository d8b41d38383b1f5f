"""Whether a trained ranker is kept (step 4 of `chatbot.training.ranker`): on each
validation pair, the retriever's top `retrieve_k` replies are the candidates;
retrieval's own pick (its first hit), the promoted ranker's pick and the new ranker's
pick are scored by ROUGE-L against the agent's real reply, and the new ranker is kept
only when its mean paired gain over the better of the other two is positive and above
`min_gain_stderrs` standard errors.

Where its job ends: it returns the figures and the verdict; writing and registering
the version is `chatbot.training.ranker`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chatbot.ranking.model import Ranker, query_text
from chatbot.training.ranker_data import RankerPair, candidates_for, near_copy

if TYPE_CHECKING:
    import numpy as np

    from chatbot.ranking.settings import RankerSettings
    from chatbot.retrieval.types import Retriever

PICK_QUANTILES = (0.05, 0.1, 0.25, 0.5)
RETRIEVAL = "retrieval"


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    if not len(values):
        return {}
    return {str(q): float(np.quantile(np.asarray(values, dtype=float), q)) for q in PICK_QUANTILES}


# One validation pair with its retrieved candidates' replies (the pair itself left out).
Item = tuple[RankerPair, list[str]]


def validate(
    ranker: Ranker,
    val: Sequence[RankerPair],
    retriever: Retriever,
    rs: RankerSettings,
    *,
    promoted: Ranker | None = None,
) -> dict[str, Any]:
    """The figures of `ranker` on the validation pairs (see the module docstring) and
    whether it is kept: {"kept", "why", "figures", "val_pick_probability", ...}."""
    import numpy as np

    from chatbot.text.rouge import rouge_l

    items: list[Item] = []
    for pair in val:
        hits = candidates_for(retriever, pair.context, rs.retrieve_k, exclude=[pair.id])
        texts = [h.reply_text for h in hits if h.pair_id != pair.id]
        if texts:
            items.append((pair, texts))
    n = len(items)
    figures: dict[str, Any] = {
        "val_pairs": len(val),
        "val_pairs_scored": n,
        "candidates": rs.retrieve_k,
        "val_pairs_without_candidates": len(val) - n,
    }
    if n == 0:
        return {
            "kept": False,
            "why": "no validation pair has retrieved candidates to choose among",
            "figures": figures,
            "val_pick_probability": {},
            "val_true_probability": {},
        }

    new_scores = _scores_of(ranker, items)
    rouge = [[rouge_l(t, pair.target) for t in texts] for pair, texts in items]
    retrieval = np.array([r[0] for r in rouge])
    picks = [int(np.argmax(s[:-1])) for s in new_scores]
    new = np.array([r[i] for r, i in zip(rouge, picks)])
    pick_probability = [s[i] for s, i in zip(new_scores, picks)]
    true_probability = [s[-1] for s in new_scores]
    figures.update(_ranker_figures(items, new_scores, rouge, picks, rs))
    baseline_name, baseline = RETRIEVAL, retrieval
    if promoted is not None:
        promoted_scores = _scores_of(promoted, items)
        served = np.array([r[int(np.argmax(s[:-1]))] for r, s in zip(rouge, promoted_scores)])
        figures["rouge_l_promoted"] = float(served.mean())
        figures["promoted"] = promoted.name
        if served.mean() > retrieval.mean():
            baseline_name, baseline = promoted.name, served
    kept, why = _acceptance(new, baseline, baseline_name, rs, figures)
    return {
        "kept": kept,
        "why": why,
        "figures": figures,
        "val_pick_probability": _quantiles(pick_probability),
        "val_true_probability": _quantiles(true_probability),
    }


def _scores_of(model: Ranker, items: Sequence[Item]) -> list[list[float]]:
    """`model`'s score of each candidate of each item, then of the true reply (last)."""
    flat = []
    for pair, texts in items:
        q = query_text(pair.context, model.history_turns)
        flat += [(q, t) for t in [*texts, pair.target]]
    scores, out, at = model.score_texts(flat), [], 0
    for _, texts in items:
        out.append(scores[at : at + len(texts) + 1])
        at += len(texts) + 1
    return out


def _ranker_figures(
    items: Sequence[Item],
    new_scores: Sequence[Sequence[float]],
    rouge: Sequence[Sequence[float]],
    picks: Sequence[int],
    rs: RankerSettings,
) -> dict[str, float]:
    """How the new ranker's picks read (ROUGE-L against retrieval's and the oracle's) and
    where it ranks the true reply among the candidates that are not near-copies of it."""
    import numpy as np

    ranks = []
    for (pair, texts), s in zip(items, new_scores):
        others = [
            p for t, p in zip(texts, s[:-1]) if not near_copy(t, pair.target, rs.near_copy_f1)
        ]
        ranks.append(1 + sum(1 for p in others if p >= s[-1]))  # ties count against the true reply
    ranks_a = np.array(ranks)
    return {
        "rouge_l_retrieval": float(np.mean([r[0] for r in rouge])),
        "rouge_l_ranker": float(np.mean([r[i] for r, i in zip(rouge, picks)])),
        "rouge_l_oracle": float(np.mean([max(r) for r in rouge])),
        "ranker_agrees_with_retrieval": float(np.mean([i == 0 for i in picks])),
        "true_reply_mrr": float(np.mean(1.0 / ranks_a)),
        "true_reply_accuracy_at_1": float(np.mean(ranks_a == 1)),
        "true_reply_candidates": float(np.mean([len(t) for _, t in items])) + 1,
    }


def _acceptance(
    new: np.ndarray,
    baseline: np.ndarray,
    baseline_name: str,
    rs: RankerSettings,
    figures: dict[str, Any],
) -> tuple[bool, str]:
    """(kept, why) by the acceptance rule on the paired ROUGE-L gains of the new ranker's
    picks over the baseline's; adds the comparison to `figures`."""
    n = len(new)
    diffs = new - baseline
    gain = float(diffs.mean())
    stderr = float(diffs.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    kept = n > 1 and gain > 0 and gain > rs.min_gain_stderrs * stderr
    figures.update(
        {
            "compared_with": baseline_name,
            "rouge_l_baseline": float(baseline.mean()),
            "gain": gain,
            "gain_stderr": stderr,
            "gain_stderrs": (gain / stderr) if stderr and stderr > 0 else None,
            "min_gain_stderrs": rs.min_gain_stderrs,
        }
    )
    said = (
        f"ROUGE-L of its pick {new.mean():.4f} vs {baseline_name} {baseline.mean():.4f} on {n} validation pairs: "
        f"gain {gain:+.4f}, standard error {stderr:.4f}"
    )
    if kept:
        why = f"kept: {said} (more than {rs.min_gain_stderrs:g} standard errors)"
    elif n < 2:
        why = f"not kept: {said}; one validation pair cannot show a gain"
    else:
        why = f"not kept: {said} (needs a positive gain above {rs.min_gain_stderrs:g} standard errors)"
    return kept, why
