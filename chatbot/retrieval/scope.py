"""Out-of-scope calibration: turn a raw match score into a probability that something
indexed fits, and choose the hand-off threshold on validation data.

`calibrate` fits a one-feature logistic model (Platt scaling) of "fits" on the raw
score and picks the threshold on the validation items it is given: by default the one
that maximises the balanced accuracy (mean of in-scope items served and out-of-scope
items rejected); with `min_oos_recall` the one that serves the most in-scope items
while still rejecting at least that share of the out-of-scope ones (a support team's
policy: "hand off at least 85% of what we cannot answer"). It never sees test data: callers pass validation scores only. Where the
raw scores come from (retrieval, intent routing) is the caller's business.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ScopeCalibration:
    slope: float
    intercept: float
    threshold: float  # on the calibrated probability
    raw_threshold: float  # the same threshold on the raw score
    n_in_scope: int
    n_out_of_scope: int
    validation_balanced_accuracy: float
    calibrated: bool = True
    criterion: str = "balanced_accuracy"

    def probability(self, raw: float | np.ndarray) -> float | np.ndarray:
        if not self.calibrated:
            p = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
            return float(p) if np.ndim(p) == 0 else p
        z = self.slope * np.asarray(raw, dtype=np.float64) + self.intercept
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return float(p) if np.ndim(p) == 0 else p

    def out_of_scope(self, raw: float | np.ndarray) -> bool | np.ndarray:
        result = np.asarray(raw) < self.raw_threshold
        return bool(result) if result.ndim == 0 else result

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ScopeCalibration:
        return cls(**data)

    @classmethod
    def uncalibrated(cls, threshold: float) -> ScopeCalibration:
        """The raw score used as it is (probability = raw clipped to [0, 1])."""
        return cls(1.0, 0.0, threshold, threshold, 0, 0, float("nan"), calibrated=False)


def calibrate(raw_scores, in_scope, *, accepted_correct=None, min_oos_recall: float | None = None) -> ScopeCalibration:
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
    correct = positive if accepted_correct is None else (np.asarray(accepted_correct, dtype=bool) & positive)
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
    criterion = "balanced_accuracy" if min_oos_recall is None else f"max_served_at_oos_recall>={min_oos_recall:g}"
    return ScopeCalibration(slope, intercept, threshold, raw_threshold, n_in, n_out, float(best_balanced),
                            criterion=criterion)
