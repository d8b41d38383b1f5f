"""Out-of-scope calibration: turn a raw match score into a probability that something
indexed fits, and choose the hand-off threshold on validation data.

`calibrate` fits a one-feature logistic model (Platt scaling) of "fits" on the raw
score and picks the probability threshold that maximises the balanced accuracy
(mean of in-scope acceptance and out-of-scope rejection) on the validation items it
is given. It never sees test data: callers pass validation scores only. Where the
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


def calibrate(raw_scores, in_scope, *, accepted_correct=None) -> ScopeCalibration:
    """Fit the calibration on validation items.

    `in_scope[i]` says whether item i has a right answer among what is indexed;
    `accepted_correct[i]` (optional) whether the top answer for it is right: an
    in-scope item only counts as served when it is accepted and correct.
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
    best_cut, best = cuts[0], -1.0
    for cut in cuts:
        accepted = raw >= cut
        served = (accepted & correct).sum() / n_in
        rejected = (~accepted & ~positive).sum() / n_out
        score = (served + rejected) / 2
        if score > best + 1e-12:
            best, best_cut = score, cut
    # Put the cut halfway to the next lower score so it generalises a little.
    lower = raw[raw < best_cut]
    raw_threshold = float((best_cut + lower.max()) / 2) if lower.size else float(best_cut)
    z = slope * raw_threshold + intercept
    threshold = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
    return ScopeCalibration(slope, intercept, threshold, raw_threshold, n_in, n_out, float(best))
