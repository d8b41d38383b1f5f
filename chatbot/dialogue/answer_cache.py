"""The answer cache's catalogue: the questions agents approved answers for, looked up
in the store directly, so an approved or edited answer is served to the next customer
who asks the same thing at once, before any index rebuild.

Each lookup asks the store for the ids of the newest `max_pairs` pairs of the cached
origins (ids only, one small query), loads just the pairs it has not seen (usually
none), forgets the ones that are gone, and compares the message with every cached
question by `chatbot.text.measures.question_similarity`. The text features of each
question are computed once when it is loaded, and a length bound skips the questions
that cannot reach the threshold: 3,000 cached questions take about 4 MB per worker and
under 10 ms of Python per lookup (measured on 2 busy cores). Its one query is an
id-only scan of `training_pairs` by origin (about 60 ms on SQLite and 35 ms on
PostgreSQL at 200,000 pairs without an index on (origin, id); 6-9 ms with one).
Several app workers each keep their own catalogue; since each asks the store every
time, an approval made through one is served by all.

Where its job ends: it finds the best approved pair; deciding to send it (and not for
follow-up questions) is the dialogue manager's.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from chatbot.dialogue import repository as repo
from chatbot.text.measures import content_words, normalise, question_similarity

DEFAULT_MAX_PAIRS = 3000
_LOAD_CHUNK = 500
_VOCABULARY_CAP = (
    300_000  # distinct tokens before the catalogue starts afresh (old questions' tokens pile up)
)


# A bag's keys: (token, occurrence) strings, or their ids in a `Vocabulary`.
Key = str | int
Bag = frozenset[Key] | tuple[Key, ...]


@dataclass(frozen=True)
class _Features:
    # Bags as collections of distinct (token, occurrence) keys: the size of the
    # intersection of two is the size of the multiset intersection, and intersecting in
    # C is fast. A query's are frozensets; a cached question's are tuples (a fifth of
    # the memory), intersected with the query's set.
    words: Bag
    grams: Bag

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def n_grams(self) -> int:
        return len(self.grams)


class Vocabulary:
    """(token, occurrence) -> int, shared by a catalogue's entries, so that their sets
    hold shared small ints instead of strings (a few kB less per cached question)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)


def _bag(
    tokens: Iterable[str], kind: str, vocabulary: Vocabulary | None, grow: bool, unknown: list[int]
) -> frozenset[Key]:
    keys: list[Key] = []
    for token, count in Counter(tokens).items():
        for i in range(count):
            key = f"{kind}{token}\x00{i}"
            if vocabulary is None:
                keys.append(key)
            elif grow:
                keys.append(vocabulary.ids.setdefault(key, len(vocabulary.ids)))
            else:
                known = vocabulary.ids.get(key)
                if (
                    known is None
                ):  # never in any cached question: counts for the size, matches nothing
                    unknown[0] -= 1
                    known = unknown[0]
                keys.append(known)
    return frozenset(keys)


def features(text: str, vocabulary: Vocabulary | None = None, *, grow: bool = True) -> _Features:
    """What `question_similarity` compares, computed once: content words and character
    trigrams. With a vocabulary, keys are its ints (`grow=False` for a query: its new
    tokens are not added)."""
    padded = f" {normalise(text)} "
    unknown = [0]
    grams = (padded[i : i + 3] for i in range(max(len(padded) - 2, 0)))
    return _Features(
        _bag(content_words(text), "w", vocabulary, grow, unknown),
        _bag(grams, "g", vocabulary, grow, unknown),
    )


def _dice(a: Bag, b: Bag) -> float:
    total = len(a) + len(b)
    # `a` is a query's (a frozenset) whenever a cached question's tuple is `b`.
    shared = a.intersection(b) if isinstance(a, frozenset) else frozenset(a).intersection(b)
    return 2 * len(shared) / total if total else 0.0


def compact(f: _Features) -> _Features:
    return _Features(tuple(f.words), tuple(f.grams))


def similarity(a: _Features, b: _Features) -> float:
    """`question_similarity` on precomputed features (`a` a query's, with sets): the
    better of content-word F1 (which equals the Dice coefficient of the word bags; 0
    when either is empty) and character-trigram Dice."""
    word_f1 = _dice(a.words, b.words) if a.words and b.words else 0.0
    return max(word_f1, _dice(a.grams, b.grams))


def _bound(na: int, nb: int) -> float:
    """The highest Dice two bags of these sizes can reach."""
    return 2 * min(na, nb) / (na + nb) if na + nb else 0.0


@dataclass(frozen=True)
class CacheMatch:
    pair: repo.ApprovedPair
    similarity: float


class AnswerCatalogue:
    """The newest approved pairs of `origins` with their questions' features, kept in
    step with the store on every lookup. Safe to share between threads."""

    def __init__(self, origins: Sequence[str], max_pairs: int = DEFAULT_MAX_PAIRS):
        self.origins = tuple(origins)
        self.max_pairs = max_pairs
        self._pairs: dict[int, tuple[repo.ApprovedPair, _Features]] = {}
        self._vocabulary = Vocabulary()
        self._lock = threading.Lock()

    def refresh(self, session: Session) -> None:
        ids = repo.recent_pair_ids(session=session, origins=self.origins, limit=self.max_pairs)
        with self._lock:
            if len(self._vocabulary) > _VOCABULARY_CAP:
                self._pairs, self._vocabulary = {}, Vocabulary()
            wanted = set(ids)
            for gone in set(self._pairs) - wanted:
                del self._pairs[gone]
            missing = [i for i in ids if i not in self._pairs]
        loaded = []
        for start in range(0, len(missing), _LOAD_CHUNK):
            loaded += repo.approved_pairs(
                session=session, pair_ids=missing[start : start + _LOAD_CHUNK]
            )
        with self._lock:
            for pair in loaded:
                if pair.question and pair.answer.strip():
                    self._pairs[pair.id] = (
                        pair,
                        compact(features(pair.question, self._vocabulary)),
                    )

    def lookup(self, session: Session, message: str, threshold: float) -> CacheMatch | None:
        """The approved pair whose question is most like `message`, at or above
        `threshold`; on a tie the newest wins (an agent's later correction)."""
        self.refresh(session)
        best: tuple[float, int] | None = None
        with self._lock:
            query = features(message, self._vocabulary, grow=False)
            entries = list(self._pairs.items())
        for pair_id, (_, f) in entries:
            if (
                _bound(query.n_words, f.n_words) < threshold
                and _bound(query.n_grams, f.n_grams) < threshold
            ):
                continue
            score = similarity(query, f)
            if score >= threshold and (best is None or (score, pair_id) > best):
                best = (score, pair_id)
        if best is None:
            return None
        pair = self._pairs_get(best[1])
        if pair is None:
            return None
        return CacheMatch(pair, question_similarity(message, pair.question))

    def _pairs_get(self, pair_id: int) -> repo.ApprovedPair | None:
        with self._lock:
            entry = self._pairs.get(pair_id)
        return entry[0] if entry else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._pairs)
