"""The dialogue stages on their own: refinement's stopping rule, the scoring function,
hand-off phrasings, smoothing and the decision bands, the settings' checks, and the
`ask` / `chat` commands. (The migration chain is tested in test_store.py.)"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.dialogue.critique import Evidence, EvidenceItem, Scorer
from chatbot.dialogue.handoff import asks_for_human, repeats
from chatbot.dialogue.policy import decide, smooth
from chatbot.dialogue.records import Critique
from chatbot.dialogue.refine import refine
from chatbot.dialogue.settings import DialogueSettings
from chatbot.errors import ConfigError
from chatbot.settings import load_settings
from chatbot.text.measures import extract_facts
from tests.test_dialogue_support import SHOP, make_manager, shop  # noqa: F401

# -- refinement ----------------------------------------------------------------------


def scripted(scores):
    """draft/revise/score functions whose texts score as listed, in order."""
    texts = iter(f"text {i}" for i in range(len(scores)))
    table = {f"text {i}": s for i, s in enumerate(scores)}
    seen = []

    def revise(earlier):
        seen.append([c.text for c in earlier])
        return next(texts)

    return (
        (lambda: next(texts)),
        revise,
        (lambda t: Critique(table[t], {}, ["could be better"])),
        seen,
    )


def test_refinement_stops_when_the_score_stops_improving():
    draft, revise, score, seen = scripted([0.4, 0.6, 0.55, 0.9])
    result = refine(draft, revise, score, max_rounds=5, min_improvement=0.01)
    assert [t.score for t in result.trace] == [0.4, 0.6, 0.55]  # the 0.9 is never written
    assert result.stopped == "no_improvement" and result.best.text == "text 1"
    assert [t.kept for t in result.trace] == [True, True, False]
    assert seen == [["text 0"], ["text 0", "text 1"]]  # each revision sees the earlier drafts


def test_refinement_needs_more_than_min_improvement_and_respects_max_rounds():
    draft, revise, score, _ = scripted([0.4, 0.405, 0.9])
    result = refine(draft, revise, score, max_rounds=5, min_improvement=0.01)
    assert (
        result.stopped == "no_improvement" and len(result.trace) == 2 and result.best.score == 0.405
    )
    draft, revise, score, _ = scripted([0.1, 0.2, 0.3, 0.4])
    result = refine(draft, revise, score, max_rounds=2, min_improvement=0.01)
    assert result.stopped == "max_rounds" and [t.round for t in result.trace] == [0, 1, 2]
    draft, revise, score, _ = scripted([0.1])
    assert len(refine(draft, revise, score, max_rounds=0, min_improvement=0.0).trace) == 1


def test_refinement_stops_when_nothing_is_left_to_fix():
    result = refine(
        lambda: "fine",
        lambda e: pytest.fail("no revision needed"),
        lambda t: Critique(0.8, {}, []),
        max_rounds=3,
        min_improvement=0.0,
    )
    assert result.stopped == "no_issues" and len(result.trace) == 1


# -- scoring -------------------------------------------------------------------------

EVIDENCE = Evidence(
    query="How do I return a kettle?",
    history=[],
    items=[
        EvidenceItem(
            1,
            "How can I return an item?",
            "Returns are free within 30 days; start one under Orders > Return items.",
            0.9,
        ),
        EvidenceItem(
            2,
            "I want to send a toaster back",
            "You can return it within 30 days under Orders > Return items, for free.",
            0.8,
        ),
        EvidenceItem(
            3,
            "Where is my parcel?",
            "Track your parcel with the link in your dispatch e-mail.",
            0.3,
        ),
    ],
    customer_texts=["my email is ann@example.org"],
)
GOOD = "You can return the kettle for free within 30 days: start the return under Orders > Return items."


def test_a_grounded_relevant_reply_beats_an_off_topic_one():
    scorer = Scorer(DialogueSettings())
    good, off = (
        scorer.score(GOOD, EVIDENCE),
        scorer.score("Track your parcel with the link in your dispatch e-mail.", EVIDENCE),
    )
    assert (
        good.score > off.score + 0.2 and good.components["relevance"] > off.components["relevance"]
    )


@pytest.mark.parametrize(
    "addition, component",
    [
        (" Visit https://kettle-returns.com for a label.", "invented"),
        (" We will also give you a 20 EUR voucher.", "invented"),
        (" It takes 45 days.", "invented"),
        (" Or call +44 20 7946 0999.", "personal_data"),
        (" Write to bob.smith@example.com for help.", "personal_data"),
    ],
)
def test_invented_facts_and_personal_data_are_penalised(addition, component):
    scorer = Scorer(DialogueSettings())
    clean, dirty = scorer.score(GOOD, EVIDENCE), scorer.score(GOOD + addition, EVIDENCE)
    assert dirty.components[component] >= 1 and dirty.score < clean.score - 0.1
    assert any("remove" in issue for issue in dirty.issues)


def test_facts_the_customer_gave_or_the_evidence_holds_are_not_invented():
    scorer = Scorer(DialogueSettings())
    critique = scorer.score(GOOD + " We'll write to ann@example.org.", EVIDENCE)
    assert critique.components["personal_data"] == 0 and critique.components["invented"] == 0


def test_repetition_and_length_are_judged():
    scorer = Scorer(DialogueSettings(max_words=30))
    repeated = scorer.score("Returns are free. " * 12, EVIDENCE)
    assert repeated.components["fluency"] < 0.5 and repeated.components["length"] < 1
    assert scorer.score("", EVIDENCE).score == 0.0
    assert scorer.score("Returns.", EVIDENCE).components["length"] < 1


def test_a_retrieved_answer_is_not_supported_by_itself():
    scorer = Scorer(DialogueSettings())
    own = scorer.score(EVIDENCE.items[0].answer, EVIDENCE, own_pair_id=1)
    anonymous = scorer.score(EVIDENCE.items[0].answer, EVIDENCE)
    assert own.components["support"] < anonymous.components["support"] - 0.2
    assert own.components["relevance"] == pytest.approx(EVIDENCE.question_fit[1], abs=1e-3)


def test_extract_facts_normalises():
    facts = extract_facts(
        "See https://help.northwindgoods.example/returns. or call +44 20 7946 0123; it's 4.95 EUR."
    )
    assert "help.northwindgoods.example/returns" in facts.urls
    assert "442079460123" in facts.phones and "4.95" in facts.prices
    assert (
        extract_facts("Steps:\n1. Sign in.\n2) Open Orders.").numbers == set()
    )  # numbering is no fact


# -- hand-off signals, smoothing, decisions ------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Can I talk to a real person please?",
        "i'd rtaher talk to a human about this",
        "I want to sepak to a manager",
        "agent please",
        "no, I want a human, not a bot",
        "just get me someone from ur team",
        "HUMAN",
        "representative",
        "could you connect me with a live agent",
        "I'd like a person to call me back",
        "transfer me to customer service staff",
    ],
)
def test_requests_for_a_human_are_recognised(text):
    assert asks_for_human(text)


@pytest.mark.parametrize(
    "text",
    [
        "Where is my order?",
        "My agent at the bank says the card is fine",
        "how do I return a kettle",
        "the delivery person left it at the door",
        "can I change my email address?",
        "thanks, that helps",
    ],
)
def test_ordinary_questions_are_not_requests_for_a_human(text):
    assert not asks_for_human(text)


def test_repeats_counts_similar_questions():
    earlier = ["where is my order", "Where is my ordr?", "how do refunds work"]
    assert repeats("Where is my order?", earlier, similarity=0.8) == 3
    assert repeats("Where is my order?", earlier[2:], similarity=0.8) == 1


def test_smoothing_keeps_one_odd_turn_from_handing_off():
    settings = DialogueSettings(answer_threshold=0.6, handoff_threshold=0.4, smoothing=0.5)
    smoothed = smooth(0.8, 0.2, 0.5)
    assert smoothed == pytest.approx(0.5)
    assert decide(settings, confidence=0.2, smoothed=smoothed) == ("answer_flagged", "needs_review")
    assert decide(settings, confidence=0.2, smoothed=0.2) == ("handoff", "low_confidence")
    assert decide(settings, confidence=0.9, smoothed=0.9) == ("answer", "confident")
    assert decide(DialogueSettings(review_mode="hold"), confidence=0.4, smoothed=0.5)[0] == "held"
    assert smooth(None, 0.3, 0.5) == 0.3


def test_settings_are_checked(monkeypatch):
    with pytest.raises(ConfigError, match="handoff_threshold"):
        load_settings(dialogue={"handoff_threshold": 0.9, "answer_threshold": 0.5})
    monkeypatch.setenv("CHATBOT_DIALOGUE__MAX_ROUNDS", "0")
    monkeypatch.setenv("CHATBOT_DIALOGUE__QUANTIZE", "int8")
    settings = load_settings()
    assert settings.dialogue.max_rounds == 0 and settings.dialogue.quantize == "int8"
    with pytest.raises(ConfigError, match="dialogue"):
        load_settings(dialogue={"no_such_key": 1})


# -- the commands ----------------------------------------------------------------------


def test_ask_without_an_index_points_to_import_and_index(tmp_path):
    home = tmp_path / "home"
    runner = CliRunner()
    env = {"CHATBOT_HOME": str(home)}
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(main, ["ask", "where is my order?"], env=env)
    assert result.exit_code == 1
    assert "chatbot import" in result.output and "chatbot index" in result.output


def test_ask_and_chat_print_the_reply_with_its_decision(shop, monkeypatch):
    settings, database, retriever, ids = shop
    from chatbot.cli import dialogue as cli_dialogue

    monkeypatch.setattr(
        cli_dialogue,
        "build_manager",
        lambda _settings: (make_manager(settings, database, retriever, max_rounds=0), database),
    )
    runner = CliRunner()
    result = runner.invoke(main, ["ask", SHOP[1][0], "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["decision"] == "answer" and payload["text"] == SHOP[1][1]
    assert payload["citations"][0]["pair_id"] == ids[SHOP[1][0]] and payload["confidence"] > 0

    result = runner.invoke(
        main,
        ["ask", "I want to talk to a human", "--conversation", str(payload["conversation_id"])],
    )
    assert (
        result.exit_code == 0
        and "human colleague" in result.output
        and "handed off" in result.output
    )

    result = runner.invoke(main, ["chat"], input=f"{SHOP[1][0]}\nagent please\nhello?\n\n")
    assert result.exit_code == 0, result.output
    assert (
        SHOP[1][1] in result.output
        and "human colleague" in result.output
        and "stays silent" in result.output
    )

    result = runner.invoke(main, ["ask", "hi", "--conversation", "999999"])
    assert result.exit_code == 1 and "conversation 999999 does not exist" in result.output


# -- the reply's records and their stored form ----------------------------------------


def test_reply_records_keep_the_stored_json_form():
    """Each kind of kept candidate serialises to exactly the object the store's
    `candidates` column has always held (keys, order and values)."""
    from chatbot.dialogue.records import (
        Blocked,
        BlockedCandidate,
        CachedCandidate,
        GenerationFailure,
        Origin,
        ScoredCandidate,
    )

    def as_stored(record):
        return list(record.to_json().items())

    assert as_stored(CachedCandidate(3, 0.91, "Yes.")) == [
        ("origin", "cache"),
        ("pair_id", 3),
        ("score", 0.91),
        ("text", "Yes."),
    ]
    assert as_stored(CachedCandidate(3, 0.91, "Yes.", {"ranker": 0.8}))[-1] == (
        "components",
        {"ranker": 0.8},
    )
    assert as_stored(ScoredCandidate(Origin.DRAFT, 0, None, 0.7, "Hi", {"relevance": 1.0})) == [
        ("origin", "draft"),
        ("round", 0),
        ("pair_id", None),
        ("score", 0.7),
        ("text", "Hi"),
        ("components", {"relevance": 1.0}),
    ]
    # A candidate repeating the system prompt keeps no text.
    assert as_stored(BlockedCandidate(Origin.REVISION, 1, None, Blocked.PROMPT)) == [
        ("origin", "revision"),
        ("round", 1),
        ("pair_id", None),
        ("blocked", "repeats the system prompt"),
    ]
    degenerate = BlockedCandidate(Origin.DRAFT, 0, None, Blocked.DEGENERATE, "empty", text="")
    assert as_stored(degenerate) == [
        ("origin", "draft"),
        ("round", 0),
        ("pair_id", None),
        ("text", ""),
        ("blocked", "degenerate: empty"),
    ]
    foreign = BlockedCandidate(Origin.CACHE, None, 4, Blocked.SPECIFICS, "NW-1", "x", None)
    assert as_stored(foreign) == [
        ("origin", "cache"),
        ("round", None),
        ("pair_id", 4),
        ("score", None),
        ("text", "x"),
        ("blocked", "another customer's specifics: NW-1"),
    ]
    assert GenerationFailure("RuntimeError: boom").to_json() == {"error": "RuntimeError: boom"}


def test_decisions_are_the_stored_ones():
    from chatbot.dialogue.records import Decision, ReplyPath, reply_path
    from chatbot.store.dialogue_schema import REPLY_DECISIONS

    assert tuple(Decision) == REPLY_DECISIONS
    with pytest.raises(ValueError):
        Decision("answered")  # a typo is an error, not a new state
    assert reply_path(Decision.HELD, "needs_review: draft won", []) is ReplyPath.HELD
