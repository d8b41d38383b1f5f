"""What one index version holds on disk, and reading it back: meta.json (which
embedder, which settings, which pairs), pairs.jsonl (one `PairRecord` per vector row),
the dense and the lexical index, each checked against the others. Searches read a
version through here; `chatbot.indexing` writes versions with the same formats.
Where versions live and how the current one is switched is `versions`' job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatbot.config import DataPaths
from chatbot.meta_file import MetaFileError, read_meta
from chatbot.models.embedder import embedder_path
from chatbot.pairs import PairRecord, context_of
from chatbot.retrieval import faiss_index
from chatbot.retrieval.lexical import LexicalIndex
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.retrieval.versions import IndexDamagedError, describe_problem

FORMAT = 1
ADAPTED_MADE_BY = "chatbot index --adapt"

# An index version's meta.json (and its "model" entry), as JSON.
IndexMeta = dict[str, Any]


def store_root(paths: DataPaths) -> Path:
    """The directory of the index versions (`versions.VersionStore`'s root)."""
    return paths.index_dir / "pairs"


def model_fingerprint(path: Path) -> str:
    """Identifies an embedder directory by its file names, sizes and small JSON files."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        digest.update(f"{rel}:{file.stat().st_size}\n".encode())
        if file.suffix == ".json" and file.stat().st_size < 1_000_000:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def describe_embedder(path: Path) -> IndexMeta:
    """The `model` entry of an index's meta.json. An embedder adapted by `chatbot index
    --adapt` (its meta.json says so) also names the base it was adapted from, so that a
    reader can check the base is still the configured one."""
    path = Path(path)
    info: IndexMeta = {"path": str(path), "fingerprint": model_fingerprint(path), "name": path.name}
    try:
        meta = read_meta(path)
    except MetaFileError:
        meta = {}
    if meta.get("made_by") == ADAPTED_MADE_BY and isinstance(meta.get("base_model"), dict):
        info["adapted_from"] = {k: meta["base_model"].get(k) for k in ("path", "fingerprint")}
    return info


def adapted_embedder_dir(paths: DataPaths, model_meta: IndexMeta) -> Path | None:
    """The adapted embedder an index was built with, when it is still usable: its
    directory is intact (same fingerprint) and it was adapted from the embedder the
    settings name now. None when the index was not built with an adapted embedder or
    that embedder can no longer be used (then the index must be rebuilt)."""
    base = model_meta.get("adapted_from")
    if not base:
        return None
    path = Path(model_meta.get("path", ""))
    if not (path / "modules.json").is_file() or model_fingerprint(path) != model_meta.get(
        "fingerprint"
    ):
        return None
    if model_fingerprint(embedder_path(paths)) != base.get("fingerprint"):
        return None
    return path


def vectors_incompatible(meta: IndexMeta, fingerprint: str, rs: RetrievalSettings) -> str | None:
    """Why an index version's vectors are not what the embedder with `fingerprint`
    under the settings `rs` would give its pairs (None when they are)."""
    if meta.get("format") != FORMAT:
        return f"index format {meta.get('format')} is not {FORMAT}"
    if meta.get("model", {}).get("fingerprint") != fingerprint:
        return f"the embedder changed (index built with {meta.get('model', {}).get('path')})"
    if {k: meta.get("settings", {}).get(k) for k in rs.index_defining()} != rs.index_defining():
        return "the retrieval settings that shape the index changed"
    return None


def record_to_row(record: PairRecord) -> dict[str, object]:
    """A pair as one line of pairs.jsonl (the texts of its context, without roles)."""
    return {
        "id": record.id,
        "content_hash": record.content_hash,
        "conversation_id": record.conversation_id,
        "turn_index": record.turn_index,
        "source": record.source,
        "message": record.message,
        "history": record.history,
        "reply": record.target,
    }


def record_from_row(row: dict[str, Any]) -> PairRecord:
    """The inverse of `record_to_row`; KeyError/TypeError/ValueError on a bad row."""
    history = row["history"]
    if not isinstance(history, list):
        raise ValueError("history is not a list")
    return PairRecord(
        id=int(row["id"]),
        source=str(row["source"]),
        origin="",
        split="",
        context=context_of(str(row["message"]), [str(h) for h in history]),
        target=str(row["reply"]),
        content_hash=str(row["content_hash"]),
        conversation_id=row["conversation_id"],
        turn_index=row["turn_index"],
    )


def load_meta(version_dir: Path) -> IndexMeta:
    """A version's meta.json, checked for what readers need; IndexDamagedError otherwise."""
    path = version_dir / "meta.json"
    try:
        meta = read_meta(version_dir)
    except MetaFileError as exc:
        raise IndexDamagedError(path, exc.problem) from None
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
                    records.append(record_from_row(item))
                except (KeyError, ValueError, TypeError) as exc:
                    raise IndexDamagedError(
                        path, f"line {number}: {describe_problem(exc)}"
                    ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexDamagedError(path, describe_problem(exc)) from None
    return records


def check_version(
    version_dir: Path,
    rs: RetrievalSettings,
    meta: IndexMeta | None = None,
    records: Sequence[PairRecord] | None = None,
) -> tuple[IndexMeta, list[PairRecord], faiss_index.DenseIndex, LexicalIndex]:
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
    dense = faiss_index.load(version_dir, meta["kind"], rs)
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
