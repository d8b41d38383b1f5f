"""The dialogue manager with a learned ranker (tiny real cross-encoder built from the
tiny embedder, real store and retriever): the ranker's probability is every candidate's
score and the winner is its favourite, the decision thresholds come from the
probabilities its picks reached on validation questions, a refinement round that
lowers its score stops the loop, and a degenerate candidate (a sentence said twice, the
customer's words echoed) is never sent, whoever wrote it."""

from __future__ import annotations

import json

import pytest

from chatbot.dialogue.manager import DialogueManager
from chatbot.dialogue.records import Critique
from chatbot.dialogue.refine import refine
from chatbot.text.prompt import PromptFormat
from tests.test_dialogue_support import SHOP, build_retriever, seed_shop

ORDER_Q = SHOP[0][0]


@pytest.fixture(scope="module")
def tiny_ranker_dir(tmp_path_factory, tiny_embedder_dir):
    """An (untrained) cross-encoder from the tiny embedder, saved as a ranker version."""
    import torch

    from chatbot.settings import load_settings
    from chatbot.training.ranker import base_model

    settings = load_settings(home=tmp_path_factory.mktemp("home"), embedder_path=tiny_embedder_dir)
    torch.manual_seed(0)  # the fresh head: every run scores the candidates alike
    model, _ = base_model(settings.paths, settings.ranker, "cpu")
    # A fresh head gives nearly equal logits (standard deviation about 5e-6 over the shop's
    # replies; scaled by a fixed factor, probabilities that all saturate near 1 and tie):
    # rescale it so that its logits over the shop's replies to the order question have mean
    # 0 and standard deviation 3, and the candidates' probabilities differ clearly. Float
    # noise (batch padding) then moves a probability by about 1e-4, hence the tolerances.
    features = model.tokenizer(
        [ORDER_Q] * len(SHOP),
        [reply for _, reply, *_ in SHOP],
        padding=True,
        truncation=True,
        return_tensors="pt",
    )
    model.model.eval()
    with torch.no_grad():
        logits = model.model(**features).logits.squeeze(-1)
        scale = 3.0 / float(logits.std())
        for name, parameter in model.model.named_parameters():
            if "classifier" in name and parameter.dim() == 2:
                parameter.mul_(scale)
            elif "classifier" in name and parameter.dim() == 1:
                parameter.sub_(float(logits.mean())).mul_(scale)
    path = tmp_path_factory.mktemp("ranker")
    model.save(str(path))
    return path


def ranker_with(path, picks: dict[str, float] | None):
    from chatbot.ranking.model import Ranker

    meta = {"kind": "ranker", "name": "ranker-test", "query": {"history_turns": 2}}
    if picks is not None:
        meta["val_pick_probability"] = picks
    (path / "meta.json").write_text(json.dumps(meta))
    return Ranker.load(path)


@pytest.fixture
def shop(tiny_settings, migrated_database):
    seed_shop(migrated_database)
    return tiny_settings, migrated_database, build_retriever(tiny_settings, migrated_database)


def manager(settings, database, retriever, ranker, **overrides):
    dialogue = settings.dialogue.model_copy(
        update={"generate": False, "cache_enabled": False, **overrides}
    )
    return DialogueManager(
        dialogue,
        database,
        retriever,
        None,
        PromptFormat.from_settings(settings.prompt),
        ranker=ranker,
    )


def test_the_rankers_favourite_is_sent_with_its_probability_as_confidence(shop, tiny_ranker_dir):
    settings, database, retriever = shop
    ranker = ranker_with(tiny_ranker_dir, {"0.05": 0.0, "0.1": 0.0, "0.25": 0.0, "0.5": 0.0})
    reply = manager(settings, database, retriever, ranker).respond(ORDER_Q)
    scored = [c for c in reply.to_dict()["candidates"] if "score" in c and "blocked" not in c]
    assert len(scored) >= 2
    probabilities = ranker.score(
        [{"role": "customer", "text": ORDER_Q}], [c["text"] for c in scored]
    )
    for candidate, p in zip(scored, probabilities):
        assert candidate["components"]["ranker"] == pytest.approx(p, abs=1e-3)
        assert "critique" in candidate["components"]  # the hand-set score is kept beside it
    best = max(range(len(scored)), key=lambda i: probabilities[i])
    assert reply.text == scored[best]["text"] and reply.confidence == pytest.approx(
        probabilities[best], abs=1e-3
    )
    assert reply.decision == "answer"  # thresholds of 0 on the ranker's scale


