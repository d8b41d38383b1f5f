"""95% bootstrap intervals for evaluation figures. Turns of one conversation are not
independent, so a resample draws whole conversations with replacement (a cluster
bootstrap) and every figure is recomputed on the turns drawn; the interval is the
2.5th to 97.5th percentile of the recomputed figures. One `Resampler` draws once and
serves every variant and figure of a run, so differences between variants are paired
(the same turns in every resample). Pure numpy on numbers; which figures to compute is
`figures`' job."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

LEVEL = 0.95


def interval(
    value: float | None,
    samples: np.ndarray | Sequence[float],
    *,
    digits: int = 4,
    level: float = LEVEL,
) -> dict[str, float | None]:
    """{"value", "low", "high"}: the percentile interval of the bootstrap `samples`.

    Resamples where the figure is undefined (nan: no turn of the kind drawn) are left
    out. Where the percentile interval misses the estimate itself (it can for a p95 on a
    few turns) it is widened to include it, so low <= value <= high always holds."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {"value": None, "low": None, "high": None}
    kept = np.asarray(samples, dtype=np.float64)
    kept = kept[~np.isnan(kept)]
    if kept.size == 0:
        low = high = float(value)
    else:
        tail = (1.0 - level) / 2 * 100
        low, high = (float(x) for x in np.percentile(kept, [tail, 100 - tail]))
        low, high = min(low, float(value)), max(high, float(value))
    return {
        "value": round(float(value), digits),
        "low": round(low, digits),
        "high": round(high, digits),
    }


def difference(
    value: float | None, samples: np.ndarray, *, a: str, b: str, digits: int = 4
) -> dict[str, Any]:
    """An interval of a difference a - b, with `better`: the name whose figure is higher
    where the interval excludes 0, else None (no difference shown)."""
    out: dict[str, Any] = interval(value, samples, digits=digits)
    better = None
    if out["low"] is not None and out["low"] > 0:
        better = a
    elif out["high"] is not None and out["high"] < 0:
        better = b
    out["better"] = better
    return out


@dataclass(frozen=True)
class Resampler:
    """`weights[r, i]`: how many times turn i is drawn in resample r."""

    weights: np.ndarray
    seed: int
    groups: int

    @classmethod
    def by_group(
        cls, groups: Sequence[Hashable], *, resamples: int = 1000, seed: int = 0
    ) -> Resampler:
        """Resample the distinct `groups` (one per turn: its conversation) with replacement."""
        if resamples < 1:
            raise ValueError(f"resamples must be at least 1, got {resamples}")
        index: dict[Hashable, int] = {}
        of_turn = np.asarray([index.setdefault(g, len(index)) for g in groups], dtype=np.int64)
        count = len(index)
        rng = np.random.default_rng(seed)
        if count == 0:
            return cls(np.zeros((resamples, 0), dtype=np.float64), seed, 0)
        drawn = rng.multinomial(count, np.full(count, 1.0 / count), size=resamples)
        return cls(drawn[:, of_turn].astype(np.float64), seed, count)

    @property
    def resamples(self) -> int:
        return int(self.weights.shape[0])

    def mean(
        self,
        values: Sequence[float] | np.ndarray,
        mask: Sequence[bool] | np.ndarray | None = None,
        *,
        digits: int = 4,
    ) -> dict[str, float | None]:
        """Mean of `values` over the turns where `mask` holds (default: all), with its interval."""
        value, samples = self.mean_samples(values, mask)
        return interval(value, samples, digits=digits)

    def mean_samples(
        self, values: ArrayLike, mask: ArrayLike | None = None
    ) -> tuple[float | None, np.ndarray]:
        v = np.asarray(values, dtype=np.float64)
        m = np.ones(v.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if not m.any():
            return None, np.full(self.resamples, np.nan)
        v = np.where(m, v, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = (self.weights @ v) / (self.weights @ m.astype(np.float64))
        return float(v[m].mean()), samples

    def quantile(
        self, values: Sequence[float] | np.ndarray, q: float, *, digits: int = 4
    ) -> dict[str, float | None]:
        """The q-quantile (0-1) of `values` (numpy's linear interpolation), with its interval
        (each resample's quantile taken from its weighted empirical distribution)."""
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return interval(None, [])
        order = np.argsort(v, kind="stable")
        cumulative = np.cumsum(self.weights[:, order], axis=1)
        totals = cumulative[:, -1:]
        position = np.minimum((cumulative < q * totals).sum(axis=1), v.size - 1)
        samples = np.where(totals[:, 0] > 0, v[order][position], np.nan)
        return interval(float(np.percentile(v, q * 100)), samples, digits=digits)

    def summed(
        self,
        rows: np.ndarray,
        statistic: Callable[[np.ndarray], float],
        mask: Sequence[bool] | np.ndarray | None = None,
        *,
        digits: int = 4,
    ) -> dict[str, float | None]:
        """A statistic of the column sums of per-turn `rows` (e.g. corpus BLEU from
        per-turn n-gram counts) over the turns where `mask` holds, with its interval."""
        rows = np.asarray(rows, dtype=np.float64)
        m = np.ones(rows.shape[0], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if not m.any():
            return interval(None, [])
        value = statistic(rows[m].sum(axis=0))
        sums = (self.weights * m) @ rows
        drawn = (self.weights @ m.astype(np.float64)) > 0
        samples = np.asarray(
            [statistic(s) if d else np.nan for s, d in zip(sums, drawn, strict=True)]
        )
        return interval(value, samples, digits=digits)
