"""Answer classes and the question–answer fit model: reading a version's classes back
from meta.json (and refusing a damaged one), scoring the classes of one search, the
features fitting and serving share, the rewordings and spelling corrections the fit is
made on, the clustering and calibration helpers, and the whole fit on a small real store
(real SQLite, tiny real embedder, real FAISS)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from chatbot.dialogue.acts import Act
from chatbot.indexing import answer_classes as fitting
from chatbot.indexing.answer_classes import (
    MIN_PAIRS,
    REWORDINGS,
    build_answer_classes,
    cluster,
    reliability,
)
from chatbot.indexing.rewording import reword
from chatbot.retrieval.answer_classes import (
    FEATURES,
    AnswerClass,
    AnswerClasses,
    class_features,
    class_rows,
    feature_matrix,
)
from chatbot.retrieval.scope import Vocabulary, corrected, words_of
from chatbot.settings import load_settings

# -- meta.json --------------------------------------------------------------------------


def meta() -> dict:
    return {
        "classes": [
            {"label": "Delivery", "size": 3, "answer": "Track it under Orders."},
            {
                "label": "Out of scope",
                "size": 2,
                "answer": "Sorry, we can't help with that.",
                "case_bound": False,
                "handoff": False,
                "out_of_scope": True,
                "act": None,
            },
        ],
        "pair_class": {"11": 0, "12": 0, "13": 0, "21": 1, "22": 1},
        "fit": {
            "features": list(FEATURES),
            "weights": [1.0, 0.5, 0.0, 0.0, -0.25, 0.1, 0.0, 0.0],
            "bias": -0.5,
            "temperature": 0.05,
        },
        "report": {"ece": 0.04},
        "voice": {"decline": "Sorry, we can't help with that."},
    }


def test_from_meta_reads_what_index_wrote():
    classes = AnswerClasses.from_meta(json.loads(json.dumps(meta())))
    assert [c.label for c in classes.classes] == ["Delivery", "Out of scope"]
    assert classes.classes[1].out_of_scope and not classes.classes[0].out_of_scope
    assert classes.pair_class == {11: 0, 12: 0, 13: 0, 21: 1, 22: 1}  # keys back to ints
    assert classes.weights == [1.0, 0.5, 0.0, 0.0, -0.25, 0.1, 0.0, 0.0]
    assert (classes.bias, classes.temperature) == (-0.5, 0.05)
    assert classes.report == {"ece": 0.04}
    assert classes.voice["decline"] == "Sorry, we can't help with that."


@pytest.mark.parametrize("missing", [None, {}, {"classes": []}, [], "answer_classes"])
def test_a_version_without_classes_has_none(missing):
    assert AnswerClasses.from_meta(missing) is None


def damaged(change) -> dict:
    data = meta()
    change(data)
    return data


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (damaged(lambda m: m["fit"].update(weights=[1.0, 2.0])), ValueError),
        (damaged(lambda m: m["pair_class"].update({"30": 2})), ValueError),
        (damaged(lambda m: m["pair_class"].update({"31": -1})), ValueError),
        (damaged(lambda m: m["pair_class"].update({"x": 0})), ValueError),
        (damaged(lambda m: m["fit"].update(bias="high")), ValueError),
        (damaged(lambda m: m.pop("fit")), KeyError),
        (damaged(lambda m: m.pop("pair_class")), KeyError),
        (damaged(lambda m: m["classes"][0].update(colour="red")), TypeError),
        (damaged(lambda m: m["classes"][0].pop("answer")), TypeError),
        (damaged(lambda m: m["fit"].update(weights=None)), TypeError),
    ],
)
def test_a_damaged_entry_is_refused(data, error):
    with pytest.raises(error):
        AnswerClasses.from_meta(data)


# -- reading one search -----------------------------------------------------------------

SIZES = [10, 4, 1]


def by_hand(**weights: float) -> AnswerClasses:
    """Three classes (pairs 1xx, 2xx, 3xx) and a fit model with these feature weights."""
    classes = [AnswerClass(f"Class {k}", size, f"answer {k}") for k, size in enumerate(SIZES)]
    pair_class = {100 * (k + 1) + j: k for k, size in enumerate(SIZES) for j in range(size)}
    return AnswerClasses(
        classes,
        pair_class,
        [weights.get(name, 0.0) for name in FEATURES],
        bias=weights.get("bias", 0.0),
        temperature=0.05,
    )


def test_features_of_the_classes_of_one_search():
    read = by_hand().read([200, 100, 201, 300, 101, 102, 103], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    assert len(read.scores) == 3
    feats = {s.index: s.features for s in read.scores}
    members = {s.index: s.pair_ids for s in read.scores}
    assert members == {1: (200, 201), 0: (100, 101, 102, 103), 2: (300,)}  # best first
    # The softmax vote over all hits: shares sum to one, the closest hits count most.
    weight = {c: math.exp((c - 0.9) / 0.05) for c in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)}
    total = sum(weight.values())
    assert feats[1]["vote"] == pytest.approx((weight[0.9] + weight[0.7]) / total)
    assert sum(f["vote"] for f in feats.values()) == pytest.approx(1.0)
    assert feats[1]["vote"] > 0.8
    assert [feats[k]["best"] for k in (1, 0, 2)] == pytest.approx([0.9, 0.8, 0.6])
    assert feats[1]["margin"] == pytest.approx(0.1)
    assert feats[0]["margin"] == pytest.approx(-0.1)
    assert feats[2]["margin"] == pytest.approx(-0.3)
    assert feats[1]["top3"] == pytest.approx((0.9 + 0.7) / 3)  # a missing third counts as 0
    assert feats[0]["top3"] == pytest.approx((0.8 + 0.5 + 0.4) / 3)  # only the best three
    assert [feats[k]["rank"] for k in (1, 0, 2)] == [0.0, 1.0, 2.0]  # by best cosine
    assert [feats[k]["size"] for k in (0, 1, 2)] == pytest.approx([math.log1p(s) for s in SIZES])


def test_classes_are_ranked_by_probability_not_by_cosine():
    # Probability rises with the class's size only: the largest class wins though its
    # best question is the farthest.
    read = by_hand(size=2.0, bias=-3.0).read([300, 200, 100], [0.9, 0.8, 0.7])
    assert [s.index for s in read.scores] == [0, 1, 2]
    assert read.top.probability == pytest.approx(1 / (1 + math.exp(-(2 * math.log(11) - 3))))
    # A weight against rank turns it round: the closest class first.
    near = by_hand(rank=-3.0).read([300, 200, 100], [0.9, 0.8, 0.7])
    assert [s.index for s in near.scores] == [2, 1, 0]
    assert all(0.0 < s.probability < 1.0 for s in near.scores)


def test_limit_and_pairs_without_a_class():
    classes = by_hand(vote=4.0)
    assert len(classes.read([100, 200, 300], [0.9, 0.8, 0.7], limit=2).scores) == 2
    read = classes.read([999, 100, 998], [0.99, 0.5, 0.98])  # 999, 998: not indexed with a class
    assert [s.index for s in read.scores] == [0]
    assert read.top.features["vote"] == pytest.approx(1.0)
    assert read.top.features["margin"] == pytest.approx(0.5)  # no other class: against 0
    assert classes.read([], []).top is None


def test_a_model_fitted_before_the_reply_features_gives_them_no_weight():
    older = meta()
    older["fit"]["features"] = list(FEATURES[:6])
    older["fit"]["weights"] = older["fit"]["weights"][:6]
    classes = AnswerClasses.from_meta(older)
    assert classes.weights == [1.0, 0.5, 0.0, 0.0, -0.25, 0.1, 0.0, 0.0]
    older["fit"]["features"] = ["vote", "size"]  # not a prefix of FEATURES: damaged
    older["fit"]["weights"] = [1.0, 0.1]
    with pytest.raises(ValueError):
        AnswerClasses.from_meta(older)


def test_the_reply_features_compare_the_question_with_the_replies():
    sizes = [AnswerClass("a", 2, "x"), AnswerClass("b", 2, "y")]
    rows = [(0, 1, 0.9, 0.3), (1, 2, 0.85, 0.6), (0, 3, 0.7, 0.4)]
    first, second = class_features(rows, 0.05, sizes)
    assert first[1]["answer"] == pytest.approx(0.4) and second[1]["answer"] == pytest.approx(0.6)
    assert first[1]["answer_margin"] == pytest.approx(-0.2)
    assert second[1]["answer_margin"] == pytest.approx(0.2)
    # without reply cosines (an older index) they count as 0
    assert class_rows({1: 0}, [1], [0.9]) == [(0, 1, 0.9, 0.0)]


def test_a_lower_temperature_sharpens_the_vote():
    rows = [(0, 1, 0.9, 0.0), (1, 2, 0.85, 0.0)]
    sizes = [AnswerClass("a", 2, "x"), AnswerClass("b", 2, "y")]
    sharp = class_features(rows, 0.01, sizes)[0][1]["vote"]
    soft = class_features(rows, 0.5, sizes)[0][1]["vote"]
    assert sharp > 0.99 and 0.5 < soft < 0.6
    assert class_features([], 0.05, sizes) == []


def test_feature_matrix_rows_and_keys():
    sizes = [AnswerClass("a", 3, "x"), AnswerClass("b", 1, "y")]
    first = class_features([(1, 7, 0.9, 0.0), (0, 8, 0.8, 0.0)], 0.05, sizes)
    second = class_features([(0, 9, 0.7, 0.0)], 0.05, sizes)
    matrix, keys = feature_matrix([first, second, []])
    assert matrix.shape == (3, len(FEATURES))
    assert keys == [(0, 1), (0, 0), (1, 0)]
    rank = FEATURES.index("rank")
    assert matrix[:, rank].tolist() == [0.0, 1.0, 0.0]
    assert matrix[1, FEATURES.index("best")] == pytest.approx(0.8)
    assert matrix[2, FEATURES.index("vote")] == pytest.approx(1.0)
    empty, none = feature_matrix([])
    assert empty.shape == (0, len(FEATURES)) and none == []


# -- rewordings and spelling ------------------------------------------------------------

QUESTION = "Where is my parcel? It was supposed to arrive yesterday."


def test_rewordings_are_deterministic_distinct_and_new():
    variants = reword(QUESTION, 5, seed=1)
    assert variants == reword(QUESTION, 5, seed=1)
    assert variants != reword(QUESTION, 5, seed=2)
    assert len(variants) == 5 and len(set(variants)) == 5
    assert all(v.strip() and v.lower() != QUESTION.lower() for v in variants)
    assert reword(QUESTION, 0, seed=1) == []


@pytest.mark.parametrize(
    "text",
    ["How do I reset my password?", "Can I cancel my order?", "hi", "Where is my refund", "a"],
)
def test_rewordings_never_repeat_the_question(text):
    for seed in range(50):
        variants = reword(text, 3, seed)
        assert len(variants) <= 3 and len(set(variants)) == len(variants)
        assert all(v and v == " ".join(v.split()) for v in variants)
        assert all(v.lower() != text.lower() for v in variants)


VOCABULARY = Vocabulary(
    words_of(
        "How do I track my parcel? Where is my order? I want a refund for the kettle. "
        "Your password reset link. Delivery address change."
    )
)


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        ("hw do i trak my parcle", "how do i track my parcel"),
        ("can u chnge my adress", "can you change my address"),
        ("refnd plz", "refund please"),
        ("my pw is wrong", "my password is wrong"),
        ("where is my ordr NW-12345 from 2024", "where is my order NW-12345 from 2024"),
        # known words, function words, short words and numbers stay as written
        ("Where is my parcel?", "Where is my parcel?"),
        ("I want a Kettle", "I want a Kettle"),
        ("ordr 12345 abc", "order 12345 abc"),
        ("Would you ship it?", "Would you ship it?"),
        ("the cat sat", "the cat sat"),
        ("qwertyuiop", "qwertyuiop"),  # nothing near it
    ],
)
def test_corrected(text, fixed):
    assert corrected(text, VOCABULARY) == fixed


def test_a_real_word_the_history_does_not_use_is_no_misspelling():
    vocabulary = Vocabulary(
        words_of("Tell us your order number. There's a label."),
        dictionary=frozenset({"sell", "where"}),
    )
    # "sell" is a letter from "tell", "where's" from "there's": both real, both kept.
    assert corrected("do you sell jackets", vocabulary) == "do you sell jackets"
    assert corrected("where's my label", vocabulary) == "where's my label"
    assert corrected("do you tel us", vocabulary) == "do you tel us"  # too short to correct
    assert corrected("where is my lable", vocabulary) == "where is my label"  # no word: corrected
    plain = Vocabulary(words_of("Tell us your order number."))
    assert corrected("do you sell jackets", plain) == "do you tell jackets"


def test_the_dictionary_is_the_embedders_whole_words(tiny_embedder_dir):
    from sentence_transformers import SentenceTransformer

    from chatbot.retrieval.embedding import dictionary_of

    words = dictionary_of(SentenceTransformer(str(tiny_embedder_dir), device="cpu"))
    assert words and all(w.isalpha() and w == w.lower() for w in words)
    assert not any(w.startswith("#") for w in words)


def test_a_tie_goes_to_the_more_frequent_word():
    assert corrected("tracx", Vocabulary({"track", "trace"}, {"track": 1, "trace": 7})) == "trace"
    assert corrected("tracx", Vocabulary({"track", "trace"}, {"track": 7, "trace": 1})) == "track"


def test_identifiers_stay_as_written():
    vocabulary = Vocabulary(words_of("You are welcome! Track your order with the code."))
    assert corrected("my voucher WELCOM10 fails", vocabulary) == "my voucher WELCOM10 fails"
    assert corrected("tracking id TRACK-A9", vocabulary) == "tracking id TRACK-A9"


# -- clustering and calibration ---------------------------------------------------------


def unit(*rows: list[float]) -> np.ndarray:
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_close_replies_group_and_classes_are_numbered_largest_first():
    answers = unit([1, 0, 0], [0.99, 0.14, 0], [0, 1, 0], [0, 0.98, 0.2], [0, 0.99, 0.1], [0, 0, 1])
    assert cluster(answers, 0.1).tolist() == [1, 1, 0, 0, 0, 2]
    assert cluster(answers[:1], 0.1).tolist() == [0]
    # identical replies are always one class, however small the distance
    same = unit([1, 2, 3], [1, 2, 3], [3, 2, 1])
    labels = cluster(same, 1e-6)
    assert labels[0] == labels[1] != labels[2]


def test_replies_beyond_the_clustered_sample_join_their_nearest_class(monkeypatch):
    monkeypatch.setattr(fitting, "MAX_CLUSTERED", 4)
    answers = unit(
        [1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0.1, 0.99, 0], [1, 0.05, 0], [0, 1, 0.05], [0, 0, 1]
    )
    for seed in range(5):
        labels = cluster(answers, 0.1, seed=seed)
        assert labels[0] == labels[1] == labels[4]
        assert labels[2] == labels[3] == labels[5]
        assert len(set(labels.tolist())) == 3 and labels[6] == 2  # alone: its own, smallest
        sizes = np.bincount(labels)
        assert sizes.tolist() == sorted(sizes.tolist(), reverse=True)


def test_reliability():
    p = np.array([0.05, 0.15, 0.95, 0.95, 1.0])
    right = np.array([0, 0, 1, 0, 1], dtype=float)
    report = reliability(p, right)
    # |0.05-0|*1/5 + |0.15-0|*1/5 + |0.9667-0.6667|*3/5
    assert report["ece"] == pytest.approx(0.22, abs=1e-4)
    assert report["accuracy"] == pytest.approx(0.4)
    assert [(b["from"], b["to"], b["n"]) for b in report["bins"]] == [
        (0.0, 0.1, 1),
        (0.1, 0.2, 1),
        (0.9, 1.0, 3),  # 1.0 falls in the last bin
    ]
    assert report["bins"][2]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    perfect = reliability(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 0, 1, 1], dtype=float))
    assert perfect["ece"] == 0.0
    assert reliability(np.array([]), np.array([])) == {"ece": None, "bins": [], "accuracy": None}


# -- the whole fit on a small store ------------------------------------------------------

# Topic -> (questions, the one reply every agent gave): identical replies per topic.
HISTORY = {
    "delivery": (
        [
            "Where is my order?",
            "My parcel has not arrived yet",
            "When will my package come?",
            "Is my order on its way?",
            "How long does shipping take?",
            "My delivery is late",
        ],
        "You can track your parcel with the link in your dispatch e-mail or under Orders.",
    ),
    "returns": (
        [
            "How do I return a kettle?",
            "Can I send back a toaster?",
            "I want to return my shoes",
            "How do returns work?",
            "Can I return something I bought?",
        ],
        "Returns are free within 30 days; start one under Orders > Return items.",
    ),
    "order_status": (
        [
            "What is the status of NW-48213?",
            "Has order NW-55120 shipped?",
            "Where is NW-77001?",
            "Status of my order NW-12345?",
        ],
        "Your order {order_number} is on its way.",
    ),
    "not_ours": (
        [
            "Can you recommend a stock?",
            "What is the weather tomorrow?",
            "Do you sell cars?",
            "Can you book me a flight?",
        ],
        "Sorry, that's not something I can help with. Ask me about orders or returns.",
    ),
    "handoff": (
        ["I want to make a complaint", "Let me speak to a manager", "I want a person now"],
        "I'm sorry to hear that. I'm passing you to a colleague who will look into it.",
    ),
    "smalltalk": (
        ["thanks!", "thank you so much", "cheers"],
        "You're very welcome, have a lovely day!",
    ),
}
REPLY_TOPIC = {reply: topic for topic, (_, reply) in HISTORY.items()}


@pytest.fixture
def shop(tmp_path, tiny_embedder_dir, sqlite_database):
    """The history stored as imported conversations, indexed vectors from the tiny
    embedder (no reply model needed); replies are only grouped when (nearly) identical,
    and the agents' declines are labelled with a topic of the settings' own."""
    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval.embedding import embed_contexts
    from chatbot.retrieval.stored_pairs import load_pairs
    from tests.test_dialogue_support import seed_shop

    base = load_settings(home=tmp_path / "home", embedder_path=tiny_embedder_dir)
    settings = base.model_copy(
        update={
            "dialogue": base.dialogue.model_copy(
                update={"answer_class_distance": 0.001, "out_of_scope_topics": ["not_ours"]}
            )
        }
    )
    seed_shop(
        sqlite_database,
        [(q, reply, "imported", topic) for topic, (qs, reply) in HISTORY.items() for q in qs],
    )
    records = load_pairs(sqlite_database, settings.retrieval.index_splits)
    model = load_embedder(settings.paths)
    vectors = embed_contexts(model, [(r.message, r.history) for r in records], settings.retrieval)
    return settings, sqlite_database, model, records, vectors


def test_fit_on_a_small_store(shop):
    settings, database, model, records, vectors = shop
    assert len(records) >= MIN_PAIRS
    built = build_answer_classes(
        settings.retrieval, settings.dialogue, database, model, records, vectors
    )
    assert built is not None
    fitted, replies = built
    assert replies.shape == (len(records), vectors.shape[1])  # answer_vectors.npy, one per pair
    fitted = json.loads(json.dumps(fitted))  # what meta.json keeps
    classes = fitted["classes"]

    # Every indexed pair has a class; identical replies share one; sizes add up.
    pair_class = {int(k): v for k, v in fitted["pair_class"].items()}
    assert set(pair_class) == {r.id for r in records}
    assert all(0 <= k < len(classes) for k in pair_class.values())
    by_reply: dict[str, set[int]] = {}
    for r in records:
        by_reply.setdefault(r.target, set()).add(pair_class[r.id])
    assert all(len(ks) == 1 for ks in by_reply.values()), by_reply
    counts = np.bincount(list(pair_class.values()), minlength=len(classes))
    assert [c["size"] for c in classes] == counts.tolist()
    assert counts.tolist() == sorted(counts.tolist(), reverse=True)  # largest first

    # What each class means, from its pairs' labels and texts.
    kind = {topic: classes[next(iter(by_reply[reply]))] for reply, topic in REPLY_TOPIC.items()}
    assert kind["not_ours"]["out_of_scope"] and not kind["not_ours"]["handoff"]
    assert kind["handoff"]["handoff"] and not kind["handoff"]["out_of_scope"]
    assert kind["order_status"]["case_bound"]  # its replies hold the order-number slot
    assert not kind["returns"]["case_bound"] and not kind["returns"]["out_of_scope"]
    assert kind["smalltalk"]["act"] == Act.THANKS.value
    assert kind["delivery"]["act"] is None
    assert kind["order_status"]["label"] == "Order status"
    assert kind["returns"]["label"] == "Returns"
    assert kind["returns"]["answer"] == HISTORY["returns"][1]

    # The fit model, in the shape serving reads.
    fit = fitted["fit"]
    assert fit["features"] == list(FEATURES) and len(fit["weights"]) == len(FEATURES)
    assert all(math.isfinite(w) for w in fit["weights"]) and math.isfinite(fit["bias"])
    assert fit["temperature"] == settings.dialogue.answer_class_temperature
    served = AnswerClasses.from_meta(fitted)
    assert served is not None and len(served.classes) == len(classes)
    own = [r.id for r in records if r.target == HISTORY["returns"][1]]
    read = served.read(own, [0.9] * len(own))
    assert read.top.index == pair_class[own[0]] and 0.0 < read.top.probability < 1.0

    # Its calibration, measured on held-out conversations.
    report = fitted["report"]
    assert 0 < report["held_out_questions"] < len(records)
    assert 0.0 <= report["ece"] <= 1.0
    assert sum(b["n"] for b in report["bins"]) == report["held_out_questions"]
    assert report["classes"] == len(classes)
    assert len(records) < report["fitted_questions"] <= len(records) * (1 + REWORDINGS)

    # The company's voice for what is not an answer.
    voice = fitted["voice"]
    assert set(voice["acts"]) == {a.value for a in Act}
    assert all(isinstance(t, str) and t.strip() for t in voice["acts"].values())
    assert voice["acts"][Act.THANKS.value] == HISTORY["smalltalk"][1]  # the history's words
    assert voice["acts_from_history"] == [Act.THANKS.value]
    assert voice["decline"] == HISTORY["not_ours"][1] and voice["decline_from_history"]
    assert "not_ours" not in voice["topics"] and "handoff" not in voice["topics"]
    assert voice["topics"][:2] == ["delivery", "returns"]  # the largest topics first


def test_the_fit_is_deterministic(shop):
    settings, database, model, records, vectors = shop
    first = build_answer_classes(
        settings.retrieval, settings.dialogue, database, model, records, vectors
    )
    again = build_answer_classes(
        settings.retrieval, settings.dialogue, database, model, records, vectors
    )
    assert first is not None and again is not None
    assert again[0] == first[0] and np.array_equal(again[1], first[1])


def test_too_few_pairs_have_no_classes(shop):
    settings, database, model, records, vectors = shop
    few = records[: MIN_PAIRS - 1]
    assert (
        build_answer_classes(
            settings.retrieval, settings.dialogue, database, model, few, vectors[: len(few)]
        )
        is None
    )


def test_an_index_keeps_its_reply_vectors_and_refuses_damaged_ones(shop):
    from chatbot.indexing.builder import update_index
    from chatbot.retrieval.answer_classes import ANSWER_VECTORS
    from chatbot.retrieval.index_files import store_root
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.retrieval.versions import IndexDamagedError

    settings, database, _, records, _ = shop
    report = update_index(settings.paths, settings.retrieval, settings.dialogue, database)
    version = store_root(settings.paths) / report.version
    assert (version / ANSWER_VECTORS).is_file()
    retriever = open_retriever(settings.paths, settings.retrieval, database)
    assert retriever.answer_classes is not None
    hits = retriever.search(records[0].message, k=3).hits
    assert hits and all(-1.0 <= h.scores["answer"] <= 1.0 for h in hits)
    np.save(version / ANSWER_VECTORS, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(IndexDamagedError) as raised:
        open_retriever(settings.paths, settings.retrieval, database)
    assert raised.value.path.name == ANSWER_VECTORS


def test_an_index_keeps_the_off_topic_questions_vectors_and_reports_the_margin(shop):
    from chatbot.indexing.builder import update_index
    from chatbot.indexing.gate import background_questions
    from chatbot.retrieval.index_files import store_root
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.retrieval.scope import OFFTOPIC_VECTORS
    from chatbot.retrieval.versions import IndexDamagedError

    settings, database, _, records, _ = shop
    report = update_index(settings.paths, settings.retrieval, settings.dialogue, database)
    version = store_root(settings.paths) / report.version
    offtopic = np.load(version / OFFTOPIC_VECTORS)
    background = background_questions()
    retriever = open_retriever(settings.paths, settings.retrieval, database)
    assert offtopic.shape == (len(background), retriever.dense.dim)
    # An off-topic question itself is nearer its own vector than any indexed question is
    # (cosine 1 against less); an indexed question is nearest itself.
    away = retriever.search(background[0], k=3)
    assert away.offtopic_margin is not None and away.offtopic_margin > 0
    home = retriever.search(records[0].message, k=3)
    assert home.offtopic_margin is not None and home.offtopic_margin < away.offtopic_margin
    np.save(version / OFFTOPIC_VECTORS, np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(IndexDamagedError) as raised:
        open_retriever(settings.paths, settings.retrieval, database)
    assert raised.value.path.name == OFFTOPIC_VECTORS
    (version / OFFTOPIC_VECTORS).unlink()  # an older version without them: no margin
    older = open_retriever(settings.paths, settings.retrieval, database)
    assert older.search(background[0], k=3).offtopic_margin is None


def test_classes_labelled_alike_by_the_import_are_merged_but_not_acts_or_unlabelled():
    from chatbot.dialogue.repository import PairInfo
    from chatbot.indexing.answer_classes import merged_by_label
    from chatbot.pairs import PairRecord

    def record(pair_id: int) -> PairRecord:
        return PairRecord(pair_id, "s", "imported", "train", [{"text": "q"}], "a")

    records = [record(i) for i in range(6)]
    infos = {
        0: PairInfo("imported", {"intent": "returns"}, "q"),
        1: PairInfo("imported", {"intent": "returns"}, "q"),
        2: PairInfo("imported", {"intent": "returns"}, "q"),  # a pleasantry in a returns chat
        3: PairInfo("imported", {}, "q"),
        4: PairInfo("imported", {}, "q"),
        5: PairInfo("imported", {"intent": "returns"}, "q"),
    }
    classes = [
        AnswerClass("Returns", 2, "30 days, free"),  # pairs 0, 5
        AnswerClass("Returns", 1, "send it back within 30 days"),  # pair 1
        AnswerClass("Returns", 1, "You're welcome!", act="thanks"),  # pair 2
        AnswerClass("Parcel · Lost", 1, "x"),  # pair 3, labelled by its words
        AnswerClass("Parcel · Lost", 1, "y"),  # pair 4, the same words, unlabelled
    ]
    assigned = np.array([0, 1, 2, 3, 4, 0])
    merged = merged_by_label(records, infos, classes, assigned)
    assert merged[0] == merged[1] == merged[5]  # one returns class, whatever the wording
    assert len({merged[0], merged[2], merged[3], merged[4]}) == 4  # act and unlabelled apart
    assert merged[0] == 0  # the largest first


def test_eval_fit_reports_the_calibration_and_says_when_an_index_has_none(
    shop, tiny_embedder_dir, tmp_path
):
    from click.testing import CliRunner

    from chatbot.cli import main
    from chatbot.indexing.builder import update_index

    settings, database, *_ = shop
    env = {
        "CHATBOT_HOME": str(settings.home),
        "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
        "CHATBOT_DATABASE_URL": database.url,
    }
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, database, calibrate=False
    )  # no answer classes
    missing = CliRunner().invoke(main, ["eval", "fit"], env=env)
    assert missing.exit_code == 1 and "has no fit model" in missing.output
    assert "chatbot index --rebuild" in missing.output

    update_index(settings.paths, settings.retrieval, settings.dialogue, database, rebuild=True)
    plot = tmp_path / "fit.png"
    shown = CliRunner().invoke(main, ["eval", "fit", "--plot", str(plot), "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert 0.0 <= report["ece"] <= 1.0 and report["plot"] == str(plot)
    assert plot.read_bytes().startswith(b"\x89PNG")
