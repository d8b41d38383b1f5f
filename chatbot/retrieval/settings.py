"""The `retrieval` settings section: how queries are fused, how pairs are indexed,
and when a search says "nothing here fits".

Only the values and their checks live here; the modules that use them read them from
`settings.retrieval`. Environment: `CHATBOT_RETRIEVAL__<KEY>` (e.g.
`CHATBOT_RETRIEVAL__HISTORY_WEIGHT=0.4`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from chatbot.settings_section import Section

# Settings that change the stored vectors or the lexical index: when one of them differs
# from the index's meta.json, `chatbot index` rebuilds instead of adding.
INDEX_DEFINING_KEYS = (
    "history_turns",
    "history_weight",
    "history_decay",
    "index_splits",
    "max_seq_length",
)


class RetrievalSettings(Section):
    # What is indexed.
    index_splits: list[Literal["train", "val", "test"]] = Field(
        default_factory=lambda: list[Literal["train", "val", "test"]](["train"]),
        description="Which splits of the training pairs are indexed (val is used to calibrate out-of-scope).",
    )
    batch_size: int = Field(default=64, ge=1, le=4096, description="Texts per embedding batch.")
    max_seq_length: int = Field(
        default=128, ge=8, le=512, description="Tokens kept of each text when embedding."
    )

    # History fusion: query = (1-w)*message + w*weighted mean of the last turns.
    history_turns: int = Field(
        default=2, ge=0, le=20, description="Earlier turns fused into the query."
    )
    history_weight: float = Field(
        default=0.3, ge=0.0, lt=1.0, description="Weight of the history in the query vector."
    )
    history_decay: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Each older turn counts this much of the next newer one.",
    )

    # Feature fusion: dense cosine + lexical BM25 (normalised per query).
    correct_spelling: bool = Field(
        default=True,
        description="Search with chat shorthand spelt out and misspelt words replaced by the "
        "history's nearest word (`chatbot.retrieval.scope.corrected`).",
    )
    lexical_weight: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Weight of BM25 in the fused score; 0 = dense only.",
    )
    candidates: int = Field(
        default=50, ge=1, le=10000, description="Dense and lexical candidates pooled before fusion."
    )

    # Exact vs approximate search.
    exact_max_pairs: int = Field(
        default=5_000,
        ge=1,
        description="Above this many pairs an HNSW index replaces exact search. Measured in "
        "benchmarks/results/retrieval_switch.json (bench_switch_point.py): the largest measured size "
        "where exact search stays within its rule (p95 <= 5 ms or < 2x HNSW p95); at 10k pairs exact "
        "p95 was 28 ms vs HNSW 0.6 ms, HNSW recall@10 >= 0.987 up to 100k.",
    )
    hnsw_m: int = Field(default=32, ge=4, le=128)
    hnsw_ef_construction: int = Field(default=80, ge=8)
    hnsw_ef_search: int = Field(default=128, ge=8)

    # Out of scope: the hand-off gate (chatbot.indexing.gate.calibrate_gate), chosen at index time.
    oos_threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Used only for an index built without calibration (--no-calibrate): a cut on the top fused score.",
    )
    gate_feature: Literal["dense", "fused"] = Field(
        default="dense",
        description="The score the gate reads: the top dense cosine of the (history-fused) query, or the top fused score.",
    )
    gate_prior_threshold: float = Field(
        default=0.45,
        ge=-1.0,
        le=1.0,
        description="The gate's prior threshold on gate_feature, which the validation data must overrule; it stands "
        "alone below min_calibration_pairs questions. On all-MiniLM-L6-v2's cosine scale: generic off-topic "
        "questions score up to ~0.4 against a support history, paraphrases of its questions 0.6 and more.",
    )
    gate_prior_strength: float = Field(
        default=30.0,
        ge=0.0,
        description="Weight of the prior, in validation questions: the threshold is "
        "(n*data_cut + strength*prior)/(n + strength); 0 = the data alone.",
    )
    gate_background: bool = Field(
        default=True,
        description="Use the shipped generic off-topic questions as the gate's negatives.",
    )
    gate_background_file: Path | None = Field(
        default=None,
        description="More off-topic questions for the gate's negatives (one a line, '#' lines ignored).",
    )
    gate_unknown_terms: bool = Field(
        default=True,
        description="A question about something (a content word, typos and endings allowed for) that no indexed "
        "conversation mentions is out of scope; used only where it catches at most gate_unknown_terms_max "
        "of the validation questions.",
    )
    gate_unknown_terms_max: float = Field(
        default=0.08, ge=0.0, le=1.0, description="See gate_unknown_terms."
    )
    gate_domain: bool = Field(
        default=True,
        description="Also hand off a question whose vector a logistic regression, fitted on the indexed "
        "questions against the off-topic ones, does not take for the company's own (catches neighbouring "
        "domains that share the company's words).",
    )
    gate_domain_quantile: float = Field(
        default=0.05,
        ge=0.0,
        le=0.5,
        description="The domain check's cut: this share of the company's own questions (out of fold) is below it.",
    )
    gate_domain_min_pairs: int = Field(
        default=100,
        ge=10,
        description="Fewer indexed questions than this: no domain check (the score gate decides alone).",
    )
    gate_domain_max_score: float = Field(
        default=0.8,
        ge=-1.0,
        le=1.0,
        description="The domain check leaves alone a question whose top dense cosine reaches this: a near "
        "paraphrase of an indexed question is the company's own.",
    )
    gate_domain_regularisation: float = Field(
        default=10.0,
        gt=0.0,
        description="The domain check's inverse regularisation strength (scikit-learn's C).",
    )
    gate_resamples: int = Field(
        default=1000,
        ge=0,
        le=100_000,
        description="Bootstrap resamples of the threshold's 95% interval (0: none).",
    )
    fit_similarity: float = Field(
        default=0.6,
        ge=-1.0,
        le=1.0,
        description="`chatbot index --adapt`: a retrieved reply 'fits' a validation pair when its embedding is this close to the true reply.",
    )
    min_calibration_pairs: int = Field(
        default=5,
        ge=1,
        description="Fewer in-domain validation questions than this: the gate's prior threshold stands alone.",
    )
    keep_versions: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Index versions kept on disk (the current one included).",
    )
    snippet_chars: int = Field(
        default=300, ge=20, description="Characters of the reply shown in a citation."
    )

    # Adapting the embedder to the stored pairs (`chatbot index --adapt`).
    adapt_min_gain: float = Field(
        default=0.005,
        ge=-2.0,
        le=2.0,
        description="Keep the adapted embedder only when it raises the validation reply similarity by more than this.",
    )
    adapt_min_gain_stderrs: float = Field(
        default=2.0,
        ge=0.0,
        description="The gain must also exceed this many standard errors of the per-pair differences (0: the margin alone decides).",
    )
    adapt_max_steps: int = Field(
        default=300, ge=1, description="Training steps of the adaptation at most."
    )
    adapt_max_minutes: float = Field(
        default=3.0, gt=0.0, description="Wall-clock budget of the adaptation's training."
    )
    adapt_batch_size: int = Field(
        default=16,
        ge=2,
        le=1024,
        description="Pairs per adaptation batch (the in-batch negatives).",
    )
    adapt_learning_rate: float = Field(
        default=5e-5, gt=0.0, le=1e-2, description="Peak learning rate of the adaptation."
    )
    adapt_max_seq_length: int = Field(
        default=64,
        ge=8,
        le=512,
        description="Tokens kept of each text while adapting (not when embedding).",
    )
    adapt_min_pairs: int = Field(
        default=100, ge=2, description="Fewer training pairs than this: no adaptation."
    )
    adapt_min_val_pairs: int = Field(
        default=20, ge=1, description="Fewer validation pairs than this: no adaptation."
    )

    @model_validator(mode="after")
    def _check(self) -> RetrievalSettings:
        if not self.index_splits:
            raise ValueError("index_splits must name at least one split")
        return self

    def index_defining(self) -> dict[str, Any]:
        """The values that shape the stored index, as written to meta.json."""
        return {key: getattr(self, key) for key in INDEX_DEFINING_KEYS}
