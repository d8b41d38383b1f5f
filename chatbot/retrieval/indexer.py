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
Searching is `retriever`'s job; the version directories are `versions`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chatbot.config import Settings
from chatbot.retrieval import faiss_index
from chatbot.retrieval.embedding import embed_contexts
from chatbot.retrieval.lexical import LexicalIndex
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.retrieval.versions import (
    IndexDamagedError,
    IndexNotFoundError,
    VersionStore,
    describe_problem,
    write_json_atomic,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chatbot.store.database import Database

log = logging.getLogger(__name__)

FORMAT = 1
RECALL_QUERIES = 500


@dataclass(frozen=True)
class PairRecord:
    """One indexed training pair, as stored beside the vectors (row order)."""

    id: int
    content_hash: str
    conversation_id: int | None
    turn_index: int | None
    source: str
    message: str  # the customer message the reply answered
    history: list[str]  # earlier turns, oldest first
    reply: str

    @property
    def context_text(self) -> str:
        return "\n".join([*self.history, self.message])


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
    calibration: dict | None = None
    pruned: list[str] = field(default_factory=list)
    fusion: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def store_root(settings: Settings) -> Path:
    return settings.index_dir / "pairs"


def pair_set_hash(pairs: Iterable[tuple[int, str]]) -> str:
    digest = hashlib.sha256()
    for pair_id, content_hash in sorted(pairs):
        digest.update(f"{pair_id}:{content_hash}\n".encode())
    return digest.hexdigest()


def model_fingerprint(path: Path) -> str:
    """Identifies an embedder directory by its file names, sizes and small JSON files."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        digest.update(f"{rel}:{file.stat().st_size}\n".encode())
        if file.suffix == ".json" and file.stat().st_size < 1_000_000:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


ADAPTED_MADE_BY = "chatbot index --adapt"


def describe_embedder(path: Path) -> dict:
    """The `model` entry of an index's meta.json. An embedder adapted by `chatbot index
    --adapt` (its meta.json says so) also names the base it was adapted from, so that a
    reader can check the base is still the configured one."""
    path = Path(path)
    info = {"path": str(path), "fingerprint": model_fingerprint(path), "name": path.name}
    meta_file = path / "meta.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("made_by") == ADAPTED_MADE_BY and isinstance(meta.get("base_model"), dict):
            info["adapted_from"] = {k: meta["base_model"].get(k) for k in ("path", "fingerprint")}
    return info


def adapted_embedder_dir(settings: Settings, model_meta: dict) -> Path | None:
    """The adapted embedder an index was built with, when it is still usable: its
    directory is intact (same fingerprint) and it was adapted from the embedder the
    settings name now. None when the index was not built with an adapted embedder or
    that embedder can no longer be used (then the index must be rebuilt)."""
    from chatbot.models.embedder import embedder_path

    base = model_meta.get("adapted_from")
    if not base:
        return None
    path = Path(model_meta.get("path", ""))
    if not (path / "modules.json").is_file() or model_fingerprint(path) != model_meta.get(
        "fingerprint"
    ):
        return None
    if model_fingerprint(embedder_path(settings)) != base.get("fingerprint"):
        return None
    return path


def vectors_incompatible(meta: dict, fingerprint: str, rs: RetrievalSettings) -> str | None:
    """Why an index version's vectors are not what the embedder with `fingerprint`
    under the settings `rs` would give its pairs (None when they are)."""
    if meta.get("format") != FORMAT:
        return f"index format {meta.get('format')} is not {FORMAT}"
    if meta.get("model", {}).get("fingerprint") != fingerprint:
        return f"the embedder changed (index built with {meta.get('model', {}).get('path')})"
    if {k: meta.get("settings", {}).get(k) for k in rs.index_defining()} != rs.index_defining():
        return "the retrieval settings that shape the index changed"
    return None


def _record(row) -> PairRecord:
    context = row.context or []
    texts = [str(item.get("text", "")) if isinstance(item, dict) else str(item) for item in context]
    message = texts[-1] if texts else ""
    return PairRecord(
        id=row.id,
        content_hash=row.content_hash,
        conversation_id=row.conversation_id,
        turn_index=row.turn_index,
        source=row.source,
        message=message,
        history=texts[:-1],
        # The slotted reply (no other customer's name or order number), once the importer made one.
        reply=row.target_slotted if row.target_slotted is not None else row.target,
    )


def load_pairs(
    database: Database, splits: Sequence[str], *, only_ids: Iterable[int] | None = None
) -> list[PairRecord]:
    """The pairs of `splits`, ordered by id."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    query = (
        select(TrainingPair).where(TrainingPair.split.in_(list(splits))).order_by(TrainingPair.id)
    )
    with database.session() as session:
        rows = session.scalars(query).all()
        wanted = set(only_ids) if only_ids is not None else None
        return [_record(r) for r in rows if wanted is None or r.id in wanted]


def load_pair_hashes(database: Database, splits: Sequence[str]) -> dict[int, str]:
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    query = select(TrainingPair.id, TrainingPair.content_hash).where(
        TrainingPair.split.in_(list(splits))
    )
    with database.session() as session:
        return {pair_id: content_hash for pair_id, content_hash in session.execute(query)}


def read_meta(version_dir: Path) -> dict:
    """meta.json as it is (raw: OSError/ValueError on damage; see `load_meta`)."""
    return json.loads((version_dir / "meta.json").read_text())


def read_pairs(version_dir: Path) -> list[PairRecord]:
    """pairs.jsonl as it is (raw: OSError/ValueError on damage; see `load_records`)."""
    with (version_dir / "pairs.jsonl").open(encoding="utf-8") as fh:
        return [PairRecord(**json.loads(line)) for line in fh if line.strip()]


def load_meta(version_dir: Path) -> dict:
    """A version's meta.json, checked for what readers need; IndexDamagedError otherwise."""
    path = version_dir / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexDamagedError(path, describe_problem(exc)) from None
    if not isinstance(meta, dict):
        raise IndexDamagedError(path, "is not a JSON object")
    model = meta.get("model")
    missing = [key for key in ("format", "kind", "pair_count", "settings") if key not in meta]
    if not isinstance(model, dict) or not {"path", "fingerprint"} <= set(model):
        missing.append("model")
    elif not isinstance(meta.get("settings"), dict) or "index_splits" not in meta["settings"]:
        missing.append("settings.index_splits")
    if missing:
        raise IndexDamagedError(path, f"lacks {', '.join(missing)}")
    return meta


def load_records(version_dir: Path) -> list[PairRecord]:
    """A version's pairs.jsonl; IndexDamagedError naming the file (and line) otherwise."""
    path = version_dir / "pairs.jsonl"
    records = []
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    if not isinstance(item, dict):
                        raise ValueError("not a JSON object")
                    records.append(PairRecord(**item))
                except (ValueError, TypeError) as exc:
                    raise IndexDamagedError(
                        path, f"line {number}: {describe_problem(exc)}"
                    ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexDamagedError(path, describe_problem(exc)) from None
    return records


def check_version(
    version_dir: Path,
    settings: Settings,
    meta: dict | None = None,
    records: Sequence[PairRecord] | None = None,
):
    """Read every file of a version and check they agree (meta, pairs, vectors, FAISS,
    BM25); returns (meta, records, dense index, lexical index). IndexDamagedError names
    the first bad file."""
    meta = load_meta(version_dir) if meta is None else meta
    records = load_records(version_dir) if records is None else list(records)
    if meta.get("pair_count") != len(records):
        raise IndexDamagedError(
            version_dir / "pairs.jsonl",
            f"holds {len(records)} pairs, meta.json says {meta.get('pair_count')}",
        )
    dense = faiss_index.load(version_dir, meta["kind"], settings.retrieval)
    if dense.size != len(records):
        raise IndexDamagedError(
            version_dir / "vectors.npy", f"holds {dense.size} vectors for {len(records)} pairs"
        )
    lexical = LexicalIndex.load(version_dir / "lexical")
    if lexical.size != len(records):
        raise IndexDamagedError(
            version_dir / "lexical" / "size.txt",
            f"says {lexical.size} documents for {len(records)} pairs",
        )
    return meta, records, dense, lexical


def compare_pair_sets(
    indexed: dict[int, str], stored: dict[int, str]
) -> tuple[list[int], list[int], list[int]]:
    """(new ids, deleted ids, changed ids) of the store relative to the index."""
    new = sorted(set(stored) - set(indexed))
    deleted = sorted(set(indexed) - set(stored))
    changed = sorted(i for i in set(indexed) & set(stored) if indexed[i] != stored[i])
    return new, deleted, changed


def _embed_records(
    model, records: Sequence[PairRecord], rs: RetrievalSettings, progress: bool
) -> np.ndarray:
    return embed_contexts(model, [(r.message, r.history) for r in records], rs, progress=progress)


def write_version(
    store: VersionStore,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
    *,
    settings: Settings,
    model_info: dict,
    extra_meta: dict,
    staged: Path | None = None,
) -> tuple[Path, dict]:
    """Write a complete version into a staging directory (`staged`, or a new one);
    returns (staged path, meta)."""
    rs = settings.retrieval
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
                fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
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
        write_json_atomic(staged / "meta.json", meta)
        return staged, meta
    except BaseException:
        store.discard(staged)
        raise


def update_index(
    settings: Settings,
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
    from chatbot.models.embedder import embedder_path, load_embedder

    started = time.monotonic()
    rs = settings.retrieval
    store = VersionStore(store_root(settings))
    store.clean_stale()  # staging directories of killed builds
    action, reason, base = "built", "no index yet", None
    current, meta, indexed_records = None, None, None
    try:
        current = store.require_current()
        meta = load_meta(current)
        indexed_records = load_records(current)
        if not rebuild:  # a rebuild replaces the files anyway; an update would build on them
            check_version(current, settings, meta, indexed_records)
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
    configured = embedder_path(settings)
    if model_path is None and current is not None:
        # An index built with an adapted embedder keeps it (new pairs must be embedded
        # with the model that embedded the old ones) while its base is still configured.
        model_path = adapted_embedder_dir(settings, meta.get("model", {}))
    path = Path(model_path) if model_path is not None else configured
    model_info = describe_embedder(path)

    stored = load_pair_hashes(database, rs.index_splits)
    if current is not None:
        indexed = {r.id: r.content_hash for r in indexed_records}
        new, deleted, changed = compare_pair_sets(indexed, stored)
        if rebuild:
            action, reason = "rebuilt", "--rebuild asked for"
        elif why := vectors_incompatible(meta, model_info["fingerprint"], rs):
            action, reason = "rebuilt", why
        elif deleted or changed:
            action, reason = (
                "rebuilt",
                f"{len(deleted)} indexed pairs were deleted and {len(changed)} changed in the store",
            )
        elif not new:
            return IndexReport(
                "unchanged",
                "the index already holds every pair",
                store.current_name(),
                len(indexed),
                kind=meta.get("kind"),
                seconds=time.monotonic() - started,
                recall_at_10=meta.get("recall_at_10_vs_exact"),
                calibration=meta.get("calibration"),
            )
        else:
            action, reason, base = "added", f"{len(new)} new pairs", (current, indexed_records, new)

    if model is None:
        model = load_embedder(settings) if path == configured else _load(path)
    # The staging directory exists (locked) for the whole build: a build killed at any
    # point leaves only it, and the next build deletes it (VersionStore.clean_stale).
    staged = store.staging()
    log.info("building index version in %s: %s (%s)", staged, action, reason)
    try:
        if action == "added":
            current_dir, indexed_records, new = base
            new_records = load_pairs(database, rs.index_splits, only_ids=new)
            old_vectors = np.load(current_dir / "vectors.npy")
            vectors = np.concatenate(
                [old_vectors, _embed_records(model, new_records, rs, progress)]
            )
            records = [*indexed_records, *new_records]
            added = len(new_records)
            extra = {"parent_version": current_dir.name, "added": added}
        else:
            records = load_pairs(database, rs.index_splits)
            if precomputed is not None and list(precomputed[0]) == [r.id for r in records]:
                vectors = np.asarray(precomputed[1], dtype=np.float32)
            else:
                vectors = _embed_records(model, records, rs, progress)
            added = len(records)
            extra = {"parent_version": None, "added": added}

        calibration = fusion_choice = None
        if calibrate:
            calibration = _calibrate(settings, database, model, records, vectors)
            fusion_choice = _choose_fusion(settings, database, model, records, vectors)
        extra["calibration"] = calibration
        extra["fusion"] = fusion_choice
        staged, meta = write_version(
            store,
            records,
            vectors,
            settings=settings,
            model_info=model_info,
            extra_meta=extra,
            staged=staged,
        )
    except BaseException:
        store.discard(staged)
        raise
    name = store.commit(staged)
    pruned = store.prune(rs.keep_versions)
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
        calibration=calibration,
        pruned=pruned,
        fusion=fusion_choice,
    )


def _load(path: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


CALIBRATION_PAIRS = 500


def _pair_topics(database: Database, pair_ids: Iterable[int]) -> dict[int, str | None]:
    """The `topic` label of each of these pairs (None when unlabelled)."""
    from sqlalchemy import select

    from chatbot.store.schema import TrainingPair

    ids = sorted(set(pair_ids))
    topics: dict[int, str | None] = {}
    with database.session() as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for pair_id, labels in session.execute(
                select(TrainingPair.id, TrainingPair.labels).where(TrainingPair.id.in_(chunk))
            ):
                topics[pair_id] = (labels or {}).get("topic") if isinstance(labels, dict) else None
    return topics


def gate_scores(
    settings: Settings, retriever, questions: Sequence[tuple[str, Sequence[str]]]
) -> tuple[np.ndarray, list[int | None]]:
    """The gate's raw score (`retrieval.gate_feature`) of each (message, history) and
    the pair id of its top hit (None when nothing was found)."""
    from chatbot.retrieval.embedding import embed_contexts

    rs = settings.retrieval
    if not questions:
        return np.zeros(0), []
    vectors = embed_contexts(retriever.model, [(m, list(h)) for m, h in questions], rs)
    scores, tops = [], []
    for (message, history), vector in zip(questions, vectors):
        result = retriever.search_vector(vector, message, history=list(history), k=1)
        scores.append(result.scope_score if result.scope_score is not None else 0.0)
        tops.append(result.hits[0].pair_id if result.hits else None)
    return np.asarray(scores, dtype=np.float64), tops


# Lexical weights tried on the company's validation questions (`_choose_fusion`).
FUSION_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)
FUSION_MIN_STDERRS = 1.0


def _validation_sample(database: Database) -> list[PairRecord]:
    val = load_pairs(database, ["val"])
    if len(val) > CALIBRATION_PAIRS:
        rng = np.random.default_rng(0)
        val = [val[i] for i in sorted(rng.choice(len(val), CALIBRATION_PAIRS, replace=False))]
    return val


def _choose_fusion(
    settings: Settings,
    database: Database,
    model,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
) -> dict | None:
    """The weight of BM25 in the fused score for this company, chosen on its own
    validation questions: for each weight in FUSION_WEIGHTS, how close (embedding
    cosine) the top retrieved reply is to the agent's real reply. The best weight
    replaces the configured `retrieval.lexical_weight` only where it beats it by more
    than FUSION_MIN_STDERRS standard errors of the paired differences (a weight set
    explicitly, in the config file or CHATBOT_RETRIEVAL__LEXICAL_WEIGHT, always wins at
    search time). None without enough validation questions."""
    from chatbot.retrieval.embedding import embed_contexts, embed_texts
    from chatbot.retrieval.retriever import PairRetriever
    from chatbot.retrieval.scope import ScopeCalibration

    rs = settings.retrieval
    if "val" in rs.index_splits or not records:
        return None
    val = [p for p in _validation_sample(database) if p.reply.strip()]
    if len(val) < rs.min_calibration_pairs:
        return None
    retriever = PairRetriever.from_parts(
        settings,
        records,
        vectors,
        model,
        calibration=ScopeCalibration.uncalibrated(rs.oos_threshold),
    )
    queries = embed_contexts(model, [(p.message, p.history) for p in val], rs)
    weights = sorted({*FUSION_WEIGHTS, rs.lexical_weight})
    row_of = {r.id: row for row, r in enumerate(records)}
    tops: dict[float, list[int]] = {}
    for weight in weights:
        rows = []
        for pair, vector in zip(val, queries):
            hits = retriever.search_vector(
                vector, pair.message, history=pair.history, k=1, lexical_weight=weight
            ).hits
            rows.append(row_of[hits[0].pair_id] if hits else -1)
        tops[weight] = rows
    used = sorted({r for rows in tops.values() for r in rows if r >= 0})
    reply_vectors = dict(
        zip(used, embed_texts(model, [records[r].reply for r in used], batch_size=rs.batch_size))
    )
    truth = embed_texts(model, [p.reply for p in val], batch_size=rs.batch_size)
    similarity = {
        w: np.array([float(reply_vectors[r] @ t) if r >= 0 else 0.0 for r, t in zip(rows, truth)])
        for w, rows in tops.items()
    }
    best = max(
        weights, key=lambda w: (round(float(similarity[w].mean()), 6), -abs(w - rs.lexical_weight))
    )
    diff = similarity[best] - similarity[rs.lexical_weight]
    stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
    gain = float(diff.mean())
    chosen = best if gain > 0 and gain > FUSION_MIN_STDERRS * stderr else rs.lexical_weight
    return {
        "lexical_weight": chosen,
        "configured_lexical_weight": rs.lexical_weight,
        "best_weight": best,
        "gain_over_configured": round(gain, 4),
        "stderr": round(stderr, 4),
        "validation_questions": len(val),
        "reply_similarity_by_weight": {
            str(w): round(float(similarity[w].mean()), 4) for w in weights
        },
        "rule": f"embedding cosine of the top retrieved reply and the agent's real reply on validation questions; "
        f"the best weight replaces the configured one when it gains more than {FUSION_MIN_STDERRS:g} standard "
        "error(s) of the paired differences",
    }


def _calibrate(
    settings: Settings,
    database: Database,
    model,
    records: Sequence[PairRecord],
    vectors: np.ndarray,
) -> dict | None:
    """The out-of-scope gate (`chatbot.retrieval.scope.calibrate_gate`), chosen on
    validation questions (never test) as positives and the shipped generic off-topic
    questions (plus validation questions the company labelled out of scope) as
    negatives; a negative whose best match is a pair labelled out of scope or hand-off
    (`dialogue.out_of_scope_topics`, `dialogue.handoff_topics`) is handed off by the
    dialogue manager whatever the cut. None when nothing is indexed, the validation
    split is indexed itself, or there are no validation pairs at all."""
    from dataclasses import replace

    from chatbot.retrieval.retriever import PairRetriever
    from chatbot.retrieval.scope import ScopeCalibration, background_questions, calibrate_gate

    rs = settings.retrieval
    if "val" in rs.index_splits or not records:
        return None
    val = _validation_sample(database)
    if not val:
        log.warning(
            "out-of-scope gate not calibrated: no validation pairs; using retrieval.oos_threshold"
        )
        return None
    handing_off = set(settings.dialogue.out_of_scope_topics) | set(settings.dialogue.handoff_topics)
    val_topics = _pair_topics(database, [p.id for p in val])
    own_out = [p for p in val if val_topics.get(p.id) in settings.dialogue.out_of_scope_topics]
    inside = [p for p in val if val_topics.get(p.id) not in handing_off]
    background = background_questions(rs.gate_background_file, shipped=rs.gate_background)

    probe = replace(ScopeCalibration.uncalibrated(rs.oos_threshold), feature=rs.gate_feature)
    retriever = PairRetriever.from_parts(settings, records, vectors, model, calibration=probe)
    pos, pos_tops = gate_scores(settings, retriever, [(p.message, p.history) for p in inside])
    neg, neg_tops = gate_scores(
        settings,
        retriever,
        [(p.message, p.history) for p in own_out] + [(q, []) for q in background],
    )
    top_topics = _pair_topics(database, [t for t in [*pos_tops, *neg_tops] if t is not None])
    neg_by_topic = np.array(
        [t is None or top_topics.get(t) in handing_off for t in neg_tops], dtype=bool
    )
    # Words the history never uses: used only where they spare the company's own questions.
    pos_named = np.array([retriever.terms_unknown(p.message) for p in inside], dtype=bool)
    names_rate = float(pos_named.mean()) if pos_named.size else 0.0
    use_names = (
        rs.gate_unknown_terms
        and pos_named.size >= rs.min_calibration_pairs
        and names_rate <= rs.gate_unknown_terms_max
    )
    neg_questions = [p.message for p in own_out] + background
    neg_named = (
        np.array([retriever.terms_unknown(q) for q in neg_questions], dtype=bool)
        if use_names
        else np.zeros(len(neg_questions), bool)
    )
    calibration = calibrate_gate(
        pos[~pos_named] if use_names else pos,
        neg,
        negatives_handled=neg_by_topic | neg_named,
        prior_threshold=rs.gate_prior_threshold,
        prior_strength=rs.gate_prior_strength,
        min_positives=rs.min_calibration_pairs,
        resamples=rs.gate_resamples,
        feature=rs.gate_feature,
        n_background=len(background),
        unknown_terms=use_names,
    )
    result = calibration.to_dict()
    result["method"] = (
        f"top {'dense cosine' if rs.gate_feature == 'dense' else 'fused score'}; positives: in-domain "
        "validation questions; negatives: shipped off-topic questions and validation questions labelled "
        "out of scope; Youden's J cut pulled towards the prior threshold; 95% percentile-bootstrap interval"
    )
    result["prior_strength"] = rs.gate_prior_strength
    result["validation_questions"] = len(val)
    result["own_out_of_scope"] = len(own_out)
    result["positives_handed_off_by_topic"] = int(
        sum(t is not None and top_topics.get(t) in handing_off for t in pos_tops)
    )
    result["negatives_handed_off_by_topic"] = int(neg_by_topic.sum())
    result["unknown_terms_validation_rate"] = round(names_rate, 4)
    result["negatives_caught_by_unknown_terms"] = int((neg_named & ~neg_by_topic).sum())
    return result
