"""Feature fusion for intent routing: what a request looks like on the surface (TF-IDF
of its word 1-2-grams and of its character 2-5-grams inside word boundaries, which
also survive typos) beside what it means (the unit MiniLM embedding, scaled by
`embedding_weight`), in one sparse matrix a linear classifier can use.

The vectorisers are fitted on the training requests only. Embedding the texts is the
caller's job (`IntentRouter` caches the vectors across folds); classifying is too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


class LexicalDenseFeatures:
    def __init__(self, embedding_weight: float = 2.0, min_df: int = 2):
        self.embedding_weight = embedding_weight
        self.min_df = min_df

    def fit(self, texts: Sequence[str]) -> LexicalDenseFeatures:
        from sklearn.feature_extraction.text import TfidfVectorizer

        # min_df=2 drops n-grams seen once, but a tiny training set keeps them all.
        min_df = self.min_df if len(texts) >= 50 * self.min_df else 1
        self._vectorisers = [
            TfidfVectorizer(ngram_range=(1, 2), min_df=min_df, sublinear_tf=True),
            TfidfVectorizer(
                analyzer="char_wb", ngram_range=(2, 5), min_df=min_df, sublinear_tf=True
            ),
        ]
        for vectoriser in self._vectorisers:
            vectoriser.fit(texts)
        return self

    def transform(self, texts: Sequence[str], vectors: np.ndarray) -> sp.csr_matrix:
        """One row per text; `vectors` are the texts' unit embeddings, in the same order."""
        blocks = [vectoriser.transform(texts) for vectoriser in self._vectorisers]
        blocks.append(sp.csr_matrix(np.asarray(vectors, dtype=np.float32) * self.embedding_weight))
        return sp.hstack(blocks, format="csr")
