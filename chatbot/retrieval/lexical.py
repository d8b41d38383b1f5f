"""Lexical scores: BM25 (the `bm25s` library) over the indexed customer contexts.

Builds, saves and loads the BM25 index of one index version, and scores a query
against every document. Fusing these scores with dense ones is `fusion`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _bm25s():
    import bm25s

    # bm25s sets its own logger to DEBUG on import; let the application decide.
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    bm25s = _bm25s()
    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


class LexicalIndex:
    """BM25 over a list of documents; row i is document i."""

    def __init__(self, bm25, size: int):
        self._bm25 = bm25
        self.size = size

    @classmethod
    def build(cls, documents: Sequence[str]) -> LexicalIndex:
        bm25 = _bm25s().BM25()
        tokens = _tokenize(documents) if documents else []
        # bm25s refuses an empty vocabulary; an index of contentless documents scores 0.
        if any(tokens):
            bm25.index(tokens, show_progress=False)
        else:
            bm25 = None
        return cls(bm25, len(documents))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "size.txt").write_text(str(self.size))
        if self._bm25 is not None:
            self._bm25.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        size = int((directory / "size.txt").read_text())
        bm25 = _bm25s().BM25.load(str(directory), mmap=False) if (directory / "params.index.json").exists() else None
        return cls(bm25, size)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of `query` against every document (zeros where nothing matches)."""
        if self._bm25 is None or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        tokens = _tokenize([query])[0]
        vocab = self._bm25.vocab_dict
        tokens = [t for t in tokens if t in vocab]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)
