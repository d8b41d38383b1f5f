"""The out-of-scope verdict at search time: a version's `ScopeCalibration` (turn a raw
match score into a probability that something indexed fits, and the hand-off threshold
on it), how much nearer a question is to known off-topic questions than to the
company's own (`offtopic_margin`), and the words of a question that the company's
history never mentions.

`unknown_terms` finds what a question is about that the company's history never
mentions ("Do you ship to Canada?" of a shop whose conversations never name Canada;
"How do I top up by bank transfer?" of one that never speaks of top-ups): content words
that no indexed text uses, allowing for other endings and typos, leaving out greetings,
signatures and people introducing themselves. The score alone cannot tell a question
from a neighbouring domain (a bank's "my card payment was declined") from a shop's own;
the words can. The gate uses them only where its calibration says so.

Choosing a calibration on validation data is `chatbot.indexing.gate`'s job.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ScopeCalibration:
    slope: float
    intercept: float
    threshold: float  # on the calibrated probability
    raw_threshold: float  # the same threshold on the raw score
    n_in_scope: int
    n_out_of_scope: int
    validation_balanced_accuracy: float
    calibrated: bool = True
    criterion: str = "balanced_accuracy"
    # The gate (`chatbot.indexing.gate.calibrate_gate`); defaults keep older meta.json files readable.
    feature: str = (
        "fused"  # which raw score: "fused" (top fused score) or "dense" (top dense cosine)
    )
    raw_threshold_low: float | None = None  # 95% bootstrap interval of raw_threshold
    raw_threshold_high: float | None = None
    prior_threshold: float | None = None
    prior_weight: float | None = None  # the prior's share in raw_threshold
    data_threshold: float | None = None  # the validation data's own cut (None: too few questions)
    n_background: int = 0  # shipped off-topic questions among the negatives
    in_scope_accepted: float | None = None  # at raw_threshold, on the calibration questions
    out_of_scope_rejected: float | None = None
    unknown_terms: bool = (
        False  # a question about something the history never mentions is out of scope
    )
    # The domain check (`chatbot.indexing.domain`): a logistic regression on the query
    # vector; hand off below domain_threshold. None: not fitted (older indexes, small histories).
    domain_weights: list[float] | None = None
    domain_bias: float = 0.0
    domain_threshold: float | None = None

    def __post_init__(self) -> None:
        # A meta.json edited by hand or damaged: refused when read, not at the first search.
        if self.domain_weights is None:
            return
        weights = self.domain_weights
        if (
            not isinstance(weights, list)
            or not weights
            or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        ):
            raise ValueError("domain_weights must be a non-empty list of numbers")
        if not isinstance(self.domain_threshold, int | float) or not isinstance(
            self.domain_bias, int | float
        ):
            raise ValueError("domain_threshold and domain_bias must be numbers")

    @cached_property
    def _domain_weights(self) -> np.ndarray | None:
        # Read once per loaded calibration, not on every search.
        return None if self.domain_weights is None else np.asarray(self.domain_weights)

    def domain_probability(self, vector: np.ndarray) -> float | None:
        """How likely the query vector is one of the company's own questions (None: no
        domain check in this calibration)."""
        weights = self._domain_weights
        if weights is None:
            return None
        z = float(np.asarray(vector, dtype=np.float64) @ weights)
        return float(1.0 / (1.0 + np.exp(-np.clip(z + self.domain_bias, -50, 50))))

    def outside_domain(self, vector: np.ndarray) -> bool:
        """The domain check hands this query off."""
        p = self.domain_probability(vector)
        return p is not None and self.domain_threshold is not None and p < self.domain_threshold

    def probability(self, raw: float | np.ndarray) -> float | np.ndarray:
        if not self.calibrated:
            p = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
            return float(p) if np.ndim(p) == 0 else p
        z = self.slope * np.asarray(raw, dtype=np.float64) + self.intercept
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return float(p) if np.ndim(p) == 0 else p

    def out_of_scope(self, raw: float | np.ndarray) -> bool | np.ndarray:
        result = np.asarray(raw) < self.raw_threshold
        return bool(result) if result.ndim == 0 else result

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScopeCalibration:
        return cls(**data)

    @classmethod
    def uncalibrated(cls, threshold: float) -> ScopeCalibration:
        """The raw score used as it is (probability = raw clipped to [0, 1])."""
        return cls(1.0, 0.0, threshold, threshold, 0, 0, float("nan"), calibrated=False)


# The index version's vectors of the off-topic questions its gate was calibrated with
# (`chatbot.indexing.gate.background_questions`), one row each; absent in older versions.
OFFTOPIC_VECTORS = "offtopic_vectors.npy"


def offtopic_margin(
    offtopic: np.ndarray | None, vector: np.ndarray, top_own: float
) -> float | None:
    """How much nearer the query vector is to the nearest off-topic question than to the
    nearest of the company's own (`top_own`, its best dense cosine): above 0, the query
    reads more like another domain's question ("I want to open a savings account", put
    to a shop, next to "How do I open a savings account?") than like any the company
    was asked. None without off-topic vectors."""
    if offtopic is None or len(offtopic) == 0:
        return None
    return float(np.max(offtopic @ vector)) - top_own


_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]*")
WORD_RE = _WORD_RE
_SENTENCE_RE = re.compile(r"(?<=[.!?,;:])\s+")
_BEFORE_NAME = {
    "dear",
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "regards",
    "cheers",
    "am",
    "i'm",
    "im",
    "is",
    "name",
    "this",
    "best",
    "sincerely",
    "from",
    "mr",
    "mrs",
    "ms",
    "dr",
    "kind",
    "warm",
    "yours",
}


def words_of(text: str) -> set[str]:
    """The lower-cased words of a text (the vocabulary `unknown_terms` checks against)."""
    return {w.lower() for w in _WORD_RE.findall(text)}


# Words that say nothing about what a question is about: English function words and chat
# courtesies (not a general stop-word list: those hold content words such as "bill" or "top").
_FUNCTION_WORDS = frozenset(
    """
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each either else even ever every few for from further get
gets getting got had has have having he her here hers herself him himself his how however i if in into is it its
itself just let may me might more most much must my myself neither no nor not now of off on once only or other
ought our ours ourselves out over own same shall she should so some such than that the their theirs them
themselves then there these they this those through to too under until up upon us very was we were what when
where whether which while who whom whose why will with within without would yet you your yours yourself
yourselves one two still already really actually maybe something anything nothing someone anyone thing things
hi hello hey thanks thank please pls plz ok okay yes yeah yep no nope sorry dear regards cheers guys team im ive
id dont doesnt didnt cant wont isnt wasnt arent havent hasnt couldnt wouldnt shouldnt youre theyre whats lol
""".split()
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


class Vocabulary:
    """The words of a company's history, and whether a word is one of them: as written,
    with another ending ("transferred" / "transfer"), or misspelt by a letter or two
    ("trackng", "recieved": Damerau-Levenshtein distance 1 up to six letters, 2 above)."""

    def __init__(
        self,
        words: set[str],
        counts: dict[str, int] | None = None,
        dictionary: frozenset[str] = frozenset(),
    ):
        self.words = words
        self.counts = counts or {}  # how often each word occurs (breaks ties between corrections)
        # Real words the history happens not to use ("sell", "savings"): never "corrected"
        # to a history word a letter away ("tell"); the embedder's whole-word tokens.
        self.dictionary = dictionary
        self.stems = {_stem(w) for w in words}
        self._sorted = sorted(words)
        self.ignored = _FUNCTION_WORDS

    def __contains__(self, word: str) -> bool:
        return self.knows(word)

    def knows(self, word: str) -> bool:
        word = word.lower().strip("'-")
        return self.as_written(word) or self.nearest(word) is not None

    def as_written(self, word: str) -> bool:
        """The (lower-case) word, or a word with its stem, is one of the history's."""
        return word in self.words or _stem(word) in self.stems

    def nearest(self, word: str) -> str | None:
        """The history's word that a (lower-case) word of four letters or more may be a
        misspelling of: within Damerau-Levenshtein distance 1 up to six letters, 2 above;
        of the closest, the most frequent (then the nearest in length); None if none."""
        from rapidfuzz import process
        from rapidfuzz.distance import DamerauLevenshtein

        if len(word) < 4:
            return None
        cutoff = 1 if len(word) <= 6 else 2
        found = process.extract(
            word, self._sorted, scorer=DamerauLevenshtein.distance, score_cutoff=cutoff, limit=8
        )
        if not found:
            return None
        best = min(d for _, d, _ in found)
        closest = [w for w, d, _ in found if d == best]
        return max(closest, key=lambda w: (self.counts.get(w, 0), -abs(len(w) - len(word))))


