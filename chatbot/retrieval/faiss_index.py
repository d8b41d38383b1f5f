"""Dense vector search with FAISS: exact (inner product over unit vectors = cosine)
for small collections, HNSW above `exact_max_pairs`, with the approximate index's
recall@10 against exact search measured when it is built.

Rows are positions 0..n-1; which training pair a row is belongs to the index
version's `pairs.jsonl` (see `index_files`). Versioned directories and switching live in
`versions`; this module only builds, saves, loads and searches one set of vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from chatbot.retrieval.settings import RetrievalSettings
from chatbot.retrieval.versions import IndexDamagedError, describe_problem

if TYPE_CHECKING:
    import faiss


@dataclass
class DenseIndex:
    kind: str  # "exact" | "hnsw"
    vectors: np.ndarray  # (n, dim) float32 unit rows; kept for rescoring and rebuilding
    index: faiss.Index

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(cosines, rows) of the k nearest rows; rows are -1 where fewer exist."""
        k = max(1, min(k, self.size)) if self.size else 1
        if self.size == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        scores, rows = self.index.search(
            np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k
        )
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]

    def cosine(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosines of `query` with the given rows."""
        cosines: np.ndarray = self.vectors[rows] @ query
        return cosines


def choose_kind(n: int, settings: RetrievalSettings) -> str:
    return "exact" if n <= settings.exact_max_pairs else "hnsw"


def build_faiss(vectors: np.ndarray, kind: str, settings: RetrievalSettings) -> faiss.Index:
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    index: faiss.Index
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = settings.hnsw_ef_construction
        hnsw.hnsw.efSearch = settings.hnsw_ef_search
        index = hnsw
    else:  # pragma: no cover - guarded by choose_kind
        raise ValueError(f"unknown index kind {kind!r}")
    if len(vectors):
        index.add(vectors)
    return index


def build(vectors: np.ndarray, settings: RetrievalSettings, kind: str | None = None) -> DenseIndex:
    kind = kind or choose_kind(len(vectors), settings)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return DenseIndex(kind, vectors, build_faiss(vectors, kind, settings))


def recall_at_k(index: DenseIndex, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k that `index` finds, averaged over `queries`."""
    import faiss

    if index.size == 0 or len(queries) == 0:
        return 1.0
    k = min(k, index.size)
    exact = faiss.IndexFlatIP(index.dim)
    exact.add(index.vectors)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    _, truth = exact.search(queries, k)
    _, found = index.index.search(queries, k)
    hits = sum(len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist()))
    return hits / (k * len(queries))


def save(index: DenseIndex, directory: Path) -> None:
    import faiss

    np.save(directory / "vectors.npy", index.vectors)
    faiss.write_index(index.index, str(directory / "index.faiss"))


def load(directory: Path, kind: str, settings: RetrievalSettings) -> DenseIndex:
    """Load a saved index; IndexDamagedError names a missing, cut-short or unreadable
    file, or the two files disagreeing."""
    import faiss

    vectors_file, index_file = directory / "vectors.npy", directory / "index.faiss"
    try:
        vectors = np.load(vectors_file, mmap_mode="r", allow_pickle=False)
        if vectors.ndim != 2 or vectors.dtype != np.float32:
            raise ValueError(
                f"holds a {vectors.dtype} array of shape {vectors.shape}, not float32 rows"
            )
    except (OSError, ValueError, EOFError) as exc:
        raise IndexDamagedError(vectors_file, describe_problem(exc)) from None
    if not index_file.is_file():
        raise IndexDamagedError(index_file, "missing")
    try:
        index = faiss.read_index(str(index_file))
    except Exception as exc:
        raise IndexDamagedError(index_file, f"cannot be read ({describe_problem(exc)})") from None
    if index.ntotal != vectors.shape[0] or (index.ntotal and index.d != vectors.shape[1]):
        raise IndexDamagedError(
            index_file,
            f"holds {index.ntotal} vectors of dimension {index.d}, "
            f"vectors.npy {vectors.shape[0]} of dimension {vectors.shape[1]}",
        )
    if kind == "hnsw":  # read_index gives the HNSW index its own class
        cast("faiss.IndexHNSWFlat", index).hnsw.efSearch = settings.hnsw_ef_search
    return DenseIndex(kind, vectors, index)
