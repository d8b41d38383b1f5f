"""Intent routing evaluation: the file reader, typo noise, the out-of-scope threshold
chosen on validation data, and `chatbot eval intents` end to end (tiny embedder)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.errors import InputError
from chatbot.evaluation.intents.routing import (
    LabelledRequest,
    evaluate,
    read_intents,
    stratified_folds,
    stratified_split,
    typo_noise,
)
from chatbot.indexing.gate import calibrate
from chatbot.retrieval.scope import ScopeCalibration

TOPICS = {
    "card_arrival": [
        "when will my card arrive",
        "my card has not arrived yet",
        "card still not delivered",
        "how long for the card to come",
        "is my new card on its way",
        "card arrival time",
    ],
    "reset_password": [
        "how do i reset my password",
        "forgot my password",
        "cannot log in password reset",
        "change my password please",
        "password reset link",
        "lost password help",
    ],
    "refund": [
        "i want a refund",
        "refund my payment",
        "money back for my order",
        "how do refunds work",
        "return money to my card",
        "refund status please",
    ],
}
OOS_TEXTS = [
    "what is the weather on mars",
    "tell me a joke about cats",
    "who won the football cup",
    "recipe for banana bread",
    "how tall is mount everest",
    "play some jazz music",
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def items(with_oos=False):
    out = [LabelledRequest(t, intent) for intent, texts in TOPICS.items() for t in texts]
    if with_oos:
        out += [LabelledRequest(t, "oos") for t in OOS_TEXTS]
    return out


def test_read_intents_reports_file_and_line(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "a", "text": " hi ", "intent": "greet"}])
    assert read_intents(good) == [LabelledRequest("hi", "greet", "a")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "intent": "greet"}\n{"text": "", "intent": "greet"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: missing or empty \"text\""):
        read_intents(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(InputError, match="broken.jsonl:1: not valid JSON"):
        read_intents(broken)


def test_typo_noise_is_deterministic_and_changes_text():
    texts = [t for ts in TOPICS.values() for t in ts]
    noised = [typo_noise(t) for t in texts]
    assert noised == [typo_noise(t) for t in texts]
    assert sum(a != b for a, b in zip(texts, noised)) >= len(texts) // 4
    for a, b in zip(texts, noised):
        assert len(a.split()) == len(b.split())
        assert abs(len(a) - len(b)) <= len(a.split())


def test_splits_and_folds_are_stratified_and_deterministic():
    data = items(with_oos=True)
    kept, held = stratified_split(data, 0.34)
    assert stratified_split(data, 0.34) == (kept, held)
    assert len(kept) + len(held) == len(data)
    assert {i.intent for i in held} == {i.intent for i in data}  # every intent represented
    folds = stratified_folds(data, 3)
    assert sorted(r for f in folds for r in f) == list(range(len(data)))
    for fold in folds:
        assert {data[r].intent for r in fold} == {i.intent for i in data}


def test_threshold_separates_validation_scores():
    rng = np.random.default_rng(0)
    inside, outside = rng.normal(0.8, 0.05, 200), rng.normal(0.4, 0.05, 100)
    scores = np.concatenate([inside, outside])
    calibration = calibrate(scores, np.r_[np.ones(200, bool), np.zeros(100, bool)])
    assert 0.5 < calibration.raw_threshold < 0.7
    assert calibration.validation_balanced_accuracy > 0.99
    assert calibration.out_of_scope(0.45) and not calibration.out_of_scope(0.75)
    assert calibration.probability(0.75) > calibration.threshold > calibration.probability(0.45)
    assert ScopeCalibration.from_dict(calibration.to_dict()) == calibration
    # In-scope items that are routed wrongly do not count as served: the cut moves up.
    wrong = np.r_[inside < 0.75, np.zeros(100, bool)]
    stricter = calibrate(
        scores, np.r_[np.ones(200, bool), np.zeros(100, bool)], accepted_correct=~wrong
    )
    assert stricter.raw_threshold >= calibration.raw_threshold
    with pytest.raises(ValueError, match="both"):
        calibrate(inside, np.ones(200, bool))


@pytest.fixture
def tiny_factory(tiny_embedder_dir):
    from sentence_transformers import SentenceTransformer

    return lambda: SentenceTransformer(str(tiny_embedder_dir), device="cpu")


@pytest.mark.parametrize("method", ["fusion", "knn", "logreg", "finetune"])
def test_evaluate_routes_seen_requests(method, tiny_factory):
    data = items()
    result = evaluate(
        tiny_factory, data, data, method=method, epochs=1, max_train_seconds=30, noise="typo"
    )
    # Requests seen in training: nearest neighbour is exact, and the classifiers fit them.
    assert result.clean["accuracy"] >= (1.0 if method == "knn" else 0.8)
    assert 0 <= result.clean["macro_f1"] <= 1
    assert result.noisy["n"] == len(data)
    assert result.calibration is None and "oos_recall" not in result.clean


def test_evaluate_chooses_the_threshold_on_validation_never_test(tiny_factory):
    train = items(with_oos=True)
    val = [LabelledRequest(i.text, i.intent) for i in train]  # same requests: routing is exact
    test = [
        LabelledRequest(TOPICS["refund"][0], "refund"),
        LabelledRequest("quantum chromodynamics lecture", "oos"),
    ]
    result = evaluate(tiny_factory, train, test, val, method="knn")
    assert result.validation.endswith("from --val")
    assert result.calibration["n_in_scope"] == 18 and result.calibration["n_out_of_scope"] == 6
    assert {"in_scope_accuracy", "oos_recall", "accuracy_with_oos"} <= set(result.clean)
    # Without --val the threshold comes from out-of-fold routings of all of train, and
    # the test never moves it.
    folded = evaluate(tiny_factory, train, test, None, method="knn", calibration_folds=3)
    assert "out-of-fold routings of the 24 --train requests (3-fold" in folded.validation
    assert folded.counts["train"] == len(train)
    assert folded.calibration["n_in_scope"] + folded.calibration["n_out_of_scope"] == len(train)
    other_test = test[:1] + [LabelledRequest("how many moons has jupiter", "oos")]
    assert (
        evaluate(
            tiny_factory, train, other_test, None, method="knn", calibration_folds=3
        ).calibration
        == folded.calibration
    )
    # Fine-tuning is too dear to repeat per fold: it carves a slice instead.
    carved = evaluate(
        tiny_factory, train, test, None, method="finetune", epochs=1, max_train_seconds=30
    )
    assert "carved from --train" in carved.validation
    assert carved.counts["train"] + carved.counts["val"] == len(train)


def test_min_oos_recall_serves_the_most_in_scope_items_at_that_recall():
    rng = np.random.default_rng(1)
    inside, outside = rng.normal(0.8, 0.1, 400), rng.normal(0.55, 0.1, 100)
    scores, positive = (
        np.concatenate([inside, outside]),
        np.r_[np.ones(400, bool), np.zeros(100, bool)],
    )
    balanced = calibrate(scores, positive)
    assert balanced.criterion == "balanced_accuracy"
    for target in (0.5, 0.95):
        chosen = calibrate(scores, positive, min_oos_recall=target)
        rejected = outside < chosen.raw_threshold
        assert rejected.mean() >= target
        # No lower cut keeps the recall: any cut serving more in-scope items rejects too few.
        lower = outside[outside < chosen.raw_threshold]
        assert lower.size == 0 or (outside < lower.max()).mean() < target
        assert chosen.criterion == f"max_served_at_oos_recall>={target:g}"
        assert ScopeCalibration.from_dict(chosen.to_dict()) == chosen
    assert calibrate(scores, positive, min_oos_recall=0.5).raw_threshold < balanced.raw_threshold
    assert calibrate(scores, positive, min_oos_recall=0.95).raw_threshold > balanced.raw_threshold


def test_fusion_features_put_ngrams_beside_the_scaled_embedding():
    from chatbot.evaluation.intents.features import LexicalDenseFeatures

    texts = [t for ts in TOPICS.values() for t in ts]
    vectors = np.random.default_rng(0).normal(size=(len(texts), 8)).astype(np.float32)
    features = LexicalDenseFeatures(embedding_weight=2.0).fit(texts)
    matrix = features.transform(texts, vectors)
    assert matrix.shape[0] == len(texts) and matrix.shape[1] > 8
    np.testing.assert_allclose(matrix[:, -8:].toarray(), 2.0 * vectors, rtol=1e-6)
    # A typo keeps most character n-grams: the noisy request stays nearest its original.
    lexical = features.transform(texts, np.zeros_like(vectors))[:, :-8]
    noisy = features.transform(["how do i rest my pasword"], np.zeros((1, 8), np.float32))[:, :-8]
    assert texts[int((lexical @ noisy.T).toarray().argmax())] == "how do i reset my password"


def test_fusion_confidence_is_lower_for_unseen_out_of_scope_requests(tiny_factory):
    from chatbot.evaluation.intents.routing import IntentRouter

    router = IntentRouter(tiny_factory(), "fusion").fit(items(with_oos=True))
    seen = router.route([t for ts in TOPICS.values() for t in ts])
    assert seen.labels == [intent for intent, ts in TOPICS.items() for _ in ts]
    unseen = router.route(["what is the weather on jupiter", "tell me a joke about dogs"])
    assert (
        "oos" not in unseen.labels
    )  # the best in-scope intent is named; the score says it does not fit
    assert unseen.confidence.max() < seen.confidence.min()


def test_eval_intents_cli(tmp_path, tiny_embedder_dir, monkeypatch):
    monkeypatch.setenv("CHATBOT_EMBEDDER_PATH", str(tiny_embedder_dir))
    monkeypatch.setenv("CHATBOT_HOME", str(tmp_path / "home"))
    rows = [{"text": i.text, "intent": i.intent} for i in items(with_oos=True)]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "eval",
            "intents",
            "--train",
            str(train),
            "--test",
            str(train),
            "--val",
            str(train),
            "--method",
            "knn",
            "--noise",
            "typo",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["clean"]["accuracy"] == 1.0
    assert payload["noisy"]["n"] == len(rows)
    assert payload["calibration"]["n_out_of_scope"] == len(OOS_TEXTS)

    default = runner.invoke(
        main, ["eval", "intents", "--train", str(train), "--test", str(train), "--val", str(train)]
    )
    assert default.exit_code == 0, default.output
    assert "fusion: trained on 24 requests (3 intents)" in default.stdout
    assert "max_served_at_oos_recall>=0.85): in-scope accuracy" in default.stdout
    balanced = runner.invoke(
        main,
        [
            "eval",
            "intents",
            "--train",
            str(train),
            "--test",
            str(train),
            "--val",
            str(train),
            "--min-oos-recall",
            "0",
            "--json",
        ],
    )
    assert json.loads(balanced.stdout)["calibration"]["criterion"] == "balanced_accuracy"

    text = runner.invoke(
        main, ["eval", "intents", "--train", str(train), "--folds", "3", "--method", "logreg"]
    )
    assert text.exit_code == 0, text.output
    assert "3-fold cross-validation" in text.output and "accuracy" in text.output

    missing = runner.invoke(main, ["eval", "intents", "--train", str(train)])
    assert missing.exit_code != 0 and "--test FILE or --folds N" in missing.output
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "hi"}])
    single = write_jsonl(
        tmp_path / "single.jsonl", [{"text": t, "intent": "refund"} for t in TOPICS["refund"]]
    )
    lonely = runner.invoke(main, ["eval", "intents", "--train", str(single), "--test", str(single)])
    assert (
        lonely.exit_code == 1
        and "at least two intents" in lonely.output
        and "Traceback" not in lonely.output
    )
    failed = runner.invoke(main, ["eval", "intents", "--train", str(bad), "--test", str(train)])
    assert failed.exit_code == 1 and 'bad.jsonl:1: missing or empty "intent"' in failed.output
