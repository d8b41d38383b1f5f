"""Adapting the sentence embedder to the company's own pairs (`chatbot index --adapt`),
kept only where it measurably helps.

`adapt_embedder` does, in order:
  1. reads the stored pairs of the `train` split and of the `val` split; too few of
     either is an `AdaptError` before anything is trained or written;
  2. fine-tunes a copy of the configured embedder (customer message -> agent reply) with
     sentence-transformers' trainer and MultipleNegativesRankingLoss (in-batch
     negatives; a batch never holds one text twice, which would be a false negative),
     bounded by `retrieval.adapt_max_steps` and `retrieval.adapt_max_minutes`;
  3. measures both embedders the way serving searches (dense + BM25 fusion over an
     in-memory index of the train pairs) on the validation pairs, judged independently
     of the adapted model: the base embedder's cosine between the top retrieved reply
     and the validation pair's real reply (the figure that decides), the share of
     those >= `fit_similarity`, and exact-duplicate reply recall@1/@5;
  4. keeps the adapted embedder only when the gain exceeds `retrieval.adapt_min_gain`
     and `retrieval.adapt_min_gain_stderrs` standard errors of the paired differences:
     written to a temporary directory under `<home>/embedders/`, with a meta.json,
     then renamed to `<home>/embedders/vNNNN/`. Not kept: nothing is written.

`adapt_and_index` (what the CLI runs) then rebuilds the index with a kept embedder and
drops embedder versions no index version uses any more. Using the adapted embedder for
queries is `chatbot.retrieval.retriever`'s job (it loads the model the index's meta.json
names); incremental index updates are `builder`'s; the training loop is the library's
(`contrastive`).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.config import DataPaths
from chatbot.dialogue.settings import DialogueSettings
from chatbot.errors import ChatbotError
from chatbot.files import write_json_atomic
from chatbot.indexing.builder import update_index
from chatbot.indexing.contrastive import fine_tune_pairs
from chatbot.meta_file import MetaFileError, read_meta
from chatbot.models.embedder import embedder_path, load_embedder
from chatbot.pairs import PairRecord
from chatbot.retrieval import faiss_index
from chatbot.retrieval.embedding import embed_contexts, embed_texts
from chatbot.retrieval.index_files import (
    ADAPTED_MADE_BY,
    IndexMeta,
    describe_embedder,
    load_meta,
    load_records,
    store_root,
    vectors_incompatible,
)
from chatbot.retrieval.lexical import LexicalIndex
from chatbot.retrieval.retriever import PairRetriever
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.retrieval.stored_pairs import load_pairs, pair_set_hash
from chatbot.retrieval.versions import IndexDamagedError, VersionStore

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chatbot.store.database import Database

log = logging.getLogger(__name__)

EVAL_PAIRS = 1000  # validation pairs measured at most (a deterministic sample above)
RECALL_K = 5
METRIC = "reply_similarity"


class AdaptError(ChatbotError):
    """The embedder cannot be adapted (too few pairs)."""


@dataclass
class AdaptReport:
    kept: bool
    reason: str
    metric: str
    base: dict[str, Any]  # figures of the base embedder on the validation pairs
    adapted: dict[str, Any]  # the same for the adapted embedder
    gain: float  # adapted - base of `metric`
    gain_stderr: float  # standard error of the paired per-pair differences
    min_gain: float
    min_gain_stderrs: float
    counts: dict[str, int]
    training: dict[str, Any]
    base_model: IndexMeta
    seconds: float
    embedder_version: str | None = None
    embedder_path: str | None = None
    index: dict[str, Any] | None = None  # the index rebuild's report, when the embedder was kept
    pruned_embedders: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KeptEmbedder:
    """An adapted embedder that was kept: where it was saved, and the train pairs'
    vectors it gives (the index rebuilt with it need not embed them again)."""

    model: SentenceTransformer
    directory: Path
    pair_ids: list[int]
    vectors: np.ndarray


def embedders_root(paths: DataPaths) -> Path:
    return paths.home / "embedders"


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


# ---------------------------------------------------------------------------------------
# Training


def train_contrastive(
    model: SentenceTransformer,
    records: Sequence[PairRecord],
    rs: RetrievalSettings,
    *,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune `model` in place: customer message -> agent reply (the message is what
    the indexed context vector is mostly made of), MultipleNegativesRankingLoss with
    in-batch negatives (`contrastive.fine_tune_pairs`). Stops at `adapt_max_steps` or,
    at a step boundary, after `adapt_max_minutes`. Returns what happened."""
    run = fine_tune_pairs(
        model,
        [r.message for r in records],
        [r.target for r in records],
        batch_size=rs.adapt_batch_size,
        learning_rate=rs.adapt_learning_rate,
        max_steps=rs.adapt_max_steps,
        max_seconds=rs.adapt_max_minutes * 60,
        max_seq_length=rs.adapt_max_seq_length,
        seed=seed,
        progress=progress,
    )
    losses = run.losses
    head = losses[: max(1, len(losses) // 10)]
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "steps": run.steps,
        "max_steps": rs.adapt_max_steps,
        "max_minutes": rs.adapt_max_minutes,
        "stopped_by": run.stopped_by,
        "seconds": run.seconds,
        "batch_size": rs.adapt_batch_size,
        "learning_rate": rs.adapt_learning_rate,
        "max_seq_length": rs.adapt_max_seq_length,
        "loss": "MultipleNegativesRankingLoss (in-batch negatives, no duplicate texts in a batch)",
        "trainer": "sentence-transformers SentenceTransformerTrainer",
        "loss_first": float(np.mean(head)) if losses else None,
        "loss_last": float(np.mean(tail)) if losses else None,
        "epochs": round(run.epochs, 2),
    }


# ---------------------------------------------------------------------------------------
# Measuring


def measure(
    rs: RetrievalSettings,
    model: SentenceTransformer,
    judge: SentenceTransformer,
    train: Sequence[PairRecord],
    val: Sequence[PairRecord],
    *,
    lexical: LexicalIndex | None = None,
    train_vectors: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Search the train pairs for every validation pair with `model` (dense + BM25 fusion,
    as served) and judge the top replies with `judge` and exact matching. Returns
    (figures, per-pair judge cosine of the top reply, the train pairs' vectors)."""
    if train_vectors is None:
        train_vectors = embed_contexts(
            model, [(r.message, r.history) for r in train], rs, progress=progress
        )
    val_vectors = embed_contexts(model, [(r.message, r.history) for r in val], rs)
    if lexical is None:
        lexical = LexicalIndex.build([r.message for r in train])
    retriever = PairRetriever(rs, train, faiss_index.build(train_vectors, rs), lexical, model, None)
    row_of = {r.id: row for row, r in enumerate(train)}
    train_replies = [_normalise(r.target) for r in train]
    tops, exact_1, exact_k, with_duplicate = [], 0, 0, 0
    known = set(train_replies)
    for pair, vector in zip(val, val_vectors):
        result = retriever.search_vector(vector, pair.message, history=pair.history, k=RECALL_K)
        rows = [row_of[h.pair_id] for h in result.hits]
        tops.append(rows[0] if rows else None)
        want = _normalise(pair.target)
        if want in known:
            with_duplicate += 1
            exact_1 += bool(rows) and train_replies[rows[0]] == want
            exact_k += any(train_replies[r] == want for r in rows)
    got = embed_texts(
        judge, [train[r].target if r is not None else "" for r in tops], batch_size=rs.batch_size
    )
    want_vectors = embed_texts(judge, [p.target for p in val], batch_size=rs.batch_size)
    similarity = (got * want_vectors).sum(1)
    figures = {
        "reply_similarity": float(similarity.mean()),
        "fit_rate": float((similarity >= rs.fit_similarity).mean()),
        "exact_reply_at_1": exact_1 / with_duplicate if with_duplicate else None,
        f"exact_reply_at_{RECALL_K}": exact_k / with_duplicate if with_duplicate else None,
        "n": len(val),
        "n_with_duplicate_reply": with_duplicate,
    }
    return figures, similarity, train_vectors


# ---------------------------------------------------------------------------------------
# The whole step


def _sample(records: list[PairRecord], n: int) -> list[PairRecord]:
    if len(records) <= n:
        return records
    rng = np.random.default_rng(0)
    return [records[i] for i in sorted(rng.choice(len(records), n, replace=False))]


def _current_vectors(
    paths: DataPaths, rs: RetrievalSettings, base_model_info: IndexMeta, train: Sequence[PairRecord]
) -> np.ndarray | None:
    """The current index's vectors when they are exactly what the base embedder would
    give the train pairs (same embedder, settings and pairs): saves embedding them again."""
    current = VersionStore(store_root(paths)).current()
    if current is None:
        return None
    try:
        meta = load_meta(current)
        same = vectors_incompatible(meta, base_model_info["fingerprint"], rs) is None and [
            (r.id, r.content_hash) for r in load_records(current)
        ] == [(r.id, r.content_hash) for r in train]
        return np.load(current / "vectors.npy") if same else None
    except (IndexDamagedError, OSError, ValueError):
        return None


def _adapt(
    paths: DataPaths, rs: RetrievalSettings, database: Database, *, progress: bool
) -> tuple[AdaptReport, KeptEmbedder | None]:
    started = time.monotonic()
    train = load_pairs(database, ["train"])
    val = load_pairs(database, ["val"])
    if len(train) < rs.adapt_min_pairs:
        raise AdaptError(
            f"adapting the embedder needs at least {rs.adapt_min_pairs} training pairs (split train) and the store "
            f"holds {len(train)}; import more support history first (retrieval.adapt_min_pairs)"
        )
    if len(val) < rs.adapt_min_val_pairs:
        raise AdaptError(
            f"adapting the embedder needs at least {rs.adapt_min_val_pairs} validation pairs (split val) to measure "
            f"whether it helps, and the store holds {len(val)}; import more support history first "
            "(retrieval.adapt_min_val_pairs)"
        )
    measured = _sample(val, EVAL_PAIRS)
    base_path = embedder_path(paths)
    base_model_info = describe_embedder(base_path)
    base = load_embedder(paths)
    lexical = LexicalIndex.build([r.message for r in train])
    log.info("measuring the base embedder on %d validation pairs", len(measured))
    base_figures, base_similarity, _ = measure(
        rs,
        base,
        base,
        train,
        measured,
        lexical=lexical,
        train_vectors=_current_vectors(paths, rs, base_model_info, train),
        progress=progress,
    )

    adapted = load_embedder(paths, path=base_path)  # a second copy, trained in place
    training = train_contrastive(adapted, train, rs, progress=progress)
    log.info("measuring the adapted embedder on %d validation pairs", len(measured))
    adapted_figures, adapted_similarity, adapted_vectors = measure(
        rs, adapted, base, train, measured, lexical=lexical, progress=progress
    )
    difference = adapted_similarity - base_similarity
    gain = float(difference.mean())
    stderr = (
        float(difference.std(ddof=1) / math.sqrt(len(difference))) if len(difference) > 1 else 0.0
    )
    above_margin = gain > rs.adapt_min_gain
    significant = rs.adapt_min_gain_stderrs == 0 or gain > rs.adapt_min_gain_stderrs * stderr
    kept = above_margin and significant
    change = f"{METRIC} {base_figures[METRIC]:.4f} -> {adapted_figures[METRIC]:.4f} (gain {gain:+.4f} ± {stderr:.4f})"
    if kept:
        reason = (
            f"{change} is above retrieval.adapt_min_gain {rs.adapt_min_gain} and "
            f"{rs.adapt_min_gain_stderrs:g} standard errors"
        )
    elif not above_margin:
        reason = f"{change} is not above retrieval.adapt_min_gain {rs.adapt_min_gain}; the adapted embedder was discarded"
    else:
        reason = (
            f"{change} is within {rs.adapt_min_gain_stderrs:g} standard errors of no gain "
            "(retrieval.adapt_min_gain_stderrs); the adapted embedder was discarded"
        )
    report = AdaptReport(
        kept=kept,
        reason=reason,
        metric=METRIC,
        base=base_figures,
        adapted=adapted_figures,
        gain=gain,
        gain_stderr=stderr,
        min_gain=rs.adapt_min_gain,
        min_gain_stderrs=rs.adapt_min_gain_stderrs,
        counts={"train": len(train), "val": len(val), "val_measured": len(measured)},
        training=training,
        base_model=base_model_info,
        seconds=0.0,
    )
    report.seconds = round(time.monotonic() - started, 2)
    if not kept:
        return report, None
    directory = _save(paths, rs, adapted, report, train, measured)
    report.embedder_version, report.embedder_path = directory.name, str(directory)
    return report, KeptEmbedder(adapted, directory, [r.id for r in train], adapted_vectors)


def _save(
    paths: DataPaths,
    rs: RetrievalSettings,
    model: SentenceTransformer,
    report: AdaptReport,
    train: Sequence[PairRecord],
    measured: Sequence[PairRecord],
) -> Path:
    """Write the adapted embedder and its meta.json to a temporary directory, then rename
    it to the next `<home>/embedders/vNNNN`."""
    store = VersionStore(embedders_root(paths))
    staged = store.staging()
    try:
        model.save(str(staged))
        write_json_atomic(
            staged / "meta.json",
            {
                "made_by": ADAPTED_MADE_BY,
                "created_at": datetime.now(UTC).isoformat(),
                "base_model": report.base_model,
                "pair_set_hash": pair_set_hash((r.id, r.content_hash) for r in train),
                "val_pair_set_hash": pair_set_hash((r.id, r.content_hash) for r in measured),
                "counts": report.counts,
                "settings": {
                    **{k: v for k, v in rs.model_dump().items() if k.startswith("adapt_")},
                    **rs.index_defining(),
                    "lexical_weight": rs.lexical_weight,
                    "fit_similarity": rs.fit_similarity,
                },
                "training": report.training,
                "metric": report.metric,
                "base": report.base,
                "adapted": report.adapted,
                "gain": report.gain,
                "gain_stderr": report.gain_stderr,
                "kept": True,
                "wall_seconds": report.seconds,
            },
            sort_keys=True,
        )
        name = store.commit(staged)
    except BaseException:
        store.discard(staged)
        raise
    return store.root / name


def adapt_embedder(
    paths: DataPaths, rs: RetrievalSettings, database: Database, *, progress: bool = False
) -> AdaptReport:
    """Adapt, measure, and keep the adapted embedder only when it helps (see the module
    docstring); the index is not touched."""
    return _adapt(paths, rs, database, progress=progress)[0]


def prune_embedders(paths: DataPaths, keep: Sequence[str] = ()) -> list[str]:
    """Delete the adapted embedders no index version uses (except those in `keep`)."""
    root = embedders_root(paths)
    if not root.is_dir():
        return []
    index_store = VersionStore(store_root(paths))
    used = set()
    for name in index_store.versions():
        try:
            used.add(
                Path(read_meta(index_store.root / name).get("model", {}).get("path", "")).resolve()
            )
        except MetaFileError:
            continue
    doomed = [
        name
        for name in VersionStore(root).versions()
        if name not in keep and (root / name).resolve() not in used
    ]
    for name in doomed:
        shutil.rmtree(root / name, ignore_errors=True)
    return doomed


def adapt_and_index(
    paths: DataPaths,
    rs: RetrievalSettings,
    ds: DialogueSettings,
    database: Database,
    *,
    progress: bool = False,
    calibrate: bool = True,
) -> AdaptReport:
    """`chatbot index --adapt`: adapt; when kept, rebuild the index with the adapted
    embedder (the index's meta.json then names it); when not, leave the index alone."""
    report, kept = _adapt(paths, rs, database, progress=progress)
    if kept is not None:
        path = kept.directory
        index = update_index(
            paths,
            rs,
            ds,
            database,
            rebuild=True,
            model=kept.model,
            model_path=path,
            progress=progress,
            calibrate=calibrate,
            precomputed=(kept.pair_ids, kept.vectors),
        )
        index.reason = f"adapted embedder {path.name}"
        report.index = index.to_dict()
        report.pruned_embedders = prune_embedders(paths, keep=[path.name])
    return report
