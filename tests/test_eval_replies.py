"""`chatbot eval replies`: metrics on known texts, deterministic sampling, and whole
runs with tiny real models (a real temporary store, index, reply model and dialogue
manager): the shape and sanity of every figure, the report files, the live store left
alone except for the promoted version's latest evaluation, and the Twitter set's
document figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.evaluation import metrics as M
from chatbot.evaluation.items import EvalItem, sample

CONVERSATIONS = [
    ("Where is my order? It was supposed to arrive yesterday.", "Track your parcel with the link in your shipping e-mail."),
    ("I would like to return a kettle, how do I do that?", "Returns are free within 30 days; start one under Orders."),
    ("My card was declined but the money left my account.", "The hold on your card is released within 3 working days."),
    ("How do I reset my password for the shop?", "Use the reset link on the sign-in page; it arrives within minutes."),
    ("Can I change the delivery address after ordering?", "Yes, until the parcel ships: Orders, then Change address."),
    ("Do you ship to Norway and Iceland?", "We ship to every EU and EEA country, Norway and Iceland included."),
]
FOLLOW_UP = ("And how long does the refund take after that?", "Refunds reach your card within 5 to 7 working days.")


def write_transcripts(path: Path) -> Path:
    rows = []
    for i, (question, answer) in enumerate(CONVERSATIONS):
        turns = [{"role": "customer", "text": question},
                 {"role": "agent", "text": f"{answer} More: https://help.example.com/a/{i}"}]
        if i == 1:
            turns += [{"role": "customer", "text": FOLLOW_UP[0]}, {"role": "agent", "text": FOLLOW_UP[1]}]
        rows.append({"id": f"shop-{i}", "source": "shop", "turns": turns,
                     "meta": {"doc_id": f"d{i}", "doc_url": f"https://help.example.com/a/{i}"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def env_for(settings, **extra) -> dict[str, str]:
    env = {"CHATBOT_HOME": str(settings.home), "CHATBOT_EMBEDDER_PATH": str(settings.embedder_path),
           "CHATBOT_REPLY_MODEL_PATH": str(settings.reply_model_path), "CHATBOT_DIALOGUE__MAX_NEW_TOKENS": "12"}
    return {**env, **extra}


def run(env, *args):
    return CliRunner().invoke(main, ["eval", "replies", *args], env=env, catch_exceptions=False)


# -- metrics and sampling --------------------------------------------------------------

def test_text_metrics_on_known_texts():
    assert M.rouge_l("Returns are free within 30 days", "Returns are free within 30 days") == pytest.approx(1.0)
    assert M.rouge_l("completely unrelated words", "Returns are free within 30 days") == 0.0
    assert 0 < M.rouge_l("returns are free", "Returns are free within 30 days") < 1
    assert M.rouge_l("", "anything") == 0.0
    assert M.sentence_bleu("the parcel ships today from Berlin", "the parcel ships today from Berlin") == pytest.approx(100)
    assert M.sentence_bleu("nothing in common here", "the parcel ships today") < 10
    assert M.corpus_bleu(["a b c d e", "f g h i j"], ["a b c d e", "f g h i j"]) == pytest.approx(100)
    sims = M.cosine_rows([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], [[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    assert sims.tolist() == pytest.approx([1.0, -1.0, 0.0])


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
    assert M.doc_match("1770", url, "no link", [{"doc_id": "1770"}]) == {"in_text": False, "cited": True, "any": True}
    assert M.doc_match("1770", url, "no link", [{"doc_id": "12"}, {}])["any"] is False


def test_limit_sample_is_deterministic_and_nested():
    items = [EvalItem(f"s/c{i}#1", "s", f"c{i}", 1, [{"role": "customer", "text": "q"}], "a") for i in range(50)]
    ten = sample(items, 10, seed=3)
    assert [i.key for i in ten] == [i.key for i in sample(list(reversed(items)), 10, seed=3)]
    assert {i.key for i in sample(items, 5, seed=3)} <= {i.key for i in ten}
    assert {i.key for i in sample(items, 10, seed=4)} != {i.key for i in ten}
    assert len(sample(items, None)) == 50


# -- whole runs -----------------------------------------------------------------------

def test_retrieval_against_its_own_train_set_scores_perfectly(tiny_settings, tmp_path):
    data = write_transcripts(tmp_path / "shop.jsonl")
    result = run(env_for(tiny_settings), "--train", str(data), "--test", str(data), "--variants", "retrieval",
                 "--val-fraction", "0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["data"]["turns_evaluated"] == len(CONVERSATIONS) + 1
    r = report["variants"]["retrieval"]
    assert r["n"] == len(CONVERSATIONS) + 1
    assert r["rouge_l"] == pytest.approx(1.0)
    assert r["bleu"] == pytest.approx(100.0)
    assert r["embedding_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert r["document"] == {"n": len(CONVERSATIONS), "match_rate": 1.0, "in_text_rate": 1.0, "cited_rate": 1.0}
    assert 0 < r["latency_s"]["p50"] <= r["latency_s"]["p95"]
    follow_up = next(t for t in report["turns"] if t["message"] == FOLLOW_UP[0])
    assert follow_up["history_turns"] == 2 and follow_up["variants"]["retrieval"]["text"] == FOLLOW_UP[1]
    # never the live store: nothing was created in the configured home
    assert not (tiny_settings.home / "chatbot.db").exists()


def test_all_variants_side_by_side_record_the_promoted_versions_evaluation(tiny_settings, tiny_reply_model_dir, tmp_path):
    from chatbot.config import ensure_home
    from chatbot.evaluation.record import evaluation_line
    from chatbot.models.versions import get_version, promote, register_version
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    ensure_home(tiny_settings)
    upgrade(tiny_settings.resolved_database_url)
    live = Database(tiny_settings.resolved_database_url)
    register_version(live, name="v1", path=tiny_reply_model_dir, settings={}, data_snapshot={}, metrics={},
                     evaluation={"val_loss": 2.5})
    promote(live, "v1")
    data = write_transcripts(tmp_path / "shop.jsonl")
    out = tmp_path / "report"
    result = run(env_for(tiny_settings), "--train", str(data), "--test", str(data), "--limit", "3",
                 "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["variants"]) == ["retrieval", "base", "trained", "refined"] and report["skipped"] == {}
    for name, v in report["variants"].items():
        assert v["n"] == 3
        for key in ("rouge_l", "embedding_similarity", "handoff_rate"):
            assert v[key] is not None and -1 <= v[key] <= 1, (name, key)
        assert 0 <= v["bleu"] <= 100
        assert v["latency_s"]["p50"] > 0 and v["latency_s"]["p95"] >= v["latency_s"]["p50"]
    assert report["variants"]["base"]["handoff_rate"] == 0 and report["variants"]["trained"]["model_version"] == "v1"
    assert report["variants"]["refined"]["model_version"] == "v1"
    assert sum(report["variants"]["refined"]["decisions"].values()) == 3
    assert len(report["turns"]) == 3 and all(len(t["variants"]) == 4 for t in report["turns"])
    assert report["recorded_version"] == "v1"
    for name in ("report.json", "report.md", "meta.json", "metrics.png", "latency.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    assert "| trained | 3 |" in (out / "report.md").read_text()
    stored = get_version(live, "v1").evaluation
    live.dispose()
    assert stored["val_loss"] == 2.5  # training's figures are kept
    assert stored["replies"]["variants"]["trained"]["rouge_l"] == report["variants"]["trained"]["rouge_l"]
    assert stored["replies"]["turns"] == 3 and "turns" not in stored["replies"]["variants"]["trained"]
    assert evaluation_line(stored).startswith("ROUGE-L ")
    listed = CliRunner().invoke(main, ["models", "list"], env=env_for(tiny_settings), catch_exceptions=False)
    assert listed.exit_code == 0 and f"latest eval: {evaluation_line(stored)}" in listed.stdout


def test_trained_is_skipped_with_a_note_when_nothing_is_promoted(tiny_settings, tmp_path):
    data = write_transcripts(tmp_path / "shop.jsonl")
    result = run(env_for(tiny_settings), "--train", str(data), "--test", str(data), "--variants", "retrieval,trained",
                 "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "| trained | skipped: the live store" in result.output and "does not exist yet" in result.output
    assert "| retrieval | 2 |" in result.output
    assert not (tiny_settings.home / "chatbot.db").exists()


def test_bad_arguments_are_one_line_errors(tiny_settings, tmp_path):
    data = write_transcripts(tmp_path / "shop.jsonl")
    result = run(env_for(tiny_settings), "--train", str(data), "--test", str(data), "--test-fraction", "0.2")
    assert result.exit_code == 1 and "cannot be combined with --test" in result.output
    result = run(env_for(tiny_settings), "--train", str(data), "--variants", "retrieval,magic")
    assert result.exit_code == 2 and "magic" in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"id": "x", "turns": [{"role": "customer", "text": "hello?"}]}) + "\n")
    result = run(env_for(tiny_settings), "--train", str(data), "--test", str(empty), "--variants", "retrieval")
    assert result.exit_code == 1 and "no test turns" in result.output


def test_twitter_set_held_out_split_has_document_figures(tiny_settings, shared_datasets):
    twitter = shared_datasets / "transcripts" / "ibm_twitter_care.dev.jsonl"
    result = run(env_for(tiny_settings), "--train", str(twitter), "--variants", "retrieval", "--limit", "8", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["data"]["test_from"] == "held-out split of the train files"
    assert report["data"]["turns_available"] > 8 and report["data"]["turns_evaluated"] == 8
    assert report["data"]["index"]["pairs"] > 300
    doc = report["variants"]["retrieval"]["document"]
    assert 1 <= doc["n"] <= 8 and 0 <= doc["match_rate"] <= 1 and doc["match_rate"] >= doc["in_text_rate"]
    # held-out conversations are never in the index: no perfect copy of the agent's reply
    assert report["variants"]["retrieval"]["rouge_l"] < 0.9


@pytest.mark.slow
def test_self_retrieval_on_the_helpdesk_set_with_minilm(tmp_path, shared_datasets):
    """Real MiniLM: the helpdesk conversations answered from an index of themselves."""
    from chatbot.config import load_settings

    helpdesk = shared_datasets / "transcripts" / "stc3_helpdesk_en.train.jsonl"
    settings = load_settings(home=tmp_path / "home")
    env = {"CHATBOT_HOME": str(settings.home)}
    result = run(env, "--train", str(helpdesk), "--test", str(helpdesk), "--variants", "retrieval",
                 "--val-fraction", "0", "--limit", "200", "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)["variants"]["retrieval"]
    assert r["rouge_l"] > 0.95 and r["embedding_similarity"] > 0.95
