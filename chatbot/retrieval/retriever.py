"""The `Retriever` the dialogue manager and training use: history-aware dense + BM25
search over one index version (BM25's weight as `chatbot index` chose it on the
company's validation questions, unless set explicitly), with a citation on every hit
and an out-of-scope verdict from the version's calibration (the hand-off gate that
`chatbot.indexing.gate.calibrate_gate` chose: the top dense cosine, or for older
indexes the top fused score, against its threshold).

`open_retriever(paths, rs, database)` loads the current version and, given the store,
refuses to serve an index whose pairs were deleted or changed since it was built
(its citations would point at the wrong text). Queries are embedded with the model the
index was built with: the configured embedder, or the adapted one `chatbot index
--adapt` kept (meta.json names it); a model handed in by the caller is checked against
the stored vectors. Building indexes is `chatbot.indexing`'s job.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chatbot.config import DataPaths
from chatbot.models.embedder import embedder_path, load_embedder
from chatbot.pairs import PairRecord
from chatbot.retrieval import faiss_index, fusion
from chatbot.retrieval.answer_classes import ANSWER_VECTORS, AnswerClasses
from chatbot.retrieval.embedding import dictionary_of, embed_contexts, embed_query, recent_turns
from chatbot.retrieval.index_files import (
    IndexMeta,
    adapted_embedder_dir,
    check_version,
    load_meta,
    load_records,
    model_fingerprint,
    store_root,
)
from chatbot.retrieval.lexical import LexicalIndex
from chatbot.retrieval.scope import (
    OFFTOPIC_VECTORS,
    WORD_RE,
    ScopeCalibration,
    Vocabulary,
    corrected,
    offtopic_margin,
    unexplained_terms,
    unknown_terms,
)
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.retrieval.stored_pairs import compare_pair_sets, load_pair_hashes
from chatbot.retrieval.types import Citation, ConsensusChoice, Hit, SearchResult
from chatbot.retrieval.versions import IndexDamagedError, IndexStaleError, VersionStore

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chatbot.store.database import Database

log = logging.getLogger(__name__)
# Past questions whose words may explain a word the history never uses (`scope.unexplained_terms`).
NEAREST_QUESTIONS = 3


class PairRetriever:
    """Search over one set of indexed pairs (implements `chatbot.retrieval.types.Retriever`)."""

    def __init__(
        self,
        rs: RetrievalSettings,
        records: Sequence[PairRecord],
        dense: faiss_index.DenseIndex,
        lexical: LexicalIndex,
        model: SentenceTransformer,
        calibration: ScopeCalibration | None,
        version: str | None = None,
        fusion: dict[str, Any] | None = None,
        answer_classes: AnswerClasses | None = None,
    ) -> None:
        if dense.size != len(records) or lexical.size != len(records):
            raise IndexStaleError(
                f"index version {version}: {dense.size} vectors, {lexical.size} lexical rows and {len(records)} pairs "
                "disagree; run: chatbot index --rebuild"
            )
        self.rs = rs
        self.records = list(records)
        self.dense = dense
        self.lexical = lexical
        self.model = model
        self.calibration = calibration or ScopeCalibration.uncalibrated(self.rs.oos_threshold)
        self.version = version
        # BM25's weight: set explicitly (config file, environment) it wins; otherwise the one
        # `chatbot index` chose on this company's validation questions (meta.json "fusion").
        chosen = (fusion or {}).get("lexical_weight")
        explicit = "lexical_weight" in self.rs.model_fields_set
        self.lexical_weight = (
            float(chosen) if chosen is not None and not explicit else self.rs.lexical_weight
        )
        # How the dialogue manager chooses among its candidates, chosen on the same
        # validation questions (meta.json "fusion"."consensus"); None: by the judge alone.
        self.consensus = ConsensusChoice.from_meta((fusion or {}).get("consensus"))
        # The answer classes and fit model `chatbot index` fitted (None: older index, or too small).
        self.answer_classes = answer_classes
        # The indexed replies' vectors (`answer_classes.ANSWER_VECTORS`; None: older index):
        # each hit then also carries the query's cosine to its reply ("answer").
        self.answer_vectors: np.ndarray | None = None
        # The off-topic questions' vectors (`scope.OFFTOPIC_VECTORS`; None: older index).
        self.offtopic_vectors: np.ndarray | None = None
        self._row_of = {r.id: row for row, r in enumerate(self.records)}
        self._vocabulary: Vocabulary | None = None

    @classmethod
    def from_parts(
        cls,
        rs: RetrievalSettings,
        records: Sequence[PairRecord],
        vectors: np.ndarray,
        model: SentenceTransformer,
        calibration: ScopeCalibration | None = None,
    ) -> PairRetriever:
        """An in-memory retriever (used to calibrate a version before it is written)."""
        return cls(
            rs,
            records,
            faiss_index.build(vectors, rs),
            LexicalIndex.build([r.message for r in records]),
            model,
            calibration,
        )

    def __len__(self) -> int:
        return len(self.records)

    def query_vector(self, query: str, history: Sequence[str] = ()) -> np.ndarray:
        return embed_query(self.model, query, history, self.rs)

    def lexical_scores(self, query: str, history: Sequence[str] = ()) -> np.ndarray:
        scores = self.lexical.scores(query)
        turns = recent_turns(history, self.rs)
        if turns:
            scores = scores + self.rs.history_weight * self.lexical.scores(" ".join(turns))
        return scores

    def search(
        self,
        query: str,
        *,
        history: Sequence[str] = (),
        k: int = 5,
        exclude_pair_ids: Sequence[int] = (),
    ) -> SearchResult:
        if self.rs.correct_spelling:
            query = corrected(query, self.vocabulary)
        return self.search_vector(
            self.query_vector(query, history),
            query,
            history=history,
            k=k,
            exclude_pair_ids=exclude_pair_ids,
        )

    def search_vector(
        self,
        vector: np.ndarray,
        query: str,
        *,
        history: Sequence[str] = (),
        k: int = 5,
        exclude_pair_ids: Sequence[int] = (),
        lexical_weight: float | None = None,
    ) -> SearchResult:
        """Search with a query vector already computed (benchmarks, batch evaluation)."""
        weight = self.lexical_weight if lexical_weight is None else lexical_weight
        if not self.records or k <= 0:
            return SearchResult([], True, 0.0)
        excluded = {self._row_of[i] for i in exclude_pair_ids if i in self._row_of}
        _, dense_rows = self.dense.search(vector, self.rs.candidates + len(excluded))
        lexical = (
            self.lexical_scores(query, history)
            if weight > 0
            else np.zeros(len(self.records), np.float32)
        )
        rows = fusion.candidate_rows(dense_rows, lexical, self.rs.candidates if weight > 0 else 0)
        if excluded:
            rows = rows[~np.isin(rows, list(excluded))]
        if rows.size == 0:
            return SearchResult([], True, 0.0)
        cosine = self.dense.cosine(vector, rows)
        lex_norm = fusion.normalise_lexical(lexical)[rows]
        fused = fusion.weighted(cosine, lex_norm, weight)
        ranked = np.argsort(-fused, kind="stable")
        order = ranked[:k]
        hits = [
            self._hit(
                int(rows[i]),
                float(fused[i]),
                float(cosine[i]),
                float(lexical[rows[i]]),
                float(lex_norm[i]),
            )
            for i in order
        ]
        if self.answer_vectors is not None:
            for hit, i in zip(hits, order):
                hit.scores["answer"] = float(self.answer_vectors[int(rows[i])] @ vector)
        top_dense = float(cosine.max())
        top = self.scope_score(float(fused[order[0]]), top_dense)
        nearest = [self.records[int(rows[i])].message for i in ranked[:NEAREST_QUESTIONS]]
        outside_domain = (
            top_dense < self.rs.gate_domain_max_score
            and self.calibration.outside_domain(vector)
            and not self.known_question_about_new_object(query, history, nearest)
        )
        out = (
            bool(self.calibration.out_of_scope(top))
            or outside_domain
            or (self.calibration.unknown_terms and self.terms_unknown(query, nearest))
        )
        return SearchResult(
            hits,
            out,
            float(self.calibration.probability(top)),
            top,
            bool(outside_domain),
            offtopic_margin(self.offtopic_vectors, vector, top_dense),
        )

    @property
    def vocabulary(self) -> Vocabulary:
        """Every word of the indexed texts, lower-cased (built on first use)."""
        if self._vocabulary is None:
            counts: Counter[str] = Counter()
            for r in self.records:
                counts.update(
                    w.lower() for w in WORD_RE.findall("\n".join([*r.history, r.message, r.target]))
                )
            self._vocabulary = Vocabulary(set(counts), dict(counts), dictionary_of(self.model))
        return self._vocabulary

    def terms_unknown(self, query: str, nearest_questions: Sequence[str] | None = None) -> bool:
        """The message is about something no indexed conversation mentions (see
        `scope.unexplained_terms`); `nearest_questions` default to a search's."""
        if nearest_questions is None:
            nearest_questions = [
                self.records[self._row_of[h.pair_id]].message
                for h in self.search(query, k=NEAREST_QUESTIONS).hits
            ]
        return bool(unexplained_terms(query, self.vocabulary, list(nearest_questions)))

    def known_question_about_new_object(
        self, query: str, history: Sequence[str], nearest_questions: Sequence[str]
    ) -> bool:
        """The message asks a question the company answers about something its history
        never names ("How do I return a jacket that doesn't fit?" of a shop that never
        sold a jacket). Its unknown words pull its vector away from the history's, so the
        domain check judges it again without them: `scope.unexplained_terms` must explain
        every unknown word as the object of the nearest past questions, and the rest of
        the message ("How do I return a that doesn't fit?") must be the company's own.
        A neighbouring domain's question with one new word ("Where do I reset my
        passcode?" put to a shop) stays out: without the word it is still a bank's."""
        unknown = unknown_terms(query, self.vocabulary)
        if not unknown or unexplained_terms(query, self.vocabulary, list(nearest_questions)):
            return False
        rest = query
        for word in unknown:
            rest = re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", " ", rest, flags=re.IGNORECASE)
        rest = " ".join(rest.split())
        return bool(rest) and not self.calibration.outside_domain(self.query_vector(rest, history))

    def scope_score(self, top_fused: float, top_dense: float) -> float:
        """The raw score the out-of-scope gate reads: the feature the calibration was
        chosen on (older and uncalibrated indexes: the top fused score)."""
        return top_dense if self.calibration.feature == "dense" else top_fused

    def _hit(
        self, row: int, score: float, dense: float, lexical: float, lexical_normalised: float
    ) -> Hit:
        r = self.records[row]
        snippet = (
            r.target
            if len(r.target) <= self.rs.snippet_chars
            else r.target[: self.rs.snippet_chars - 1] + "…"
        )
        citation = Citation(r.id, r.conversation_id, r.turn_index, r.source, score, snippet)
        return Hit(
            r.id,
            score,
            r.context_text,
            r.target,
            citation,
            {"dense": dense, "lexical": lexical, "lexical_normalised": lexical_normalised},
        )


