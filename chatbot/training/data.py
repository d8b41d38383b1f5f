"""Reading the training pairs for a run: which pairs take part, how much each one
counts (origin and source quality), the fixed validation subset, and the data snapshot
recorded with the model version. Turning pairs into token ids is `examples`' job.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatbot.pairs import PairRecord
from chatbot.training import TrainingError
from chatbot.training.settings import TrainingSettings

if TYPE_CHECKING:
    from chatbot.store.database import Database


@dataclass
class TrainingData:
    train: list[PairRecord]
    val: list[PairRecord]
    snapshot: dict[str, Any] = field(default_factory=dict)


def _stable_rank(pair_id: int, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{pair_id}".encode()).hexdigest()


def quality_multipliers(pairs: list[PairRecord], scale: float) -> dict[int, float]:
    """1 + scale * z, z = quality standardised within the pair's source, clipped to 0.25..2."""
    by_source: dict[str, list[float]] = {}
    for p in pairs:
        if p.quality is not None:
            by_source.setdefault(p.source, []).append(p.quality)
    out: dict[int, float] = {}
    for p in pairs:
        values = by_source.get(p.source, [])
        if p.quality is None or len(values) < 2 or scale == 0:
            out[p.id] = 1.0
            continue
        spread = statistics.pstdev(values) or 1.0
        z = (p.quality - statistics.fmean(values)) / spread
        out[p.id] = min(2.0, max(0.25, 1.0 + scale * z))
    return out


def load_training_data(database: Database, cfg: TrainingSettings) -> TrainingData:
    """The train pairs (weighted) and the fixed validation subset, or TrainingError."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    with database.session() as session:
        rows = session.execute(
            select(
                TrainingPair.id,
                TrainingPair.source,
                TrainingPair.origin,
                TrainingPair.split,
                TrainingPair.context,
                TrainingPair.target,
                TrainingPair.target_slotted,
                TrainingPair.quality,
            )
            .where(TrainingPair.split.in_(("train", "val")))
            .order_by(TrainingPair.id)
        ).all()
    # The model learns the slotted reply ("Hi {customer_name}, {order_number} is…"): it writes
    # slots that serving fills from the conversation, never another customer's name or number.
    pairs = [
        PairRecord(
            id=r.id,
            source=r.source,
            origin=r.origin,
            split=r.split,
            context=list(r.context or []),
            target=r.target_slotted if r.target_slotted is not None else r.target,
            quality=r.quality,
        )
        for r in rows
        if r.context and (r.target or "").strip()
    ]
    dropped_quality = 0
    if cfg.min_quality is not None:
        kept = [p for p in pairs if p.quality is None or p.quality >= cfg.min_quality]
        dropped_quality = len(pairs) - len(kept)
        pairs = kept
    multipliers = quality_multipliers(pairs, cfg.quality_weight)
    weighted = []
    for p in pairs:
        w = cfg.origin_weights.get(p.origin, 1.0) * multipliers[p.id]
        weighted.append(PairRecord(**{**p.__dict__, "weight": w}))
    train = [p for p in weighted if p.split == "train" and p.weight > 0]
    all_val = [p for p in weighted if p.split == "val"]
    if len(train) < cfg.min_train_pairs or len(all_val) < cfg.min_val_pairs:
        raise TrainingError(
            f"too few training pairs to train: {len(train)} in the train split (need {cfg.min_train_pairs}) and "
            f"{len(all_val)} in the val split (need {cfg.min_val_pairs}); import more transcripts first "
            "(chatbot import FILE) or lower CHATBOT_TRAINING__MIN_TRAIN_PAIRS / MIN_VAL_PAIRS"
        )
    val = sorted(all_val, key=lambda p: _stable_rank(p.id, cfg.seed))[: cfg.val_max_pairs]
    val.sort(key=lambda p: p.id)
    snapshot = {
        "train_pairs": len(train),
        "val_pairs_used": len(val),
        "val_pairs_total": len(all_val),
        "dropped_below_min_quality": dropped_quality,
        "train_by_source": dict(Counter(p.source for p in train)),
        "train_by_origin": dict(Counter(p.origin for p in train)),
        "val_by_source": dict(Counter(p.source for p in val)),
        "max_pair_id": max((p.id for p in weighted), default=0),
        "fingerprint": data_fingerprint(train, val),
    }
    return TrainingData(train=train, val=val, snapshot=snapshot)


def data_fingerprint(train: list[PairRecord], val: list[PairRecord]) -> str:
    """Identifies the exact pairs and weights of a run, so a resume can check it trains on the same data."""
    digest = hashlib.sha256()
    for p in (*train, *val):
        digest.update(f"{p.split}:{p.id}:{p.weight:.6f};".encode())
    return digest.hexdigest()[:16]
