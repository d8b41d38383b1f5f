"""Choosing an out-of-scope calibration (`chatbot.retrieval.scope.ScopeCalibration`) on
validation data, at build time. Two ways to choose it:

`calibrate_gate` is the retrieval index's hand-off gate, built so that it does not
collapse when a company's history is small. Its positives are the company's own
held-out validation questions (in its domain by construction, whatever the top answer
is); its negatives are a shipped set of generic off-topic questions written for this
project (`background_questions`), plus any the company labelled out of scope itself.
The cut that best separates them (Youden's J: share of positives accepted + share of
negatives rejected) is pulled towards a prior threshold with the weight of
`prior_strength` pseudo-questions, so that a handful of validation questions cannot
move it far and a few hundred overrule it; a percentile bootstrap (resampling both
sides) gives its 95% interval. Negatives that are handed off whatever the cut (their
best match is a pair the company labelled out of scope) count as rejected at every cut.
Whether the gate also uses the words the history never uses (`scope.unknown_terms`)
is decided by the caller (`calibration`) and recorded here.

`calibrate` fits a one-feature logistic model (Platt scaling) of "fits" on the raw
score and picks the threshold on the validation items it is given: by default the one
that maximises the balanced accuracy (mean of in-scope items served and out-of-scope
items rejected); with `min_oos_recall` the one that serves the most in-scope items
while still rejecting at least that share of the out-of-scope ones (a support team's
policy: "hand off at least 85% of what we cannot answer"). It never sees test data:
callers pass validation scores only. Where the raw scores come from (retrieval, intent
routing) is the caller's business; applying the calibration at search time is the
retriever's.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from chatbot.errors import ConfigError
from chatbot.retrieval.scope import ScopeCalibration

BACKGROUND_FILE = "offtopic_questions.txt"


def calibrate(
    raw_scores: ArrayLike,
    in_scope: ArrayLike,
    *,
    accepted_correct: ArrayLike | None = None,
    min_oos_recall: float | None = None,
) -> ScopeCalibration:
    """Fit the calibration on validation items.

    `in_scope[i]` says whether item i has a right answer among what is indexed;
    `accepted_correct[i]` (optional) whether the top answer for it is right: an
    in-scope item only counts as served when it is accepted and correct.
    `min_oos_recall` switches the criterion (see the module docstring); when no cut
    reaches it, the cut with the highest out-of-scope recall is taken.
    """
    from sklearn.linear_model import LogisticRegression

    raw = np.asarray(raw_scores, dtype=np.float64)
    positive = np.asarray(in_scope, dtype=bool)
    correct = (
        positive
        if accepted_correct is None
        else (np.asarray(accepted_correct, dtype=bool) & positive)
    )
    n_in, n_out = int(positive.sum()), int((~positive).sum())
    if n_in == 0 or n_out == 0:
        raise ValueError("calibration needs both in-scope and out-of-scope validation items")

    model = LogisticRegression(C=1e4, max_iter=1000).fit(raw.reshape(-1, 1), positive.astype(int))
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])

    # Try every distinct raw score as the cut: accept raw >= cut.
    cuts = np.unique(raw)
    cuts = np.concatenate([cuts, [cuts[-1] + 1e-6]])
    best_cut, best, best_balanced = cuts[0], -np.inf, 0.0
    for cut in cuts:
        accepted = raw >= cut
        served = (accepted & correct).sum() / n_in
        rejected = (~accepted & ~positive).sum() / n_out
        if min_oos_recall is None:
            score = (served + rejected) / 2
        else:  # feasible cuts rank by service; infeasible ones below them, by recall
            score = served if rejected >= min_oos_recall - 1e-12 else rejected - 2.0
        if score > best + 1e-12:
            best, best_cut, best_balanced = score, cut, (served + rejected) / 2
    # Put the cut halfway to the next lower score so it generalises a little.
    lower = raw[raw < best_cut]
    raw_threshold = float((best_cut + lower.max()) / 2) if lower.size else float(best_cut)
    z = slope * raw_threshold + intercept
    threshold = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
    criterion = (
        "balanced_accuracy"
        if min_oos_recall is None
        else f"max_served_at_oos_recall>={min_oos_recall:g}"
    )
    return ScopeCalibration(
        slope,
        intercept,
        threshold,
        raw_threshold,
        n_in,
        n_out,
        float(best_balanced),
        criterion=criterion,
    )


def _questions(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def background_questions(
    extra_file: Path | str | None = None, *, shipped: bool = True
) -> list[str]:
    """The shipped generic off-topic questions (package data, written for this project)
    unless `shipped` is false, plus the lines of `extra_file` when given (a company's
    own: one question a line, '#' lines ignored); each question once."""
    questions: list[str] = []
    if shipped:
        questions += _questions(
            resources.files("chatbot.indexing")
            .joinpath("data", BACKGROUND_FILE)
            .read_text(encoding="utf-8")
        )
    if extra_file is not None:
        try:
            questions += _questions(Path(extra_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"retrieval.gate_background_file {extra_file} cannot be read: {exc}"
            ) from None
    return list(dict.fromkeys(questions))


def _best_cut(pos: np.ndarray, neg: np.ndarray, n_neg_handled: int) -> float | None:
    """The raw cut (accept raw >= cut) maximising J = accepted positives share +
    rejected negatives share, halfway to the next lower score; `n_neg_handled`
    negatives count as rejected at every cut. None when a side is empty."""
    n_neg = neg.size + n_neg_handled
    if pos.size == 0 or n_neg == 0:
        return None
    cuts = np.unique(np.concatenate([pos, neg]))
    cuts = np.concatenate([cuts, [cuts[-1] + 1e-6]])
    pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
    accepted = (pos.size - np.searchsorted(pos_sorted, cuts, side="left")) / pos.size
    rejected = (np.searchsorted(neg_sorted, cuts, side="left") + n_neg_handled) / n_neg
    best = int(np.argmax(accepted + rejected - 1e-9 * np.arange(cuts.size)))  # ties: the lowest cut
    below = cuts[best - 1] if best > 0 else cuts[best]
    return float((cuts[best] + below) / 2)


def calibrate_gate(
    positives: ArrayLike,
    negatives: ArrayLike,
    *,
    negatives_handled: ArrayLike | None = None,
    prior_threshold: float,
    prior_strength: float,
    min_positives: int = 5,
    resamples: int = 1000,
    seed: int = 0,
    feature: str = "dense",
    n_background: int = 0,
    unknown_terms: bool = False,
) -> ScopeCalibration:
    """The hand-off gate's threshold (see the module docstring).

    `positives`: raw scores of in-domain validation questions; `negatives`: raw scores
    of off-topic questions; `negatives_handled[i]`: negative i is handed off whatever
    the cut (the caller also flags those `unknown_terms` catches when it is on, and
    leaves positives it catches out). With fewer than `min_positives` positives (or no negatives) the prior
    alone sets the threshold. The interval is the 2.5th-97.5th percentile of the
    threshold over `resamples` bootstrap resamples of both sides.
    """
    pos = np.asarray(positives, dtype=np.float64).ravel()
    neg_all = np.asarray(negatives, dtype=np.float64).ravel()
    handled = (
        np.zeros(neg_all.size, bool)
        if negatives_handled is None
        else np.asarray(negatives_handled, bool).ravel()
    )
    if handled.size != neg_all.size:
        raise ValueError("negatives_handled must have one flag per negative")
    if prior_strength < 0:
        raise ValueError(f"prior_strength must be >= 0, got {prior_strength}")

    def threshold(
        p: np.ndarray, n: np.ndarray, n_handled: int
    ) -> tuple[float, float | None, float]:
        data = _best_cut(p, n, n_handled) if p.size >= min_positives else None
        if data is None:
            return float(prior_threshold), None, 0.0
        weight = p.size / (p.size + prior_strength) if (p.size + prior_strength) > 0 else 1.0
        return float(weight * data + (1 - weight) * prior_threshold), data, float(weight)

    neg = neg_all[~handled]
    raw_threshold, data_threshold, data_weight = threshold(pos, neg, int(handled.sum()))

    low = high = None
    if data_threshold is not None and resamples > 0:
        rng = np.random.default_rng(seed)
        draws = np.empty(resamples)
        for b in range(resamples):
            p = pos[rng.integers(0, pos.size, pos.size)]
            pick = rng.integers(0, neg_all.size, neg_all.size) if neg_all.size else np.zeros(0, int)
            draws[b] = threshold(p, neg_all[pick][~handled[pick]], int(handled[pick].sum()))[0]
        low, high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))

    # Probability that something indexed fits: a logistic curve in the raw score that
    # crosses 0.5 at the threshold, its slope fitted on both sides (balanced classes).
    slope = _slope(pos, neg)
    intercept = -slope * raw_threshold
    n_neg = neg_all.size
    accepted = float((pos >= raw_threshold).mean()) if pos.size else None
    rejected = float(((neg < raw_threshold).sum() + handled.sum()) / n_neg) if n_neg else None
    balanced = (
        (accepted + rejected) / 2 if accepted is not None and rejected is not None else float("nan")
    )
    return ScopeCalibration(
        slope=slope,
        intercept=intercept,
        threshold=0.5,
        raw_threshold=raw_threshold,
        n_in_scope=int(pos.size),
        n_out_of_scope=int(n_neg),
        validation_balanced_accuracy=float(balanced),
        criterion="youden_j_with_prior",
        feature=feature,
        raw_threshold_low=low,
        raw_threshold_high=high,
        prior_threshold=float(prior_threshold),
        prior_weight=round(1.0 - data_weight, 6),
        data_threshold=data_threshold,
        n_background=int(n_background),
        in_scope_accepted=accepted,
        out_of_scope_rejected=rejected,
        unknown_terms=bool(unknown_terms),
    )


DEFAULT_SLOPE = 20.0


def _slope(pos: np.ndarray, neg: np.ndarray) -> float:
    """Slope of the logistic curve of 'fits' on the raw score; DEFAULT_SLOPE when a side
    is missing or the fit is degenerate."""
    if pos.size < 2 or neg.size < 2:
        return DEFAULT_SLOPE
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([pos, neg]).reshape(-1, 1)
    y = np.concatenate([np.ones(pos.size, int), np.zeros(neg.size, int)])
    slope = float(
        LogisticRegression(C=1e4, class_weight="balanced", max_iter=1000).fit(x, y).coef_[0, 0]
    )
    return slope if math.isfinite(slope) and slope > 0 else DEFAULT_SLOPE