def test_thresholds_come_from_the_rankers_validation_picks(shop, tiny_ranker_dir):
    settings, database, retriever = shop
    strict = ranker_with(
        tiny_ranker_dir, {"0.05": 0.999, "0.1": 0.999, "0.25": 0.9999, "0.5": 0.9999}
    )
    reply = manager(settings, database, retriever, strict).respond(ORDER_Q)
    assert (reply.decision, reply.reason) == ("handoff", "low_confidence")
    # the same candidates and scores with the critique's own thresholds when the ranker recorded none
    unknown = ranker_with(tiny_ranker_dir, None)
    reply = manager(
        settings, database, retriever, unknown, handoff_threshold=0.0, answer_threshold=0.0
    ).respond(ORDER_Q)
    assert reply.decision == "answer"


def test_a_round_that_lowers_the_rankers_score_stops_refinement(tiny_ranker_dir):
    ranker = ranker_with(tiny_ranker_dir, None)
    context = [{"role": "customer", "text": "Where is my parcel?"}]
    texts = [
        "You can track your parcel under Orders.",
        "Sorry, no.",
        "Please wait.",
        "Thanks for asking about it.",
    ]
    probability = dict(zip(texts, ranker.score(context, texts)))
    ordered = sorted(texts, key=probability.get, reverse=True)
    draft_text, worse = ordered[0], ordered[-1]  # the revision scores below the draft
    asked = []

    def score(text: str) -> Critique:
        return Critique(
            probability.get(text) or ranker.score(context, [text])[0], {}, ["could be better"]
        )

    def revise(earlier):
        asked.append(len(earlier))
        return worse if len(asked) == 1 else draft_text + " More."

    result = refine(lambda: draft_text, revise, score, max_rounds=3, min_improvement=0.0)
    assert asked == [1] and result.stopped == "no_improvement"
    assert result.best.text == draft_text and [t.round for t in result.trace] == [0, 1]
    assert result.trace[1].kept is False


def test_a_degenerate_revision_stops_refinement_and_never_wins(tiny_ranker_dir):
    def score(text: str) -> Critique:
        return Critique(0.9 if "sorry" in text.lower() else 0.2, {}, ["could be better"])

    result = refine(
        lambda: "Your parcel is on its way.",
        lambda earlier: "We are sorry. We are sorry.",
        score,
        max_rounds=3,
        min_improvement=0.0,
        degenerate=lambda text: "a sentence is repeated" if text.count("sorry") > 1 else None,
    )
    assert result.stopped == "degenerate" and result.best.text == "Your parcel is on its way."
    assert "degenerate: a sentence is repeated" in result.trace[-1].issues


@pytest.mark.parametrize(
    "bad",
    [
        "We are sorry for the trouble. We are sorry for the trouble.",
        ORDER_Q,  # the customer's own words back
    ],
)
def test_a_degenerate_past_answer_is_never_sent(tiny_settings, migrated_database, bad):
    rows = [(ORDER_Q, bad, "imported", "delivery"), *SHOP[1:5]]
    seed_shop(migrated_database, rows)
    retriever = build_retriever(tiny_settings, migrated_database)
    dialogue = tiny_settings.dialogue.model_copy(
        update={
            "generate": False,
            "cache_enabled": False,
            "handoff_threshold": 0.0,
            "answer_threshold": 0.0,
        }
    )
    reply = DialogueManager(
        dialogue,
        migrated_database,
        retriever,
        None,
        PromptFormat.from_settings(tiny_settings.prompt),
    ).respond(ORDER_Q)
    assert bad not in (reply.text, reply.shown_text)
    blocked = [
        c
        for c in reply.to_dict()["candidates"]
        if str(c.get("blocked", "")).startswith("degenerate: ")
    ]
    assert [c["text"] for c in blocked] == [bad]


def test_a_failing_ranker_falls_back_to_the_critique(shop):
    settings, database, retriever = shop

    class Broken:  # a ranker whose scoring raises (its files went missing under it, say)
        meta = {"val_pick_probability": {"0.05": 0.99, "0.25": 0.999}}

        def score(self, context, candidates):
            raise RuntimeError("ranker weights are gone")

    reply = manager(settings, database, retriever, Broken()).respond(ORDER_Q)
    without = manager(settings, database, retriever, None).respond(ORDER_Q)
    assert (
        reply.decision == without.decision and reply.text == without.text
    )  # critique scores and thresholds
    assert all("ranker" not in c.get("components", {}) for c in reply.to_dict()["candidates"])