def load_version(
    paths: DataPaths,
    rs: RetrievalSettings,
    version_dir: Path,
    model: SentenceTransformer | None = None,
) -> PairRetriever:
    """A retriever over one version directory (no check against the store).
    IndexDamagedError names a missing or damaged file and the repair."""
    # Every file is read and checked before a model is loaded for it.
    meta, records, dense, lexical = check_version(
        version_dir, rs, load_meta(version_dir), load_records(version_dir)
    )
    if model is not None:
        _check_query_model(version_dir, meta, records, model, rs)
    else:
        model_dir = Path(meta["model"]["path"])
        if meta["model"].get(
            "adapted_from"
        ):  # built with `chatbot index --adapt`: queries need that model
            if adapted_embedder_dir(paths, meta["model"]) is None:
                raise IndexStaleError(
                    f"index version {version_dir.name} was built with the adapted embedder {model_dir}, which is missing, "
                    f"changed, or adapted from another embedder than the configured {embedder_path(paths)}; "
                    "run: chatbot index --rebuild"
                )
            model = load_embedder(paths, path=model_dir)
        else:
            configured = embedder_path(paths)
            if model_fingerprint(configured) != meta["model"]["fingerprint"]:
                raise IndexStaleError(
                    f"index version {version_dir.name} was built with the embedder {meta['model']['path']}, "
                    f"not the configured {configured}; run: chatbot index --rebuild"
                )
            model = load_embedder(paths)
    calibration = None
    if meta.get("calibration"):
        try:
            calibration = ScopeCalibration.from_dict(
                {
                    k: v
                    for k, v in meta["calibration"].items()
                    if k in ScopeCalibration.__dataclass_fields__
                }
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise IndexDamagedError(version_dir / "meta.json", f"calibration: {exc}") from None
        weights = calibration.domain_weights
        if weights is not None and len(weights) != dense.dim:
            raise IndexDamagedError(
                version_dir / "meta.json",
                f"calibration: {len(weights)} domain_weights for vectors of dimension {dense.dim}",
            )
    fusion_choice = meta.get("fusion") if isinstance(meta.get("fusion"), dict) else None
    try:
        answer_classes = AnswerClasses.from_meta(meta.get("answer_classes"))
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise IndexDamagedError(version_dir / "meta.json", f"answer_classes: {exc}") from None
    retriever = PairRetriever(
        rs,
        records,
        dense,
        lexical,
        model,
        calibration,
        version=version_dir.name,
        fusion=fusion_choice,
        answer_classes=answer_classes,
    )
    answers_file = version_dir / ANSWER_VECTORS
    if answer_classes is not None and answers_file.is_file():
        try:
            answer_vectors = np.load(answers_file, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise IndexDamagedError(answers_file, str(exc)) from None
        if answer_vectors.shape != (len(records), dense.dim):
            raise IndexDamagedError(
                answers_file,
                f"holds {answer_vectors.shape} reply vectors for {len(records)} pairs of dimension {dense.dim}",
            )
        retriever.answer_vectors = answer_vectors
    offtopic_file = version_dir / OFFTOPIC_VECTORS
    if offtopic_file.is_file():
        try:
            offtopic = np.load(offtopic_file)
        except (OSError, ValueError) as exc:
            raise IndexDamagedError(offtopic_file, str(exc)) from None
        if offtopic.ndim != 2 or offtopic.shape[1] != dense.dim:
            raise IndexDamagedError(
                offtopic_file,
                f"holds {offtopic.shape} off-topic vectors for dimension {dense.dim}",
            )
        retriever.offtopic_vectors = offtopic
    return retriever


QUERY_MODEL_MIN_COSINE = 0.999


def _check_query_model(
    version_dir: Path,
    meta: IndexMeta,
    records: Sequence[PairRecord],
    model: SentenceTransformer,
    rs: RetrievalSettings,
) -> None:
    """A caller-supplied embedder must be the one the index was built with (an index
    built with an adapted embedder and searched with the base one would cite the wrong
    pairs): the first indexed pair, embedded again, must land on its stored vector."""
    vectors_file = version_dir / "vectors.npy"
    if not records or not vectors_file.is_file():
        return
    stored = np.load(vectors_file, mmap_mode="r")
    if len(stored) == 0:
        return
    as_indexed = rs.model_copy(
        update={  # the history fusion the stored vector was made with
            k: v
            for k, v in meta.get("settings", {}).items()
            if k in ("history_turns", "history_weight", "history_decay")
        }
    )
    again = embed_contexts(model, [(records[0].message, records[0].history)], as_indexed)[0]
    if (
        again.shape != stored[0].shape
        or float(again @ np.asarray(stored[0])) < QUERY_MODEL_MIN_COSINE
    ):
        raise IndexStaleError(
            f"index version {version_dir.name} was built with another embedder "
            f"({meta.get('model', {}).get('path')}) than the one given to search it; "
            "its citations would be wrong"
        )


def check_against_store(
    version_dir: Path, records: Sequence[PairRecord], database: Database, splits: Sequence[str]
) -> int:
    """Raise IndexStaleError when indexed pairs were deleted or changed in the store;
    returns how many stored pairs the index does not hold yet."""
    indexed = {r.id: r.content_hash for r in records}
    stored = load_pair_hashes(database, splits)
    new, deleted, changed = compare_pair_sets(indexed, stored)
    if deleted or changed:
        raise IndexStaleError(
            f"index version {version_dir.name} no longer matches the store: {len(deleted)} of its pairs were deleted "
            f"and {len(changed)} changed, so its citations would be wrong; run: chatbot index"
        )
    if new:
        log.warning(
            "index version %s lacks %d new pairs; run: chatbot index", version_dir.name, len(new)
        )
    return len(new)


def open_retriever(
    paths: DataPaths,
    rs: RetrievalSettings,
    database: Database | None = None,
    *,
    model: SentenceTransformer | None = None,
) -> PairRetriever:
    """The retriever over the current index version. With `database`, the version is
    checked against the store first (IndexStaleError when its citations would be wrong).
    Raises IndexNotFoundError, telling the user to run `chatbot index`, when there is none,
    and IndexDamagedError, naming the file and `chatbot index --rebuild`, when a file of
    it (or the CURRENT pointer) is missing or damaged."""
    version_dir = VersionStore(store_root(paths)).require_current()
    retriever = load_version(paths, rs, version_dir, model=model)
    if database is not None:
        splits = load_meta(version_dir)["settings"]["index_splits"]
        check_against_store(version_dir, retriever.records, database, splits)
    return retriever
