"""Lexical scores: BM25 (the `bm25s` library) over the indexed customer contexts.

Builds, saves and loads the BM25 index of one index version, and scores a query
against every document; a lexical directory that is missing a file or holds a damaged
one is an IndexDamagedError naming the file. Fusing these scores with dense ones is
`fusion`'s job.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from chatbot.retrieval.versions import IndexDamagedError, describe_problem

if TYPE_CHECKING:
    from bm25s import BM25

log = logging.getLogger(__name__)

SIZE_FILE = "size.txt"
PARAMS_FILE = "params.index.json"
# Written instead of the BM25 files when no document has a word to index, so that a
# missing BM25 file is told apart from an index that never had one.
NO_VOCABULARY_FILE = "no-vocabulary"
BM25_FILES = (
    "params.index.json",
    "vocab.index.json",
    "data.csc.index.npy",
    "indices.csc.index.npy",
    "indptr.csc.index.npy",
)


def _bm25s() -> ModuleType:
    bm25s = importlib.import_module("bm25s")

    # bm25s sets its own logger to DEBUG on import; let the application decide.
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    bm25s = _bm25s()
    tokens: list[list[str]] = bm25s.tokenize(
        list(texts), stopwords="en", return_ids=False, show_progress=False
    )
    return tokens


class LexicalIndex:
    """BM25 over a list of documents; row i is document i."""

    def __init__(self, bm25: BM25 | None, size: int) -> None:
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
        (directory / SIZE_FILE).write_text(str(self.size))
        if self._bm25 is not None:
            self._bm25.save(str(directory), show_progress=False)
        else:
            (directory / NO_VOCABULARY_FILE).write_text("no document has a word to index\n")

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        """Load a saved index; IndexDamagedError names a missing or unreadable file."""
        size_file = directory / SIZE_FILE
        try:
            size = int(size_file.read_text(encoding="utf-8").strip())
            if size < 0:
                raise ValueError(f"negative size {size}")
        except (OSError, ValueError) as exc:
            raise IndexDamagedError(size_file, describe_problem(exc)) from None
        if not (directory / PARAMS_FILE).exists() and (
            size == 0 or (directory / NO_VOCABULARY_FILE).exists()
        ):
            return cls(None, size)
        for name in BM25_FILES:  # each file readable on its own, so that the message names it
            path = directory / name
            try:
                if name.endswith(".json"):
                    json.loads(path.read_text(encoding="utf-8"))
                else:
                    np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise IndexDamagedError(path, describe_problem(exc)) from None
        try:
            bm25 = _bm25s().BM25.load(str(directory), mmap=False)
            vocabulary = len(bm25.vocab_dict)
            scores = bm25.get_scores([next(iter(bm25.vocab_dict))]) if vocabulary else None
        except Exception as exc:
            raise IndexDamagedError(
                directory, f"the BM25 files cannot be read ({describe_problem(exc)})"
            ) from None
        if scores is not None and len(scores) != size:
            raise IndexDamagedError(
                directory, f"the BM25 index scores {len(scores)} documents, {SIZE_FILE} says {size}"
            )
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
