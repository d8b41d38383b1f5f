"""Figures for one reply against the agent's real reply, and summaries over many:
BLEU (`sacrebleu`: sentence BLEU per turn, corpus BLEU per variant, and the per-turn
statistics corpus BLEU is summed from),
cosine similarity of sentence embeddings, latency percentiles, and whether a reply or
its citations point to the help document the real agent sent. Pure functions on texts
and numbers: producing the replies, loading the embedder and the intervals
(`intervals`) are other modules' jobs. ROUGE-L, which serving uses too, is
`chatbot.text.rouge`'s."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_ARCHIVE_PREFIX = re.compile(r"^https?://web\.archive\.org/web/\d+/", re.IGNORECASE)
_SCHEME = re.compile(r"^https?:\s?//(www\.)?", re.IGNORECASE)


def sentence_bleu(prediction: str, reference: str) -> float:
    """sacrebleu sentence BLEU (0-100, exponential smoothing)."""
    import sacrebleu

    if not prediction.strip() or not reference.strip():
        return 0.0
    return float(sacrebleu.sentence_bleu(prediction, [reference]).score)


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (0-100) over all turns of a variant."""
    import sacrebleu

    if not predictions:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def bleu_statistics(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-turn sacrebleu statistics (n-gram matches and totals, hypothesis and reference
    lengths), one row per turn: corpus BLEU of any multiset of turns is `bleu_from_statistics`
    of the sum of their rows, which is how its bootstrap interval is computed."""
    from sacrebleu.metrics.bleu import BLEU

    if not predictions:
        return np.zeros((0, 2 + 2 * BLEU().max_ngram_order), dtype=np.int64)
    stats = BLEU()._extract_corpus_statistics(list(predictions), [list(references)])
    return np.asarray(stats, dtype=np.int64)


def bleu_from_statistics(summed: Sequence[float] | np.ndarray) -> float:
    """Corpus BLEU (0-100) from summed per-turn statistics (see `bleu_statistics`)."""
    from sacrebleu.metrics.bleu import BLEU

    return float(BLEU()._compute_score_from_stats([int(round(x)) for x in summed]).score)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two matrices of the same shape."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)


def latency_summary(seconds: Iterable[float]) -> dict[str, float | None]:
    """p50, p95, mean and max of per-turn latencies, in seconds."""
    values = np.asarray(list(seconds), dtype=np.float64)
    if values.size == 0:
        return {"p50": None, "p95": None, "mean": None, "max": None}
    return {
        "p50": round(float(np.percentile(values, 50)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
        "mean": round(float(values.mean()), 4),
        "max": round(float(values.max()), 4),
    }


def mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(kept) / len(kept) if kept else None


def url_key(url: str) -> str:
    """A URL as compared here: no archive.org wrapper, no scheme, no `www.`, no
    trailing slash or punctuation, lower case."""
    url = _ARCHIVE_PREFIX.sub("", url.strip())
    url = _SCHEME.sub("", url)
    return url.rstrip("/.,;:!?)").lower()


def text_points_to(text: str, doc_url: str | None) -> bool:
    """True when `text` contains the document's URL (with or without the archive.org
    wrapper the Twitter set uses)."""
    if not doc_url or not text:
        return False
    key = url_key(doc_url)
    if not key:
        return False
    found = re.findall(r"(?:https?:\s?//|www\.)[^\s<>\"']+", text, flags=re.IGNORECASE)
    return any(url_key(u.replace(": //", "://")) == key for u in found)


def doc_match(
    doc_id: str | None, doc_url: str | None, text: str, cited_docs: Sequence[dict[str, Any]]
) -> dict[str, bool]:
    """Whether the reply text (`in_text`) or one of its citations (`cited`: the cited
    past conversation was answered with the same document, by id or URL) points to the
    document the real agent sent; `any` = either."""
    in_text = text_points_to(text, doc_url)
    cited = False
    for doc in cited_docs:
        if (
            doc_id is not None
            and doc.get("doc_id") is not None
            and str(doc["doc_id"]) == str(doc_id)
        ):
            cited = True
        elif doc_url and doc.get("doc_url") and url_key(str(doc["doc_url"])) == url_key(doc_url):
            cited = True
        elif doc_url and text_points_to(str(doc.get("reply", "")), doc_url):
            cited = True
    return {"in_text": in_text, "cited": cited, "any": in_text or cited}
