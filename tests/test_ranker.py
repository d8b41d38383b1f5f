"""The learned ranker (cross-encoder) on a real store and index with tiny real models:
the query text it reads, a training run that learns to prefer the true reply and is
written, registered and promoted by the acceptance rule, agents' rejections as
negatives, too few pairs, a damaged version, the source serving reads, the CLI; and
(slow) a run from the real all-MiniLM-L6-v2 on the demo shop's pairs."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatbot.config import ensure_home
from chatbot.settings import load_settings

# Fifteen topics, each with its own answer; the agent's words echo the customer's, as
# real answers do, so the ranker has something to learn in a few seconds.
TOPICS = [
    (
        "kettle",
        "leaks water",
        "A kettle that leaks water is covered by the warranty: we send a new kettle at once.",
    ),
    (
        "password",
        "reset mail never arrives",
        "Password reset mails sometimes land in spam; ask for a new reset mail on the sign-in page.",
    ),
    (
        "parcel",
        "shows delivered but is missing",
        "A parcel shown as delivered but missing is traced with the courier within two days.",
    ),
    (
        "voucher",
        "code is rejected at checkout",
        "Voucher codes are rejected when the basket is under the minimum; add items and the voucher works.",
    ),
    (
        "invoice",
        "has the wrong address",
        "We reissue the invoice with the right address; reply with the address for the invoice.",
    ),
    (
        "blender",
        "blade is broken",
        "A broken blender blade is a spare part: we post a new blade free of charge.",
    ),
    (
        "subscription",
        "renewed without asking",
        "Subscriptions renew each year; we cancel the renewal and refund the subscription fee.",
    ),
    (
        "sofa",
        "arrived with a torn cushion",
        "A torn sofa cushion is replaced: our furniture team brings a new cushion for the sofa.",
    ),
    (
        "newsletter",
        "keeps coming after unsubscribing",
        "Newsletter unsubscribes take two days; after that no newsletter reaches you.",
    ),
    (
        "gift card",
        "balance is zero",
        "A gift card balance of zero means it was spent; send the gift card number and we check the balance.",
    ),
    (
        "headphones",
        "only play on one side",
        "Headphones playing on one side need a firmware update; update the headphones in the app.",
    ),
    (
        "bike",
        "is missing its pedals",
        "Bike pedals ship in a separate small box inside the bike carton; look for the pedals box.",
    ),
    (
        "lamp",
        "flickers all the time",
        "A flickering lamp usually has a loose bulb; tighten the bulb or we swap the lamp.",
    ),
    (
        "account",
        "was locked after login attempts",
        "Accounts lock after five wrong logins; the account unlocks itself after one hour.",
    ),
    (
        "umbrella",
        "snapped in the wind",
        "An umbrella that snapped in the wind is covered for one year; we replace the umbrella.",
    ),
]
QUESTIONS = [
    "Hi, my {thing} {problem}. What now?",
    "Hello there, the {thing} {problem}, can you help?",
    "Why is it that my {thing} {problem}?",
    "Good morning. Quick one: {thing} {problem} - please advise",
]
OPENERS = ["", "Thanks for getting in touch. ", "Sorry about that! ", "Hello, thanks for writing. "]
FOLLOW_UP = (
    "Thanks. And how long will the {thing} take?",
    "For the {thing} that usually takes {days} working days.",
)


def write_transcripts(path: Path, topics=TOPICS, per_topic: int = 4) -> Path:
    rows = []
    for t, (thing, problem, answer) in enumerate(topics):
        for v in range(per_topic):
            turns = [
                {
                    "role": "customer",
                    "text": QUESTIONS[v % len(QUESTIONS)].format(thing=thing, problem=problem),
                },
                {"role": "agent", "text": OPENERS[v % len(OPENERS)] + answer},
            ]
            if v == 1 and t < 3:  # a few conversations go on: the ranker reads the history too
                turns += [
                    {"role": "customer", "text": FOLLOW_UP[0].format(thing=thing)},
                    {"role": "agent", "text": FOLLOW_UP[1].format(thing=thing, days=2 + t % 5)},
                ]
            rows.append(
                {"id": f"conv-{t}-{v}", "source": "shop", "turns": turns, "meta": {"topic": thing}}
            )
    random.Random(0).shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# A tiny cross-encoder from random weights needs a high learning rate and many
# small steps (measured: 675 steps, preference 0.49 -> 0.88); the clock is not the limit.
TINY_RANKER = {
    "learning_rate": 3e-3,
    "epochs": 25,
    "batch_size": 8,
    "max_length": 96,
    "max_minutes": None,
    "min_pairs": 20,
    "min_val_pairs": 2,
    "negatives": 3,
    "retrieve_k": 6,
    "warmup_fraction": 0.05,
}


def _settings(tiny_settings, **ranker):
    return tiny_settings.model_copy(
        update={"ranker": tiny_settings.ranker.model_copy(update={**TINY_RANKER, **ranker})}
    )


@pytest.fixture
def shop(tiny_settings, tmp_path):
    """(settings, database, retriever) over the synthetic shop, indexed with the tiny embedder."""
    from chatbot.indexing.builder import update_index
    from chatbot.ingest.importer import import_paths
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    settings = _settings(tiny_settings)
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    import_paths(database, [write_transcripts(tmp_path / "shop.jsonl")], ingest=settings.ingest)
    update_index(settings.paths, settings.retrieval, settings.dialogue, database)
    yield settings, database, open_retriever(settings.paths, settings.retrieval, database)
    database.dispose()


def topic_of(text: str) -> str | None:
    return next((thing for thing, _, _ in TOPICS if thing in text.lower()), None)


def preference_rate(ranker, pairs) -> float:
    """How often the ranker scores a pair's true reply above a reply about another
    topic: over every pair and every such reply (a tie counts half)."""
    replies = sorted({p.target for p in pairs})
    wins = total = 0.0
    for pair in pairs:
        topic = topic_of(" ".join(t["text"] for t in pair.context))
        others = [r for r in replies if topic_of(r) != topic]
        true, *wrong = ranker.score(pair.context, [pair.target, *others])
        wins += sum(1.0 if true > w else 0.5 if true == w else 0.0 for w in wrong)
        total += len(wrong)
    return wins / total


def test_query_text_puts_the_message_first_and_tags_earlier_turns():
    from chatbot.ranking.model import query_text

    context = [
        {"role": "customer", "text": "I ordered a kettle"},
        {"role": "agent", "text": "Thanks, which one?"},
        {"role": "customer", "text": "The red one. It leaks."},
    ]
    assert query_text(context, 0) == "The red one. It leaks."
    assert query_text(context, 1) == "The red one. It leaks.\n\nearlier:\nagent: Thanks, which one?"
    assert query_text(context, 5) == (
        "The red one. It leaks.\n\nearlier:\nagent: Thanks, which one?\n"
        "customer: I ordered a kettle"
    )
    assert query_text([], 2) == ""


@pytest.mark.slow  # 675 training steps: about 2 minutes on 2 quiet cores, 5 on busy ones
def test_training_learns_to_prefer_the_true_reply_and_records_the_version(shop):
    from chatbot.models.versions import get_version, list_versions, promoted_version
    from chatbot.ranking.model import Ranker, promoted_ranker
    from chatbot.training.ranker import base_model, train_ranker
    from chatbot.training.ranker_data import load_pairs

    settings, database, retriever = shop
    data = load_pairs(settings.ranker, settings.training, database)
    assert len(data.train) >= 30 and data.val
    before = preference_rate(
        Ranker(base_model(settings.paths, settings.ranker, "cpu")[0], "untrained", history_turns=2),
        data.train,
    )

    events = []
    started = time.monotonic()
    result = train_ranker(
        settings.paths,
        settings.ranker,
        settings.training,
        database,
        retriever,
        progress=events.append,
        reply_version="base",
    )
    seconds = time.monotonic() - started
    print(
        f"tiny ranker: {seconds:.1f}s in all, {result.metrics['train_seconds']:.1f}s training, "
        f"{result.metrics['steps']} steps, preference before {before:.2f}"
    )

    ranker = Ranker.load(result.path)
    after = preference_rate(ranker, data.train)
    print(f"preference after {after:.2f}; validation: {result.why}")
    assert after >= 0.8 and after > before + 0.15
    held_out = preference_rate(ranker, data.val)
    assert held_out >= 0.6, (
        held_out
    )  # other conversations on the same topics, never seen in training

    m = result.metrics
    assert m["positives"] == len(data.train) and m["hard_negatives"] > 0 and m["steps"] > 0
    assert m["stopped_because"] == "epochs" and m["val_pairs_scored"] > 0
    for key in (
        "rouge_l_retrieval",
        "rouge_l_ranker",
        "gain",
        "gain_stderr",
        "true_reply_mrr",
        "train_seconds",
    ):
        assert key in m, key
    assert 0 < m["true_reply_mrr"] <= 1
    assert result.kept == (m["gain"] > 0 and m["gain"] > 2.0 * m["gain_stderr"])
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "finished"
    assert {"step", "validation"} <= {e["event"] for e in events}

    # The version: a whole directory with meta.json, registered as a ranker.
    path = Path(result.path)
    assert path.parent == settings.versions_dir and path.name.startswith("ranker-")
    assert not list(settings.versions_dir.glob(".*.tmp"))
    meta = json.loads((path / "meta.json").read_text())
    assert (
        meta["kind"] == "ranker" and meta["name"] == result.name and meta["reply_version"] == "base"
    )
    assert meta["base_embedder"] == str(settings.embedder_path)
    assert meta["data"]["train_pairs"] == len(data.train) and meta["settings"]["history_turns"] == 2
    assert set(meta["val_pick_probability"]) == {"0.05", "0.1", "0.25", "0.5"}
    q = meta["val_pick_probability"]
    assert 0 <= q["0.05"] <= q["0.1"] <= q["0.25"] <= q["0.5"] <= 1
    assert ranker.name == result.name and ranker.val_pick_probability == q
    version = get_version(database, result.name)
    assert version.kind == "ranker" and version.path == result.path
    assert (
        version.status == ("promoted" if result.kept else "candidate")
        and result.promoted == result.kept
    )
    assert version.evaluation["kept"] == result.kept
    assert [v.name for v in list_versions(database, kind="ranker")] == [result.name]
    assert list_versions(database) == []  # no reply-model version was made

    # Serving reads the promoted version (promoted by hand, forced, when the rule did not
    # keep it: the rule refuses a ranker that did not win).
    if not result.kept:
        from chatbot.models.versions import VersionError, promote

        with pytest.raises(VersionError, match="not kept"):
            promote(database, result.name)
        promote(database, result.name, force=True)
    assert promoted_version(database, "ranker").name == result.name
    served = promoted_ranker(database, settings.ranker)
    assert served is not None and served.name == result.name
    scores = served.score(
        data.train[0].context, [data.train[0].target, "Bike pedals ship in a separate box."]
    )
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)
    off = settings.model_copy(
        update={"ranker": settings.ranker.model_copy(update={"enabled": False})}
    )
    assert promoted_ranker(database, off.ranker) is None


def test_too_few_pairs_is_a_clear_error_from_the_library_and_the_cli(shop):
    from chatbot.cli import main
    from chatbot.ranking import RankerError
    from chatbot.training.ranker import train_ranker

    settings, database, retriever = shop
    strict = _settings(settings, min_pairs=10_000)
    with pytest.raises(
        RankerError, match=r"too few pairs to train a ranker: \d+ train pairs \(need 10000\)"
    ):
        train_ranker(strict.paths, strict.ranker, strict.training, database, retriever)
    env = {
        "CHATBOT_HOME": str(settings.home),
        "CHATBOT_EMBEDDER_PATH": str(settings.embedder_path),
        "CHATBOT_RANKER__MIN_PAIRS": "10000",
    }
    result = CliRunner().invoke(main, ["ranker", "train"], env=env)
    assert result.exit_code == 1 and "too few pairs to train a ranker" in result.output
    listed = CliRunner().invoke(main, ["ranker", "list", "--json"], env=env)
    assert (
        listed.exit_code == 0 and json.loads(listed.stdout)["versions"] == []
    )  # nothing was written


@pytest.mark.parametrize("damage", ["missing", "no_meta", "not_a_ranker", "no_weights"])
def test_a_missing_or_damaged_ranker_is_a_clear_error(tmp_path, tiny_settings, damage):
    from chatbot.errors import ModelUnavailableError
    from chatbot.ranking.model import Ranker
    from chatbot.training.ranker import base_model

    path = tmp_path / "ranker"
    if damage != "missing":
        model, _ = base_model(tiny_settings.paths, tiny_settings.ranker, "cpu")
        model.save(str(path))
        meta = {"kind": "ranker" if damage != "not_a_ranker" else "reply", "name": "r"}
        if damage != "no_meta":
            (path / "meta.json").write_text(json.dumps(meta))
        if damage == "no_weights":
            for weights in path.glob("*.safetensors"):
                weights.unlink()
    with pytest.raises(ModelUnavailableError, match="chatbot ranker train"):
        Ranker.load(path)


def _reject(database, question: str, suggestion: str) -> None:
    """A live conversation whose held suggestion an agent rejected in the console."""
    from chatbot.store.conversations import add_message, start_conversation
    from chatbot.store.dialogue_schema import DialogueReply
    from chatbot.store.support_schema import User
    from chatbot.support import review

    with database.session() as session:
        agent = User(username="alice", password_hash="not-a-real-hash", role="agent")
        session.add(agent)
        conversation = start_conversation(session=session)
        asked = add_message(
            session=session, conversation_id=conversation.id, role="customer", text=question
        )
        reply = DialogueReply(
            conversation_id=conversation.id,
            message_id=asked.id,
            decision="held",
            reason="held",
            text=suggestion,
            review_status="pending",
        )
        session.add(reply)
        session.flush()
        reply_id, actor = (
            reply.id,
            type("Actor", (), {"id": agent.id, "username": agent.username})(),
        )
    review.reject(database, reply_id, actor, "wrong answer")


def test_rejected_suggestions_become_negatives_for_their_conversation(shop):
    from chatbot.ranking.model import query_text
    from chatbot.training.ranker_data import build_examples, load_pairs, near_copy, rejected_replies

    settings, database, retriever = shop
    question = "Hello, my Kettle is leaking again, what now? Thanks, Samir Virtanen"
    _reject(database, question, "Hi Samir, the lamp bulb is loose: tighten the bulb.")
    rejections = rejected_replies(database)
    assert len(rejections) == 1
    context, text = rejections[0]
    assert context == [{"role": "customer", "text": question}]
    assert (
        "Samir" not in text and "{customer_name}" in text
    )  # read in slotted form, like every other reply

    data = load_pairs(settings.ranker, settings.training, database)
    examples, counts = build_examples(data.train, retriever, settings.ranker, rejections=rejections)
    rejected = [e for e in examples if e.kind == "rejected"]
    assert [(e.query, e.reply, e.label) for e in rejected] == [(query_text(context, 2), text, 0.0)]
    assert counts["rejected_negatives"] == 1 and counts["positives"] == len(data.train)
    assert counts["hard_negatives"] + counts["random_negatives"] == 3 * len(data.train)
    true_reply = {query_text(p.context, 2): p.target for p in data.train}
    for e in examples:  # a negative is never the true reply or a near-copy of it
        if e.kind in ("hard", "random"):
            assert not near_copy(e.reply, true_reply[e.query], settings.ranker.near_copy_f1)


def _untrained_version(settings, name: str = "ranker-test") -> Path:
    from chatbot.training.ranker import base_model, write_version

    model, _ = base_model(settings.paths, settings.ranker, "cpu")
    return write_version(
        model,
        {"kind": "ranker", "name": name, "query": {"history_turns": 1}},
        settings.versions_dir,
        name,
    )


def test_serving_keeps_its_ranker_when_the_promoted_one_is_damaged(shop):
    from chatbot.errors import ModelUnavailableError
    from chatbot.models.versions import promote, register_version
    from chatbot.ranking.model import Ranker, RankerSource, promoted_ranker

    settings, database, _ = shop

    def serve(name):
        path = _untrained_version(settings, name)
        register_version(
            database,
            name=name,
            path=path,
            settings={},
            data_snapshot={},
            metrics={},
            evaluation={"kept": True},
            kind="ranker",
        )
        promote(database, name)
        return path

    source = RankerSource(database, settings.ranker, check_interval=0)
    assert (
        source.get() is None and promoted_ranker(database, settings.ranker) is None
    )  # nothing promoted yet
    first = serve("ranker-a")
    ranker = Ranker.load(first)
    assert ranker.name == "ranker-a" and ranker.history_turns == 1
    assert len(ranker.score([{"role": "customer", "text": "hi"}], ["a", "b", "c"])) == 3
    assert source.get().name == "ranker-a"

    path = serve("ranker-b")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a disk that filled up, a copy cut short
    with pytest.raises(
        ModelUnavailableError, match=rf"cannot load the ranker from {path}.*chatbot ranker train"
    ):
        Ranker.load(path)
    with pytest.raises(
        ModelUnavailableError, match="the promoted ranker 'ranker-b' cannot be loaded"
    ):
        promoted_ranker(database, settings.ranker)
    # Serving keeps the ranker it has and says why; one that has none serves without.
    assert source.get().name == "ranker-a" and "ranker-b" in source.error
    fresh = RankerSource(database, settings.ranker, check_interval=0)
    assert fresh.get() is None and "cannot load the ranker" in fresh.error

    (path / "meta.json").write_text("{not json")
    with pytest.raises(ModelUnavailableError, match="meta.json cannot be read"):
        Ranker.load(path)
    (path / "meta.json").unlink()
    with pytest.raises(ModelUnavailableError, match="has no meta.json"):
        Ranker.load(path)
    shutil.rmtree(path)
    with pytest.raises(
        ModelUnavailableError, match=r"does not exist; train one: chatbot ranker train"
    ):
        Ranker.load(path)


def test_the_cli_trains_lists_promotes_and_rolls_back(shop):
    from chatbot.cli import main

    settings, database, _ = shop
    env = {
        "CHATBOT_HOME": str(settings.home),
        "CHATBOT_EMBEDDER_PATH": str(settings.embedder_path),
        "CHATBOT_RANKER__MIN_PAIRS": "20",
        "CHATBOT_RANKER__MAX_LENGTH": "64",
        "CHATBOT_RANKER__MIN_GAIN_STDERRS": "1000",
    }  # never kept: promotion is by hand below

    def run(*args):
        return CliRunner().invoke(main, ["ranker", *args], env=env, catch_exceptions=False)

    done = run("train", "--max-steps", "2", "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["kept"] is False and out["promoted"] is False and out["metrics"]["steps"] == 2
    assert out["metrics"]["stopped_because"] == "max_steps" and "not kept" in out["why"]
    assert (Path(out["path"]) / "meta.json").is_file()

    listed = json.loads(run("list", "--json").stdout)
    assert listed["serving"] is None and [v["name"] for v in listed["versions"]] == [out["name"]]
    assert (
        listed["versions"][0]["kind"] == "ranker" and listed["versions"][0]["status"] == "candidate"
    )
    assert out["name"] in run("list").stdout

    refused = run("promote", out["name"])
    assert (
        refused.exit_code == 1
        and "not promoted: not kept" in refused.output
        and "--force" in refused.output
    )
    assert run("promote", out["name"], "--force").exit_code == 0
    assert json.loads(run("list", "--json").stdout)["serving"] == out["name"]
    back = json.loads(run("rollback", "--json").stdout)
    assert back == {"retired": out["name"], "serving": None}

    text = run("train", "--max-steps", "1")
    assert (
        text.exit_code == 0 and "not kept" in text.stdout and "ROUGE-L of the pick" in text.stdout
    )


@pytest.mark.slow
# Issue 12 is open: measured on this machine the real ranker does not yet learn on the demo
# shop (held-out preference 0.57 before, 0.65 after these 100 steps, 0.57 after 300; likely
# because many retrieved "negatives" are the same policy answer in other words). Strict: a run that
# reaches the bar fails here, so that the marker is taken off.
@pytest.mark.xfail(
    strict=True, reason="the real MiniLM ranker does not yet learn on the demo shop (issue 12)"
)
def test_a_ranker_from_the_real_minilm_prefers_true_replies_on_the_demo_shop(tmp_path):
    """About a minute of training from all-MiniLM-L6-v2 on the demo shop's pairs (a step
    budget rather than a clock one, so that a busy machine does not change the result)."""
    from chatbot.indexing.builder import update_index
    from chatbot.ingest.importer import import_paths
    from chatbot.ranking.model import Ranker
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.training.ranker import base_model, train_ranker
    from chatbot.training.ranker_data import load_pairs, near_copy
    from tests.conftest import REPO

    settings = load_settings(
        home=tmp_path / "home", ranker={"max_minutes": None, "max_steps": 100, "max_length": 128}
    )
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    try:
        import_paths(database, [REPO / "data" / "demo_shop.jsonl"], ingest=settings.ingest)
        update_index(settings.paths, settings.retrieval, settings.dialogue, database)
        retriever = open_retriever(settings.paths, settings.retrieval, database)
        data = load_pairs(settings.ranker, settings.training, database)
        replies = sorted({p.target for p in data.train})

        def rate(ranker, pairs):
            """How often the true reply scores above another conversation's reply that
            says something else: over every validation pair and 20 such replies each."""
            rng, wins, total = random.Random(0), 0.0, 0
            for pair in pairs:
                others = rng.sample([r for r in replies if not near_copy(r, pair.target, 0.6)], 20)
                true, *wrong = ranker.score(pair.context, [pair.target, *others])
                wins += sum(1.0 if true > w else 0.5 if true == w else 0.0 for w in wrong)
                total += len(wrong)
            return wins / total

        before = rate(
            Ranker(base_model(settings.paths, settings.ranker, "cpu")[0], "untrained"), data.val
        )
        started = time.monotonic()
        result = train_ranker(
            settings.paths, settings.ranker, settings.training, database, retriever
        )
        m = result.metrics
        print(
            f"MiniLM ranker: {time.monotonic() - started:.0f}s in all, {m['train_seconds']:.0f}s training, "
            f"{m['steps']} steps on {m['examples']} examples; {result.why}; MRR of the true reply "
            f"{m['true_reply_mrr']:.3f} among {m['true_reply_candidates']:.1f}"
        )
        after = rate(Ranker.load(result.path), data.val)
        print(f"held-out preference for the true reply: before {before:.2f}, after {after:.2f}")
        assert after >= 0.8 and after > before + 0.1
    finally:
        database.dispose()