# Chat shorthand customers type, and the words they stand for.
SHORTHAND = {
    "hw": "how",
    "u": "you",
    "ur": "your",
    "r": "are",
    "n": "and",
    "wen": "when",
    "wat": "what",
    "wht": "what",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "cant": "can't",
    "dont": "don't",
    "wont": "won't",
    "im": "I'm",
    "ive": "I've",
    "whats": "what's",
    "acct": "account",
    "pw": "password",
    "pwd": "password",
    "addr": "address",
    "info": "information",
}


def corrected(text: str, vocabulary: Vocabulary) -> str:
    """The text with chat shorthand spelt out and each misspelt word (unknown to the
    history, four letters or more, within `Vocabulary`'s edit distance of one of its
    words: `Vocabulary.nearest`) replaced by that word, so that "hw do i trak my parcle" is
    searched as "how do i track my parcel"; words the history knows, real words it does
    not (`Vocabulary.dictionary`: "sell" is no misspelt "tell"), function words, numbers
    and identifiers stay as written."""

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        lower = word.lower()
        start, end = match.span()
        if (start and text[start - 1].isdigit()) or (end < len(text) and text[end].isdigit()):
            return word  # part of a code ("WELCOM10", "TRACK-A9"), not a word
        if lower in SHORTHAND:
            return SHORTHAND[lower]
        if lower in vocabulary.ignored or vocabulary.as_written(lower):
            return word
        if lower.split("'")[0] in vocabulary.dictionary:
            return word  # a real word ("sell", "where's"), not a misspelling of "tell"
        return vocabulary.nearest(lower) or word

    return _WORD_RE.sub(fix, text)


