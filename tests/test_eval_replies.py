"""`chatbot eval replies`: metrics on known texts, one ROUGE-L for the whole project,
bootstrap intervals on known numbers, deterministic sampling, and whole runs with tiny
real models (a real temporary store, index, reply model and dialogue manager): only
what a customer was sent is scored (a hand-off or a held draft never is), coverage
beside the quality of the answered turns, a 95% interval around every figure, every
held-out turn by default, the report files, the live store left alone except for the
promoted version's latest evaluation, and the Twitter set's document figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.evaluation import metrics as M
from chatbot.evaluation.intervals import Resampler
from chatbot.evaluation.items import EvalItem, sample
from chatbot.text.rouge import rouge_l

CONVERSATIONS = [
    (
        "Where is my order? It was supposed to arrive yesterday.",
        "Track your parcel with the link in your shipping e-mail.",
    ),
    (
        "I would like to return a kettle, how do I do that?",
        "Returns are free within 30 days; start one under Orders.",
    ),
    (
        "My card was declined but the money left my account.",
        "The hold on your card is released within 3 working days.",
    ),
    (
        "How do I reset my password for the shop?",
        "Use the reset link on the sign-in page; it arrives within minutes.",
    ),
    (
        "Can I change the delivery address after ordering?",
        "Yes, until the parcel ships: Orders, then Change address.",
    ),
    (
        "Do you ship to Norway and Iceland?",
        "We ship to every EU and EEA country, Norway and Iceland included.",
    ),
]
FOLLOW_UP = (
    "And how long does the refund take after that?",
    "Refunds reach your card within 5 to 7 working days.",
)


def write_transcripts(path: Path) -> Path:
    rows = []
    for i, (question, answer) in enumerate(CONVERSATIONS):
        turns = [
            {"role": "customer", "text": question},
            {"role": "agent", "text": f"{answer} More: https://help.example.com/a/{i}"},
        ]
        if i == 1:
            turns += [
                {"role": "customer", "text": FOLLOW_UP[0]},
                {"role": "agent", "text": FOLLOW_UP[1]},
            ]
        rows.append(
            {
                "id": f"shop-{i}",
                "source": "shop",
                "turns": turns,
                "meta": {"doc_id": f"d{i}", "doc_url": f"https://help.example.com/a/{i}"},
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def env_for(settings, **extra) -> dict[str, str]:
    env = {
        "CHATBOT_HOME": str(settings.home),
        "CHATBOT_EMBEDDER_PATH": str(settings.embedder_path),
        "CHATBOT_REPLY_MODEL_PATH": str(settings.reply_model_path),
        "CHATBOT_DIALOGUE__MAX_NEW_TOKENS": "12",
    }
    return {**env, **extra}


def run(env, *args):
    return CliRunner().invoke(main, ["eval", "replies", *args], env=env, catch_exceptions=False)


def figures_in(value, path=""):
    """Every {value, low, high} figure in a report, with where it is."""
    if isinstance(value, dict):
        if {"value", "low", "high"} <= set(value):
            yield path, value
        else:
            for k, v in value.items():
                yield from figures_in(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from figures_in(v, f"{path}[{i}]")


def assert_sane_intervals(report) -> int:
    """low <= value <= high for every figure of every variant and comparison; returns how many."""
    count = 0
    for where, f in figures_in(
        {"variants": report["variants"], "comparisons": report["comparisons"]}
    ):
        if f["value"] is None:
            assert f["low"] is None and f["high"] is None, where
            continue
        assert f["low"] <= f["value"] <= f["high"], (where, f)
        count += 1
    return count


# -- metrics and sampling --------------------------------------------------------------


def test_text_metrics_on_known_texts():
    assert rouge_l(
        "Returns are free within 30 days", "Returns are free within 30 days"
    ) == pytest.approx(1.0)
    assert rouge_l("completely unrelated words", "Returns are free within 30 days") == 0.0
    assert 0 < rouge_l("returns are free", "Returns are free within 30 days") < 1
    assert rouge_l("", "anything") == 0.0
    assert rouge_l("the parcels shipped", "parcel ships") == pytest.approx(
        0.8
    )  # stemmed: parcel, ship
    assert M.sentence_bleu(
        "the parcel ships today from Berlin", "the parcel ships today from Berlin"
    ) == pytest.approx(100)
    assert M.sentence_bleu("nothing in common here", "the parcel ships today") < 10
    assert M.corpus_bleu(["a b c d e", "f g h i j"], ["a b c d e", "f g h i j"]) == pytest.approx(
        100
    )
    sims = M.cosine_rows(
        [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], [[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]]
    )
    assert sims.tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_one_rouge_l_for_the_whole_project():
    """The benchmarks, the ranker's validation and `chatbot eval replies` share one
    ROUGE-L (rouge-score's, stemmed, so their figures compare); the dialogue's text
    measures hold none of their own."""
    from rouge_score import rouge_scorer

    from chatbot.text import measures as text

    assert not hasattr(text, "rouge_l")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pairs = [
        ("Your refund was issued today.", "We issued the refunds today, it takes 5 days."),
        ("It's on its way!", "it is on the way"),
        ("Sorry, we can't ship to Canada.", "We don't ship there."),
    ]
    for candidate, reference in pairs:
        expected = scorer.score(reference, candidate)["rougeL"].fmeasure
        assert rouge_l(candidate, reference) == pytest.approx(expected)
    assert rouge_l("the cat sat", "the cat sat") == 1.0
    assert rouge_l("a b c d", "a x c y") == pytest.approx(0.5)
    assert rouge_l("", "x") == 0.0


def test_bleu_statistics_sum_to_corpus_bleu():
    predictions = ["the parcel ships today", "refunds take five days", ""]
    references = ["the parcel ships tomorrow", "refunds take five working days", "sorry"]
    stats = M.bleu_statistics(predictions, references)
    assert stats.shape[0] == 3
    assert M.bleu_from_statistics(stats.sum(axis=0)) == pytest.approx(
        M.corpus_bleu(predictions, references)
    )


def test_bootstrap_intervals_on_known_numbers():
    import numpy as np

    values = np.arange(40, dtype=float) / 40
    rs = Resampler.by_group([f"c{i}" for i in range(40)], resamples=1000, seed=1)
    mean = rs.mean(values)
    assert mean["value"] == pytest.approx(values.mean(), abs=1e-4)
    assert mean["low"] < mean["value"] < mean["high"] and mean["high"] - mean["low"] < 0.25
    assert rs.mean(values, values > 2) == {
        "value": None,
        "low": None,
        "high": None,
    }  # no turn of the kind
    p95 = rs.quantile(values, 0.95)
    assert p95["low"] <= p95["value"] <= p95["high"] <= values.max()
    # Whole conversations are drawn: two conversations of constant values give means from
    # {all of one, half and half, all of the other}, never anything in between.
    rs2 = Resampler.by_group(["a", "a", "b", "b"], resamples=200, seed=0)
    _, samples = rs2.mean_samples([0.0, 0.0, 1.0, 1.0])
    assert set(np.round(samples, 6)) <= {0.0, 0.5, 1.0}
    # Paired: the same resampled turns for both sides, so a constant gap has no spread.
    value, samples = rs.mean_samples(values + 0.1 - values)
    assert value == pytest.approx(0.1) and np.allclose(samples, 0.1)
    with pytest.raises(ValueError):
        Resampler.by_group(["a"], resamples=0)


def test_the_relative_gain_on_turns_both_answered_has_its_own_interval():
    import numpy as np

    from chatbot.evaluation.figures import TurnScores, compare

    def scores(rouge, answered):
        n = len(rouge)
        zeros = np.zeros(n)
        return TurnScores(
            answered=np.asarray(answered, dtype=bool),
            rouge_l=np.asarray(rouge, dtype=float),
            embedding_similarity=np.asarray(rouge, dtype=float),
            sentence_bleu=zeros,
            bleu_stats=np.zeros((n, 10)),
            seconds=zeros,
            doc_applies=np.zeros(n, dtype=bool),
            doc_any=np.zeros(n, dtype=bool),
            doc_in_text=np.zeros(n, dtype=bool),
            doc_cited=np.zeros(n, dtype=bool),
        )

    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, 60)
    a = scores(np.where(np.arange(60) < 50, base, 0.9), np.arange(60) < 50)  # 10 unanswered
    b = scores(base * 1.25, [True] * 60)  # a quarter above a on every turn
    rs = Resampler.by_group([f"c{i}" for i in range(60)], resamples=500, seed=0)
    relative = compare(rs, "a", a, "b", b)["both_answered"]["relative"]["rouge_l"]
    # a - b as a share of a, over the 50 turns both answered only (a's 0.9 on its
    # unanswered turns never counts)
    assert relative["value"] == pytest.approx(-0.25, abs=1e-4)
    assert relative["high"] == pytest.approx(-0.25, abs=1e-4) and relative["better"] == "b"
    noisy = scores(base * rng.uniform(0.8, 1.2, 60), [True] * 60)
    around = compare(rs, "noisy", noisy, "a", scores(base, [True] * 60))["both_answered"]
    assert around["relative"]["rouge_l"]["low"] < around["relative"]["rouge_l"]["value"]
    assert around["relative"]["rouge_l"]["value"] < around["relative"]["rouge_l"]["high"]


def test_latency_summary():
    summary = M.latency_summary([0.1 * i for i in range(1, 101)])
    assert summary["p50"] == pytest.approx(5.05) and summary["p95"] == pytest.approx(9.505)
    assert summary["max"] == pytest.approx(10.0)
    assert M.latency_summary([]) == {"p50": None, "p95": None, "mean": None, "max": None}


def test_document_match_by_url_or_citation():
    url = "https://web.archive.org/web/20200401224734/https://support.google.com/youtube/answer/185111"
    assert M.text_points_to("Here's how: https://support.google.com/youtube/answer/185111.", url)
    assert M.text_points_to(f"see {url}", url)
    assert not M.text_points_to("see https://support.google.com/youtube/answer/999", url)
    assert M.doc_match("1770", url, "no link", [{"doc_id": "1770"}]) == {
        "in_text": False,
        "cited": True,
        "any": True,
    }
    assert M.doc_match("1770", url, "no link", [{"doc_id": "12"}, {}])["any"] is False


def test_limit_sample_is_deterministic_and_nested():
    items = [
        EvalItem(f"s/c{i}#1", "s", f"c{i}", 1, [{"role": "customer", "text": "q"}], "a")
        for i in range(50)
    ]
    ten = sample(items, 10, seed=3)
    assert [i.key for i in ten] == [i.key for i in sample(list(reversed(items)), 10, seed=3)]
    assert {i.key for i in sample(items, 5, seed=3)} <= {i.key for i in ten}
    assert {i.key for i in sample(items, 10, seed=4)} != {i.key for i in ten}
    assert len(sample(items, None)) == 50


# -- whole runs -----------------------------------------------------------------------


def test_retrieval_against_its_own_train_set_scores_perfectly(tiny_settings, tmp_path):
    data = write_transcripts(tmp_path / "shop.jsonl")
    result = run(
        env_for(tiny_settings),
        "--train",
        str(data),
        "--test",
        str(data),
        "--variants",
        "retrieval",
        "--val-fraction",
        "0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    turns = len(CONVERSATIONS) + 1
    assert (
        report["data"]["turns_evaluated"] == report["data"]["turns_available"] == turns
    )  # all, by default
    assert report["data"]["limit"] is None and report["data"]["conversations_evaluated"] == len(
        CONVERSATIONS
    )
    r = report["variants"]["retrieval"]
    assert r["n"] == r["answered_n"] == turns
    assert r["coverage"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    a = r["answered"]
    assert (
        a["n"] == turns
        and a["rouge_l"]["value"] == pytest.approx(1.0)
        and a["bleu"]["value"] == pytest.approx(100.0)
    )
    assert a["embedding_similarity"]["value"] == pytest.approx(1.0, abs=1e-4)
    assert r["all_turns"]["rouge_l"]["value"] == pytest.approx(1.0)
    assert a["document"]["n"] == len(CONVERSATIONS) and a["document"]["match_rate"]["value"] == 1.0
    assert a["document"]["in_text_rate"]["value"] == a["document"]["cited_rate"]["value"] == 1.0
    assert 0 < r["latency_s"]["p50"]["value"] <= r["latency_s"]["p95"]["value"]
    assert assert_sane_intervals(report) >= 10 and report["comparisons"] == []
    assert report["data"]["intervals"]["resamples"] == 1000
    follow_up = next(t for t in report["turns"] if t["message"] == FOLLOW_UP[0])
    assert (
        follow_up["history_turns"] == 2
        and follow_up["variants"]["retrieval"]["text"] == FOLLOW_UP[1]
    )
    assert follow_up["variants"]["retrieval"]["answered"] is True
    # never the live store: nothing was created in the configured home
    assert not (tiny_settings.home / "chatbot.db").exists()


def test_all_variants_side_by_side_record_the_promoted_versions_evaluation(
    tiny_settings, tiny_reply_model_dir, tmp_path
):
    from chatbot.config import ensure_home
    from chatbot.evaluation.record import evaluation_line
    from chatbot.models.versions import get_version, promote, register_version
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    ensure_home(tiny_settings.paths)
    upgrade(tiny_settings.resolved_database_url)
    live = Database(tiny_settings.resolved_database_url)
    register_version(
        live,
        name="v1",
        path=tiny_reply_model_dir,
        settings={},
        data_snapshot={},
        metrics={},
        evaluation={"val_loss": 2.5},
    )
    promote(live, "v1")
    data = write_transcripts(tmp_path / "shop.jsonl")
    out = tmp_path / "report"
    result = run(
        env_for(tiny_settings),
        "--train",
        str(data),
        "--test",
        str(data),
        "--limit",
        "3",
        "--out",
        str(out),
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["variants"]) == ["knn", "retrieval", "base", "trained", "refined"]
    assert (
        list(report["skipped"]) == ["ranker"]
        and "no ranker could be trained" in report["skipped"]["ranker"]
    )
    assert (
        report["data"]["turns_evaluated"] == 3
        and report["data"]["turns_available"] == len(CONVERSATIONS) + 1
    )
    for name, v in report["variants"].items():
        assert v["n"] == 3 and 0 <= v["answered_n"] <= 3
        assert v["coverage"]["value"] == pytest.approx(v["answered_n"] / 3, abs=1e-4)
        if v["answered_n"]:
            for key in ("rouge_l", "embedding_similarity"):
                assert -1 <= v["answered"][key]["value"] <= 1, (name, key)
            assert 0 <= v["answered"]["bleu"]["value"] <= 100
        assert (
            v["latency_s"]["p50"]["value"] > 0
            and v["latency_s"]["p95"]["value"] >= v["latency_s"]["p50"]["value"]
        )
    assert (
        report["variants"]["base"]["coverage"]["value"] == 1.0
        and report["variants"]["trained"]["model_version"] == "v1"
    )
    # refined drafts with the promoted version where it generates at all (a confident retrieved answer is sent at once)
    assert report["variants"]["refined"]["model_version"] in (None, "v1")
    assert "refined: the dialogue manager drafts with v1" in report["notes"]
    assert sum(report["variants"]["refined"]["decisions"].values()) == 3
    # every pair of variants compared, paired, with a verdict
    assert [(c["a"], c["b"]) for c in report["comparisons"]] == [
        ("knn", "retrieval"),
        ("knn", "base"),
        ("knn", "trained"),
        ("knn", "refined"),
        ("retrieval", "base"),
        ("retrieval", "trained"),
        ("retrieval", "refined"),
        ("base", "trained"),
        ("base", "refined"),
        ("trained", "refined"),
    ]
    assert all(c["verdict"] for c in report["comparisons"])
    assert assert_sane_intervals(report) > 50
    assert len(report["turns"]) == 3 and all(len(t["variants"]) == 5 for t in report["turns"])
    assert report["recorded_version"] == "v1"
    for name in ("report.json", "report.md", "meta.json", "metrics.png", "latency.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert (
        "| trained | 3 |" in md
        and "3 of 7 test turns" in md
        and "--limit 3" in md
        and "Paired differences" in md
    )
    stored = get_version(live, "v1").evaluation
    live.dispose()
    assert stored["val_loss"] == 2.5  # training's figures are kept
    assert (
        stored["replies"]["variants"]["trained"]["answered"]
        == report["variants"]["trained"]["answered"]
    )
    assert (
        stored["replies"]["turns"] == 3 and "turns" not in stored["replies"]["variants"]["trained"]
    )
    assert len(stored["replies"]["comparisons"]) == 10
    assert evaluation_line(stored).startswith("answered 100% [100, 100] · ROUGE-L ")
    assert "(3 of 7 turns of shop.jsonl" in evaluation_line(stored)
    listed = CliRunner().invoke(
        main, ["models", "list"], env=env_for(tiny_settings), catch_exceptions=False
    )
    assert listed.exit_code == 0 and f"latest eval: {evaluation_line(stored)}" in listed.stdout


def test_trained_is_skipped_with_a_note_when_nothing_is_promoted(tiny_settings, tmp_path):
    data = write_transcripts(tmp_path / "shop.jsonl")
    result = run(
        env_for(tiny_settings),
        "--train",
        str(data),
        "--test",
        str(data),
        "--variants",
        "retrieval,trained",
        "--limit",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert (
        "| trained | skipped: the live store" in result.output
        and "does not exist yet" in result.output
    )
    assert "| retrieval | 2 |" in result.output
    assert "Evaluated 2 of 7 test turns" in result.output and "a quick run" in result.output
    assert not (tiny_settings.home / "chatbot.db").exists()


def test_bad_arguments_are_one_line_errors(tiny_settings, tmp_path):
    data = write_transcripts(tmp_path / "shop.jsonl")
    result = run(
        env_for(tiny_settings), "--train", str(data), "--test", str(data), "--test-fraction", "0.2"
    )
    assert result.exit_code == 1 and "cannot be combined with --test" in result.output
    result = run(env_for(tiny_settings), "--train", str(data), "--variants", "retrieval,magic")
    assert result.exit_code == 2 and "magic" in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text(
        json.dumps({"id": "x", "turns": [{"role": "customer", "text": "hello?"}]}) + "\n"
    )
    result = run(
        env_for(tiny_settings),
        "--train",
        str(data),
        "--test",
        str(empty),
        "--variants",
        "retrieval",
    )
    assert result.exit_code == 1 and "no test turns" in result.output


def test_twitter_set_every_held_out_turn_by_default_with_document_figures(
    tiny_settings, shared_datasets
):
    twitter = shared_datasets / "transcripts" / "ibm_twitter_care.dev.jsonl"
    result = run(
        env_for(tiny_settings), "--train", str(twitter), "--variants", "retrieval", "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    data = report["data"]
    assert data["test_from"] == "held-out split of the train files"
    assert (
        data["limit"] is None and data["turns_evaluated"] == data["turns_available"] > 16
    )  # all, not a sample
    assert data["index"]["pairs"] > 300
    r = report["variants"]["retrieval"]
    assert r["n"] == data["turns_evaluated"]
    assert r["answered_n"] == sum(t["variants"]["retrieval"]["answered"] for t in report["turns"])
    doc = r["all_turns"]["document"]
    assert 1 <= doc["n"] <= data["turns_evaluated"] and 0 <= doc["match_rate"]["value"] <= 1
    if r["answered_n"]:
        assert (
            r["answered"]["document"]["match_rate"]["value"]
            >= r["answered"]["document"]["in_text_rate"]["value"]
        )
        # held-out conversations are never in the index: no perfect copy of the agent's reply
        assert r["answered"]["rouge_l"]["value"] < 0.9
        # a real spread of turns: the intervals are not degenerate
        assert r["answered"]["rouge_l"]["low"] < r["answered"]["rouge_l"]["high"]
    assert assert_sane_intervals(report) >= 10


def test_a_handed_off_or_held_turn_is_not_scored_as_sent(tiny_settings, tmp_path):
    """The refined manager made to hold every reply for an agent (review_mode=hold, no
    confidence reaches the answer threshold) or to hand every turn off: what it drafted
    is the agent's reply itself (the test turns are indexed), so scoring it as if sent
    would give ROUGE-L 1; nothing was sent, so nothing is scored, coverage is 0, and the
    all-turns figure counts each turn as 0."""
    data = write_transcripts(tmp_path / "shop.jsonl")
    common = [
        "--train",
        str(data),
        "--test",
        str(data),
        "--val-fraction",
        "0",
        "--no-record",
        "--json",
    ]
    quiet = {
        "CHATBOT_DIALOGUE__GENERATE": "false",
        "CHATBOT_DIALOGUE__CACHE_ENABLED": "false",
        "CHATBOT_DIALOGUE__ANSWER_THRESHOLD": "1.0",
    }
    held = run(
        env_for(
            tiny_settings,
            **quiet,
            CHATBOT_DIALOGUE__HANDOFF_THRESHOLD="0.0",
            CHATBOT_DIALOGUE__REVIEW_MODE="hold",
        ),
        *common,
        "--variants",
        "retrieval,refined",
    )
    assert held.exit_code == 0, held.output
    report = json.loads(held.stdout)
    turns = report["turns"]
    decisions = [t["variants"]["refined"]["decision"] for t in turns]
    assert decisions.count("held") >= len(turns) - 1, decisions
    for t in turns:
        v = t["variants"]["refined"]
        if v["decision"] == "held":
            assert v["answered"] is False and v["text"] == "" and v["shown_text"] == ""
            assert (
                v["unsent"]
                and v["rouge_l"] is None
                and v["embedding_similarity"] is None
                and v["bleu"] is None
            )
            if "document" in v:  # the turn where the agent sent a help document
                assert v["document"] == {"in_text": False, "cited": False, "any": False}
    # what was held is the agent's own reply: scored as if sent it would have been perfect
    assert max(rouge_l(t["variants"]["refined"]["unsent"], t["reference"]) for t in turns) > 0.9
    refined = report["variants"]["refined"]
    n_held = decisions.count("held")
    assert refined["answered_n"] == len(turns) - n_held
    assert refined["coverage"]["value"] == pytest.approx(
        refined["answered_n"] / len(turns), abs=1e-4
    )
    if refined["answered_n"] == 0:
        assert refined["answered"]["rouge_l"] == {"value": None, "low": None, "high": None}
        assert refined["all_turns"]["rouge_l"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    # retrieval answered every turn perfectly; the comparison says it answers more
    comparison = report["comparisons"][0]
    assert (comparison["a"], comparison["b"]) == ("retrieval", "refined")
    assert comparison["both_answered"]["n"] == refined["answered_n"]
    if refined["answered_n"] == 0:
        assert (
            comparison["coverage"]["better"] == "retrieval"
            and "retrieval answers more" in comparison["verdict"]
        )
        assert comparison["all_turns"]["rouge_l"]["better"] == "retrieval"
    assert assert_sane_intervals(report) > 10

    handed = run(
        env_for(tiny_settings, **quiet, CHATBOT_DIALOGUE__HANDOFF_THRESHOLD="1.0"),
        *common,
        "--variants",
        "refined",
        "--limit",
        "3",
    )
    assert handed.exit_code == 0, handed.output
    report = json.loads(handed.stdout)
    for t in report["turns"]:
        v = t["variants"]["refined"]
        assert v["decision"] == "handoff" and v["answered"] is False
        assert (
            v["text"] == "" and v["rouge_l"] is None
        )  # the hand-off notice is shown, never scored
        assert v["shown_text"] and v["shown_text"] == tiny_settings.dialogue.handoff_message
    refined = report["variants"]["refined"]
    assert refined["answered_n"] == 0 and refined["coverage"]["value"] == 0.0
    assert refined["decisions"] == {"handoff": 3}


@pytest.mark.slow
def test_self_retrieval_on_the_helpdesk_set_with_minilm(tmp_path, shared_datasets):
    """Real MiniLM: the helpdesk conversations answered from an index of themselves."""
    from chatbot.settings import load_settings

    helpdesk = shared_datasets / "transcripts" / "stc3_helpdesk_en.train.jsonl"
    settings = load_settings(home=tmp_path / "home")
    env = {"CHATBOT_HOME": str(settings.home)}
    result = run(
        env,
        "--train",
        str(helpdesk),
        "--test",
        str(helpdesk),
        "--variants",
        "retrieval",
        "--val-fraction",
        "0",
        "--limit",
        "200",
        "--json",
    )
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)["variants"]["retrieval"]
    assert r["coverage"]["value"] >= 0.95  # its own questions: in scope
    assert (
        r["answered"]["rouge_l"]["value"] > 0.95
        and r["answered"]["embedding_similarity"]["value"] > 0.95
    )


def test_knn_floor_and_refinement_round_variants(tiny_settings, tmp_path):
    """`knn` finds each conversation by its customer messages (against its own train set
    it sends the agent's very reply, the follow-up included); `refined@N` runs the dialogue
    manager with N rounds and a draft on every turn; bad variant names are refused."""
    data = write_transcripts(tmp_path / "shop.jsonl")
    result = run(
        env_for(tiny_settings),
        "--train",
        str(data),
        "--test",
        str(data),
        "--variants",
        "refined@1,knn,retrieval,refined@0",
        "--val-fraction",
        "0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["variants"]) == ["knn", "retrieval", "refined@0", "refined@1"]
    knn = report["variants"]["knn"]
    assert knn["coverage"]["value"] == 1.0 and knn["answered"]["rouge_l"]["value"] == pytest.approx(
        1.0
    )
    follow_up = next(t for t in report["turns"] if t["message"] == FOLLOW_UP[0])
    assert follow_up["variants"]["knn"]["text"] == FOLLOW_UP[1]
    for name in ("refined@0", "refined@1"):
        assert sum(report["variants"][name]["decisions"].values()) == len(CONVERSATIONS) + 1
    assert any(
        "ranker: not trained" in note for note in report["notes"]
    )  # too few pairs to learn a ranker from
    for bad in ("knn@1", "refined@x", "refined@9", "magic"):
        refused = run(env_for(tiny_settings), "--train", str(data), "--variants", bad)
        assert refused.exit_code == 2 and bad in refused.output
