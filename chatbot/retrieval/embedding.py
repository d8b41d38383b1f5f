"""Turning text into vectors: batch embedding with the configured embedder, and the
history fusion that makes "and how long does that take?" mean something.

A customer context (or a query with its history) becomes one unit vector:
    v = normalise((1 - w) * e(message) + w * sum_i d^i e(turn_i) / sum_i d^i)
where turn_0 is the newest earlier turn, w = `history_weight`, d = `history_decay`, and
at most `history_turns` earlier turns count. The same formula embeds the indexed
pairs and the live queries, so both sides live in one space. Loading the model is
`chatbot.models.embedder`'s job; searching the vectors is `faiss_index`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from chatbot.retrieval.settings import RetrievalSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def embed_texts(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Unit-length float32 vectors, one row per text (duplicates embedded once)."""
    dim = (
        model.get_embedding_dimension()
        if hasattr(model, "get_embedding_dimension")
        else model.get_sentence_embedding_dimension()
    )
    if not texts:
        return np.zeros((0, dim or 0), dtype=np.float32)
    unique = list(dict.fromkeys(texts))
    vectors = model.encode(
        unique,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=progress,
    ).astype(np.float32, copy=False)
    if len(unique) == len(texts):
        return vectors
    row = {text: i for i, text in enumerate(unique)}
    return vectors[[row[text] for text in texts]]


def history_weights(n_history: int, settings: RetrievalSettings) -> tuple[float, np.ndarray]:
    """(weight of the message, weights of the earlier turns newest first); they sum to 1."""
    n = min(n_history, settings.history_turns)
    if n == 0 or settings.history_weight == 0:
        return 1.0, np.zeros(n, dtype=np.float32)
    decay = np.array([settings.history_decay**i for i in range(n)], dtype=np.float32)
    return 1.0 - settings.history_weight, settings.history_weight * decay / decay.sum()


def fuse(
    message_vector: np.ndarray, history_vectors: np.ndarray, settings: RetrievalSettings
) -> np.ndarray:
    """One unit vector from the message's and the earlier turns' vectors (oldest first)."""
    own, weights = history_weights(len(history_vectors), settings)
    vector = own * message_vector
    if len(weights):
        newest_first = history_vectors[::-1][: len(weights)]
        vector = vector + weights @ newest_first
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


def recent_turns(texts: Sequence[str], settings: RetrievalSettings) -> list[str]:
    """The earlier turns that count, oldest first (the newest `history_turns`, non-empty)."""
    if settings.history_turns == 0 or settings.history_weight == 0:
        return []
    kept = [t for t in texts if t and t.strip()]
    return kept[-settings.history_turns :]


def embed_contexts(
    model: SentenceTransformer,
    contexts: Sequence[tuple[str, Sequence[str]]],
    settings: RetrievalSettings,
    *,
    progress: bool = False,
) -> np.ndarray:
    """Fused vectors for (message, earlier turns oldest first) pairs; every distinct
    text is embedded once, in batches."""
    trimmed = [(message, recent_turns(history, settings)) for message, history in contexts]
    texts: list[str] = []
    for message, history in trimmed:
        texts.append(message)
        texts.extend(history)
    vectors = embed_texts(model, texts, batch_size=settings.batch_size, progress=progress)
    out = np.zeros((len(trimmed), vectors.shape[1]), dtype=np.float32)
    cursor = 0
    for row, (_message, history) in enumerate(trimmed):
        n = 1 + len(history)
        out[row] = fuse(vectors[cursor], vectors[cursor + 1 : cursor + n], settings)
        cursor += n
    return out


def embed_query(
    model: SentenceTransformer, message: str, history: Sequence[str], settings: RetrievalSettings
) -> np.ndarray:
    """The fused vector of one live query."""
    vector: np.ndarray = embed_contexts(model, [(message, history)], settings)[0]
    return vector


def dictionary_of(model: SentenceTransformer) -> frozenset[str]:
    """The whole words of the embedder's tokenizer vocabulary, lower-cased (WordPiece
    pieces and non-words left out): a dictionary of real words that comes with the
    model, for telling a word the history does not use from a misspelling. Empty for a
    model whose tokenizer has no such vocabulary."""
    vocab = getattr(getattr(model, "tokenizer", None), "vocab", None)
    if not isinstance(vocab, dict):
        return frozenset()
    return frozenset(w.lower() for w in vocab if isinstance(w, str) and w.isalpha())