def unknown_terms(text: str, vocabulary: Vocabulary) -> list[str]:
    """The words of `text` that say what it is about and that the company's history never
    uses (see `Vocabulary` for what counts as using): content words of three letters or
    more, not function words, in sentences of three words or more (a signature or a
    greeting line is skipped); a capitalised word in a name's place (after "Dear",
    "Thanks", "I'm", in a run of capitalised words, before "here") is a person
    introducing themselves and is skipped too. Names are returned as written (inside a
    sentence, capitalised), other words lower-cased when they open a sentence."""
    found = []
    for line in text.splitlines():
        for sentence in _SENTENCE_RE.split(line):
            tokens = _WORD_RE.findall(sentence)
            if len(tokens) < 3:
                continue  # a signature or a greeting line
            for i, word in enumerate(tokens):
                lower = word.lower().strip("'-")
                if len(lower) < 3 or lower in vocabulary.ignored or "'" in lower:
                    continue
                if i > 0 and word[0].isupper() and word != "I":
                    before = tokens[i - 1]
                    if before.lower() in _BEFORE_NAME or before[0].isupper():
                        continue
                    if i + 1 < len(tokens) and (
                        tokens[i + 1][0].isupper() or tokens[i + 1].lower() == "here"
                    ):
                        continue  # "Anna Berg", "Felix here": a person introducing themselves
                if not vocabulary.knows(lower):
                    found.append(
                        word if i > 0 else lower
                    )  # a sentence's first word is no name for its capital
    return found


def unexplained_terms(text: str, vocabulary: Vocabulary, nearest_questions: list[str]) -> list[str]:
    """The `unknown_terms` of `text` that make it a question about something else: every
    unknown name ("Canada"), and unknown words unless they are only the object of a
    question the company does answer, that is, unless at least two thirds of the other
    content words of `text` are words of its nearest past questions and the unknown
    words are at most one more than those (customers add details the history never
    had: "my parcel arrived damaged, the box was crushed") ("How do I return a jacket that doesn't fit?" of a shop that answers
    returns but never sold a jacket; not "How do I top up my card by bank transfer?")."""
    unknown = unknown_terms(text, vocabulary)
    if not unknown:
        return []
    names = [
        w for w in unknown if w[0].isupper()
    ]  # capitalised inside a sentence (see unknown_terms)
    words = [w for w in unknown if w not in names]
    lowered = {w.lower() for w in unknown}
    known = [
        w
        for w in words_of(text)
        if len(w) >= 3 and "'" not in w and w not in vocabulary.ignored and w not in lowered
    ]
    asked_before = {_stem(w) for q in nearest_questions for w in words_of(q)}
    found = sum(_stem(w) in asked_before for w in known)
    if words and known and 3 * found >= 2 * len(known) and len(words) <= len(known) + 1:
        words = []
    return names + words
