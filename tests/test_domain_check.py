"""The hand-off gate's domain check: fitted at index build on the indexed questions
against the off-topic ones (`chatbot.indexing.domain`), stored in the version's
calibration, applied at search time (`ScopeCalibration.outside_domain`, the retriever's
verdict) with its two exceptions: a near paraphrase of an indexed question, and a known
question about an object the history never names (judged again without that word)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from chatbot.indexing.builder import update_index
from chatbot.indexing.domain import FOLDS, fit_domain
from chatbot.meta_file import read_meta
from chatbot.pairs import PairRecord
from chatbot.retrieval.index_files import store_root
from chatbot.retrieval.retriever import PairRetriever, open_retriever
from chatbot.retrieval.scope import ScopeCalibration
from chatbot.settings import load_settings
from tests.test_retrieval_index import add_pairs

DIM = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _cluster(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float = 0.3):
    return _unit(centre + spread * rng.standard_normal((n, DIM)))


@pytest.fixture
def clusters():
    rng = np.random.default_rng(0)
    own_centre, other_centre = np.zeros(DIM), np.zeros(DIM)
    own_centre[0], other_centre[1] = 1.0, 1.0
    own = _cluster(rng, own_centre, 120)
    background = _cluster(rng, other_centre, 60)
    groups = [i // 3 for i in range(len(own))]  # three questions a conversation
    return rng, own_centre, other_centre, own, background, groups


def test_the_check_tells_the_company_questions_from_the_background(clusters):
    rng, own_centre, other_centre, own, background, groups = clusters
    fit = fit_domain(own, groups, background, quantile=0.05, regularisation=10.0, min_questions=100)
    assert fit is not None
    assert fit.questions == 120 and fit.conversations == 40 and fit.background == 60
    assert len(fit.weights) == DIM and 0.0 < fit.threshold < 1.0
    assert fit.background_rejected > 0.9
    calibration = replace(
        ScopeCalibration.uncalibrated(0.0),
        domain_weights=fit.weights,
        domain_bias=fit.bias,
        domain_threshold=fit.threshold,
    )
    new_own = _cluster(rng, own_centre, 50)
    new_other = _cluster(rng, other_centre, 50)
    kept = np.mean([not calibration.outside_domain(v) for v in new_own])
    caught = np.mean([calibration.outside_domain(v) for v in new_other])
    assert kept >= 0.9 and caught >= 0.9


def test_a_higher_quantile_hands_off_more_of_the_company_own_questions(clusters):
    rng, own_centre, _, own, background, groups = clusters
    probe = _cluster(rng, own_centre, 200, spread=0.6)  # harder: further from the centre
    rejected = []
    for quantile in (0.02, 0.3):
        fit = fit_domain(
            own, groups, background, quantile=quantile, regularisation=10.0, min_questions=100
        )
        assert fit is not None
        c = replace(
            ScopeCalibration.uncalibrated(0.0),
            domain_weights=fit.weights,
            domain_bias=fit.bias,
            domain_threshold=fit.threshold,
        )
        rejected.append(np.mean([c.outside_domain(v) for v in probe]))
    assert rejected[0] < rejected[1]


def test_too_little_history_fits_nothing(clusters):
    _, _, _, own, background, groups = clusters
    assert (
        fit_domain(own, groups, background, quantile=0.05, regularisation=10.0, min_questions=121)
        is None
    )
    one_conversation_each_fold_short = [i % (FOLDS - 1) for i in range(len(own))]
    assert (
        fit_domain(
            own,
            one_conversation_each_fold_short,
            background,
            quantile=0.05,
            regularisation=10.0,
            min_questions=100,
        )
        is None
    )
    assert (
        fit_domain(
            own, groups, background[:0], quantile=0.05, regularisation=10.0, min_questions=100
        )
        is None
    )


def test_a_calibration_without_a_domain_check_never_hands_off_by_it():
    older = ScopeCalibration.uncalibrated(0.3).to_dict()
    for key in ("domain_weights", "domain_bias", "domain_threshold"):
        older.pop(key)
    calibration = ScopeCalibration.from_dict(older)  # a meta.json from before the check
    assert calibration.domain_probability(np.ones(DIM)) is None
    assert not calibration.outside_domain(np.ones(DIM))


def _retriever(tmp_path, vectors, messages, calibration, **retrieval):
    settings = load_settings(home=tmp_path / "home", retrieval=retrieval)
    records = [
        PairRecord(
            i + 1, "test", "imported", "train", [{"role": "customer", "text": m}], "A reply."
        )
        for i, m in enumerate(messages)
    ]
    return PairRetriever.from_parts(
        settings.retrieval, records, vectors, None, calibration=calibration
    )


def test_the_retriever_hands_off_what_the_domain_check_rejects_with_two_exceptions(tmp_path):
    messages = [
        "How do I return an item that does not fit me?",
        "How long does a refund take to arrive?",
        "Where is my parcel, it has not arrived yet?",
    ]
    vectors = _unit(np.eye(DIM, dtype=np.float32)[:3] + 0.01)
    # The check accepts only vectors leaning along the last axis.
    weights = [0.0] * DIM
    weights[-1] = 20.0
    calibration = replace(
        ScopeCalibration.uncalibrated(-1.0),  # the score gate lets everything through
        domain_weights=weights,
        domain_bias=-5.0,
        domain_threshold=0.5,
    )
    retriever = _retriever(
        tmp_path, vectors, messages, calibration, gate_domain_max_score=0.8, lexical_weight=0.0
    )

    def query(*axes):
        v = np.zeros(DIM, dtype=np.float32)
        for axis, value in axes:
            v[axis] = value
        return _unit(v)

    # Halfway between an indexed question and elsewhere, in words the history uses, and the
    # check says "not ours".
    far = query((1, 1.0), (5, 1.0))
    assert calibration.outside_domain(far)
    assert retriever.search_vector(
        far, "Where does my refund arrive, is it my parcel?"
    ).out_of_scope
    # Along the accepted axis: the check lets it through.
    ours = query((1, 1.0), (DIM - 1, 1.0))
    assert not retriever.search_vector(ours, "How long does a refund take to arrive?").out_of_scope
    # A near paraphrase of an indexed question (top cosine above gate_domain_max_score).
    close = query((1, 1.0), (5, 0.2))
    assert calibration.outside_domain(close)
    assert not retriever.search_vector(close, "When will my refund arrive?").out_of_scope
    # A question the company answers, about an object its history never names: judged
    # again without the unknown word, and let through when the rest is the company's own...
    jacket = "How do I return a jacket that does not fit me?"
    rest = "How do I return a that does not fit me?"
    rest_vectors = {rest: ours}
    retriever.query_vector = lambda text, history=(): rest_vectors[text]
    assert not retriever.search_vector(far, jacket).out_of_scope
    # ... and handed off when the rest is still another domain's.
    rest_vectors[rest] = far
    assert retriever.search_vector(far, jacket).out_of_scope
    # Off: the same far question is answered.
    off = _retriever(
        tmp_path,
        vectors,
        messages,
        replace(calibration, domain_weights=None),
        lexical_weight=0.0,
    )
    assert not off.search_vector(far, "Where does my refund arrive, is it my parcel?").out_of_scope


def test_index_build_fits_the_check_on_the_indexed_questions_and_serving_reads_it(
    tmp_path, tiny_embedder_dir, migrated_database
):
    rng = np.random.default_rng(1)
    topics = ["refund", "parcel", "return", "password", "invoice", "voucher", "delivery"]
    for c in range(40):
        items = [
            (
                f"Question {c}-{t} about my {rng.choice(topics)} and my {rng.choice(topics)} please",
                f"Here is how the {rng.choice(topics)} works.",
            )
            for t in range(3)
        ]
        add_pairs(migrated_database, items)
    add_pairs(
        migrated_database,
        [(f"Validation question {n} about my {topics[n % 7]}", "An answer.") for n in range(8)],
        split="val",
    )
    settings = load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        database_url=migrated_database.url,
        retrieval={"min_calibration_pairs": 5, "gate_resamples": 50, "gate_domain_min_pairs": 100},
    )
    report = update_index(settings.paths, settings.retrieval, settings.dialogue, migrated_database)
    domain = report.calibration["domain"]
    assert domain is not None and domain["questions"] == 120 and domain["conversations"] == 40
    assert (
        domain["background"] > 250 and domain["quantile"] == settings.retrieval.gate_domain_quantile
    )
    stored = read_meta(store_root(settings.paths) / report.version)["calibration"]
    assert stored["domain_threshold"] == pytest.approx(domain["threshold"], abs=1e-6)
    # The weights live in meta.json only; the report (and `chatbot index --json`) leaves them out.
    assert len(stored["domain_weights"]) > 0 and "domain_weights" not in report.calibration
    retriever = open_retriever(settings.paths, settings.retrieval, migrated_database)
    assert retriever.calibration.domain_weights is not None
    assert len(retriever.calibration.domain_weights) == retriever.dense.dim

    off = load_settings(
        home=tmp_path / "home2",
        embedder_path=tiny_embedder_dir,
        database_url=migrated_database.url,
        retrieval={"min_calibration_pairs": 5, "gate_resamples": 50, "gate_domain": False},
    )
    assert (
        update_index(off.paths, off.retrieval, off.dialogue, migrated_database).calibration[
            "domain"
        ]
        is None
    )


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda c: c.update(domain_weights=["x"] * len(c["domain_weights"])), "list of numbers"),
        (lambda c: c.update(domain_weights=c["domain_weights"][:-1]), "domain_weights for vectors"),
        (lambda c: c.update(domain_threshold="high"), "must be numbers"),
    ],
)
def test_a_damaged_domain_check_is_one_clear_error_and_the_index_is_kept(
    tmp_path, tiny_embedder_dir, migrated_database, damage, said
):
    from chatbot.retrieval.versions import IndexDamagedError

    settings = load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        database_url=migrated_database.url,
        retrieval={"gate_resamples": 50, "gate_domain_min_pairs": 10},
    )
    for c in range(8):
        add_pairs(
            migrated_database,
            [(f"Question {c}-{t} about my parcel and my refund", "An answer.") for t in range(2)],
        )
    add_pairs(
        migrated_database, [("A validation question about my parcel", "An answer.")], split="val"
    )
    report = update_index(settings.paths, settings.retrieval, settings.dialogue, migrated_database)
    assert report.calibration["domain"] is not None
    meta_file = store_root(settings.paths) / report.version / "meta.json"
    meta = json.loads(meta_file.read_text())
    damage(meta["calibration"])
    meta_file.write_text(json.dumps(meta))
    files = sorted(p.name for p in meta_file.parent.iterdir())
    with pytest.raises(IndexDamagedError, match=said) as refused:
        open_retriever(settings.paths, settings.retrieval, migrated_database)
    assert "meta.json" in str(refused.value)
    assert sorted(p.name for p in meta_file.parent.iterdir()) == files  # nothing removed
