"""Building the retrieval index from the store's training pairs: a full build, an
incremental add of new pairs, or a rebuild when the index no longer matches.

One call of `update_index` reads the pairs of the indexed splits, compares them with
the current version's pair set (ids and content hashes), and then:
  - nothing current, `rebuild=True`, another embedder or other index settings,
    or pairs deleted/changed since the last build  -> full rebuild (new version);
  - only new pairs                                  -> embed just those, new version;
  - nothing new                                     -> unchanged.
Each new version is written beside the old one and switched to only when complete.
A current version with a missing or damaged file is an IndexDamagedError naming the
file; `rebuild=True` builds a fresh version without reading it (the repair).
An index built with an embedder adapted by `chatbot index --adapt` keeps using it
(meta.json names it and the base it came from) while that base is the configured one.
How a version's files look and are read back is `chatbot.retrieval.index_files`';
the gate and fusion chosen for a version are `calibration`'s, the consensus choice
`consensus_choice`'s; searching is
`chatbot.retrieval.retriever`'s.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.config import DataPaths
from chatbot.dialogue.settings import DialogueSettings
from chatbot.files import write_json_atomic
from chatbot.indexing.answer_classes import build_answer_classes
from chatbot.indexing.calibration import (
    OffTopic,
    calibrate_index_gate,
    choose_fusion,
    embed_offtopic,
    validation_sample,
)
from chatbot.indexing.consensus_choice import choose_consensus
from chatbot.models.embedder import embedder_path, load_embedder
from chatbot.pairs import PairRecord
from chatbot.retrieval import faiss_index
from chatbot.retrieval.answer_classes import ANSWER_VECTORS
from chatbot.retrieval.embedding import embed_contexts
from chatbot.retrieval.fallback import remove_damaged_versions
from chatbot.retrieval.index_files import (
    FORMAT,
    IndexMeta,
    adapted_embedder_dir,
    check_version,
    describe_embedder,
    load_meta,
    load_records,
    record_to_row,
    store_root,
    vectors_incompatible,
)
from chatbot.retrieval.lexical import LexicalIndex
from chatbot.retrieval.scope import OFFTOPIC_VECTORS
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.retrieval.stored_pairs import (
    compare_pair_sets,
    load_pair_hashes,
    load_pairs,
    pair_set_hash,
)
from chatbot.retrieval.versions import (
    IndexDamagedError,
    IndexNotFoundError,
    VersionStore,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chatbot.store.database import Database

log = logging.getLogger(__name__)

RECALL_QUERIES = 500


@dataclass
class IndexReport:
    action: str  # "built" | "added" | "rebuilt" | "unchanged"
    reason: str
    version: str | None
    pair_count: int
    added: int = 0
    kind: str | None = None
    seconds: float = 0.0
    recall_at_10: float | None = None
    calibration: dict[str, Any] | None = None
    pruned: list[str] = field(default_factory=list)
    fusion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _embed_records(
    model: SentenceTransformer, records: Sequence[PairRecord], rs: RetrievalSettings, progress: bool
) -> np.ndarray:
    return embed_contexts(model, [(r.message, r.history) for r in records], rs, progress=progress)


def write_version(
    store: VersionStore,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
    *,
    rs: RetrievalSettings,
    model_info: IndexMeta,
    extra_meta: IndexMeta,
    staged: Path | None = None,
) -> tuple[Path, IndexMeta]:
    """Write a complete version into a staging directory (`staged`, or a new one);
    returns (staged path, meta)."""
    staged = store.staging() if staged is None else staged
    try:
        dense = faiss_index.build(vectors, rs)
        recall = None
        if dense.kind != "exact":
            rng = np.random.default_rng(0)
            sample = rng.choice(len(vectors), size=min(RECALL_QUERIES, len(vectors)), replace=False)
            recall = faiss_index.recall_at_k(dense, vectors[sample], k=10)
        faiss_index.save(dense, staged)
        LexicalIndex.build([r.message for r in records]).save(staged / "lexical")
        with (staged / "pairs.jsonl").open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(record_to_row(r), ensure_ascii=False) + "\n")
        meta = {
            "format": FORMAT,
            "made_by": "chatbot index",
            "created_at": datetime.now(UTC).isoformat(),
            "model": model_info,
            "dim": int(vectors.shape[1]) if vectors.ndim == 2 else None,
            "pair_count": len(records),
            "pair_set_hash": pair_set_hash((r.id, r.content_hash) for r in records),
            "kind": dense.kind,
            "recall_at_10_vs_exact": recall,
            "settings": {
                **rs.index_defining(),
                "exact_max_pairs": rs.exact_max_pairs,
                "hnsw_m": rs.hnsw_m,
                "hnsw_ef_construction": rs.hnsw_ef_construction,
                "lexical": "bm25s",
            },
            **extra_meta,
        }
        write_json_atomic(staged / "meta.json", meta, sort_keys=True)
        return staged, meta
    except BaseException:
        store.discard(staged)
        raise


def update_index(
    paths: DataPaths,
    rs: RetrievalSettings,
    ds: DialogueSettings,
    database: Database,
    *,
    rebuild: bool = False,
    model: SentenceTransformer | None = None,
    model_path: Path | None = None,
    progress: bool = False,
    calibrate: bool = True,
    precomputed: tuple[Sequence[int], np.ndarray] | None = None,
) -> IndexReport:
    """Bring the index up to date with the store (see the module docstring).
    `precomputed` = (pair ids, their vectors from `model`) spares embedding again in a
    full build when the ids are exactly the pairs to index (`chatbot index --adapt`)."""
    started = time.monotonic()
    store = VersionStore(store_root(paths))
    store.clean_stale()  # staging directories of killed builds
    current, meta, indexed_records, action, reason = _read_current(store, rs, rebuild)
    configured = embedder_path(paths)
    if model_path is None and current is not None:
        # An index built with an adapted embedder keeps it (new pairs must be embedded
        # with the model that embedded the old ones) while its base is still configured.
        model_path = adapted_embedder_dir(paths, meta.get("model", {}))
    path = Path(model_path) if model_path is not None else configured
    model_info = describe_embedder(path)

    new: list[int] = []
    if current is not None:
        action, reason, new = _compare_with_store(
            database, rs, meta, indexed_records, model_info, rebuild
        )
        if action == "unchanged":
            return IndexReport(
                "unchanged",
                reason,
                store.current_name(),
                len({r.id for r in indexed_records}),
                kind=meta.get("kind"),
                seconds=time.monotonic() - started,
                recall_at_10=meta.get("recall_at_10_vs_exact"),
                calibration=_reported(meta.get("calibration")),
            )

    if model is None:
        model = load_embedder(paths, path=None if path == configured else path)
    # The staging directory exists (locked) for the whole build: a build killed at any
    # point leaves only it, and the next build deletes it (VersionStore.clean_stale).
    staged = store.staging()
    log.info("building index version in %s: %s (%s)", staged, action, reason)
    try:
        if action == "added" and current is not None:
            records, vectors, extra = _added_to(
                current, indexed_records, new, rs, database, model, progress
            )
        else:
            records, vectors, extra = _all_pairs(rs, database, model, precomputed, progress)
        added = int(extra["added"])
        calibration, fusion_choice, answer_vectors, offtopic = None, None, None, None
        if calibrate:
            calibration, fusion_choice, fitted, offtopic = _chosen_for_version(
                rs, ds, database, model, records, vectors
            )
            if fitted is not None:
                extra["answer_classes"], answer_vectors = fitted
        extra["calibration"] = calibration
        extra["fusion"] = fusion_choice
        staged, meta = write_version(
            store,
            records,
            vectors,
            rs=rs,
            model_info=model_info,
            extra_meta=extra,
            staged=staged,
        )
        _save_vectors(staged, answer_vectors, offtopic)
    except BaseException:
        store.discard(staged)
        raise
    name = store.commit(staged)
    pruned = store.prune(rs.keep_versions)
    # A damaged older version must never be the one serving falls back to.
    pruned += remove_damaged_versions(paths, rs)
    log.info("index %s: %s (%s), %d pairs", name, action, reason, len(records))
    return IndexReport(
        action,
        reason,
        name,
        len(records),
        added=added,
        kind=meta["kind"],
        seconds=time.monotonic() - started,
        recall_at_10=meta["recall_at_10_vs_exact"],
        calibration=_reported(calibration),
        pruned=pruned,
        fusion=fusion_choice,
    )


def _read_current(
    store: VersionStore, rs: RetrievalSettings, rebuild: bool
) -> tuple[Path | None, IndexMeta, list[PairRecord], str, str]:
    """(current version, its meta, its pairs, action, reason): the current version read
    and checked. With `rebuild`, a damaged one is left unread (the build replaces it);
    without, its damage is the error."""
    action, reason = "built", "no index yet"
    current: Path | None = None
    meta: IndexMeta = {}
    indexed_records: list[PairRecord] = []
    try:
        current = store.require_current()
        meta = load_meta(current)
        indexed_records = load_records(current)
        if not rebuild:  # a rebuild replaces the files anyway; an update would build on them
            check_version(current, rs, meta, indexed_records)
    except IndexNotFoundError:
        pass
    except IndexDamagedError as exc:
        if not rebuild:
            raise
        current = None
        action, reason = (
            "rebuilt",
            f"the current version was damaged ({exc.path.name}: {exc.problem})",
        )
    return current, meta, indexed_records, action, reason


def _compare_with_store(
    database: Database,
    rs: RetrievalSettings,
    meta: IndexMeta,
    indexed_records: Sequence[PairRecord],
    model_info: IndexMeta,
    rebuild: bool,
) -> tuple[str, str, list[int]]:
    """(action, reason, new pair ids) for a current version: "rebuilt" when asked or when
    its vectors or pairs no longer match, "added" with new pairs, else "unchanged"."""
    indexed = {r.id: r.content_hash for r in indexed_records}
    new, deleted, changed = compare_pair_sets(indexed, load_pair_hashes(database, rs.index_splits))
    if rebuild:
        return "rebuilt", "--rebuild asked for", new
    if why := vectors_incompatible(meta, model_info["fingerprint"], rs):
        return "rebuilt", why, new
    if deleted or changed:
        return (
            "rebuilt",
            f"{len(deleted)} indexed pairs were deleted and {len(changed)} changed in the store",
            new,
        )
    if not new:
        return "unchanged", "the index already holds every pair", new
    return "added", f"{len(new)} new pairs", new


def _added_to(
    current_dir: Path,
    indexed_records: list[PairRecord],
    new: list[int],
    rs: RetrievalSettings,
    database: Database,
    model: SentenceTransformer,
    progress: bool,
) -> tuple[list[PairRecord], np.ndarray, IndexMeta]:
    """(records, vectors, meta) of the current version with the new pairs embedded and
    appended."""
    new_records = load_pairs(database, rs.index_splits, only_ids=new)
    old_vectors = np.load(current_dir / "vectors.npy")
    vectors = np.concatenate([old_vectors, _embed_records(model, new_records, rs, progress)])
    records = [*indexed_records, *new_records]
    return records, vectors, {"parent_version": current_dir.name, "added": len(new_records)}


def _all_pairs(
    rs: RetrievalSettings,
    database: Database,
    model: SentenceTransformer,
    precomputed: tuple[Sequence[int], np.ndarray] | None,
    progress: bool,
) -> tuple[list[PairRecord], np.ndarray, IndexMeta]:
    """(records, vectors, meta) of a full build: every pair of the indexed splits,
    embedded unless `precomputed` holds exactly their vectors."""
    records = load_pairs(database, rs.index_splits)
    if precomputed is not None and list(precomputed[0]) == [r.id for r in records]:
        vectors = np.asarray(precomputed[1], dtype=np.float32)
    else:
        vectors = _embed_records(model, records, rs, progress)
    return records, vectors, {"parent_version": None, "added": len(records)}


def _chosen_for_version(
    rs: RetrievalSettings,
    ds: DialogueSettings,
    database: Database,
    model: SentenceTransformer,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
) -> tuple[
    dict[str, Any] | None,
    dict[str, Any] | None,
    tuple[dict[str, Any], np.ndarray] | None,
    OffTopic,
]:
    """(gate calibration, fusion choice with the consensus choice, answer classes, the
    off-topic questions embedded) chosen on the company's validation questions for a
    version of `records`."""
    offtopic = embed_offtopic(rs, model)
    calibration = calibrate_index_gate(rs, ds, database, model, records, vectors, offtopic)
    fusion_choice = choose_fusion(rs, database, model, records, vectors)
    consensus = choose_consensus(
        rs,
        ds,
        model,
        records,
        vectors,
        validation_sample(database),
        float((fusion_choice or {}).get("lexical_weight", rs.lexical_weight)),
    )
    if consensus is not None:
        fusion_choice = {**(fusion_choice or {}), "consensus": consensus}
    fitted = build_answer_classes(rs, ds, database, model, records, vectors)
    return calibration, fusion_choice, fitted, offtopic


def _save_vectors(
    staged: Path, answer_vectors: np.ndarray | None, offtopic: OffTopic | None
) -> None:
    """Beside the version's index: the replies' vectors (when answer classes were fitted)
    and the off-topic questions' (when the version was calibrated): a question nearer one
    of them than any indexed question is declined (`dialogue.decline_nearer_offtopic_by`)."""
    if answer_vectors is not None:
        np.save(staged / ANSWER_VECTORS, np.asarray(answer_vectors, dtype=np.float32))
    if offtopic is not None and offtopic.questions:
        np.save(staged / OFFTOPIC_VECTORS, np.asarray(offtopic.vectors, dtype=np.float32))


def _reported(calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    """The calibration as a report shows it: without the domain check's weights (one
    number per embedding dimension), which only the version's meta.json needs."""
    if calibration is None:
        return None
    return {k: v for k, v in calibration.items() if k != "domain_weights"}
