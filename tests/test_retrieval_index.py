"""The retrieval index over stored training pairs: build, incremental add, rebuild and
switch, the pair-set mismatch, citations, exclusion and history fusion (tiny real
embedder, real SQLite/PostgreSQL, real FAISS and BM25)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from sqlalchemy import select

from chatbot.indexing.builder import update_index
from chatbot.meta_file import read_meta
from chatbot.retrieval.index_files import store_root
from chatbot.retrieval.retriever import open_retriever
from chatbot.retrieval.versions import IndexNotFoundError, IndexStaleError, VersionStore
from chatbot.settings import load_settings
from chatbot.store.schema import Conversation, TrainingPair

PAIRS = [
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
        "The hold is released within 3 working days.",
    ),
    ("How do I reset my password?", "Use the reset link on the sign-in page."),
    (
        "Can I change the delivery address after ordering?",
        "Yes, until the parcel ships: Orders > Change address.",
    ),
    ("Do you ship to Norway?", "We ship to every EU and EEA country, Norway included."),
]


def add_pairs(database, items, *, split="train", source="test", histories=None):
    """One conversation per call; a pair per (message, reply); returns the pair ids."""
    ids = []
    with database.session() as session:
        conversation = Conversation(
            source=source, external_id=f"c{len(items)}-{split}-{hash(items[0][0]) % 10**6}"
        )
        session.add(conversation)
        session.flush()
        for turn, (message, reply) in enumerate(items):
            history = (histories or {}).get(turn, [])
            context = [{"role": r, "text": t} for r, t in history] + [
                {"role": "customer", "text": message}
            ]
            digest = hashlib.sha256(json.dumps([context, reply, split]).encode()).hexdigest()
            pair = TrainingPair(
                conversation_id=conversation.id,
                turn_index=2 * turn + 1,
                source=source,
                split=split,
                context=context,
                target=reply,
                content_hash=digest,
            )
            session.add(pair)
            session.flush()
            ids.append(pair.id)
    return ids


@pytest.fixture
def index_settings(tmp_path, tiny_embedder_dir, migrated_database):
    return load_settings(
        home=tmp_path / "home", embedder_path=tiny_embedder_dir, database_url=migrated_database.url
    )


def test_no_index_is_a_clear_error(index_settings, migrated_database):
    with pytest.raises(IndexNotFoundError, match="run: chatbot index"):
        open_retriever(index_settings.paths, index_settings.retrieval, migrated_database)


def test_build_writes_a_version_with_meta_and_citations(index_settings, migrated_database):
    ids = add_pairs(migrated_database, PAIRS)
    report = update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    assert (report.action, report.version, report.pair_count, report.kind) == (
        "built",
        "v0001",
        len(PAIRS),
        "exact",
    )

    root = store_root(index_settings.paths)
    meta = read_meta(root / "v0001")
    assert meta["pair_count"] == len(PAIRS)
    assert meta["model"]["path"] == str(index_settings.embedder_path)
    assert len(meta["pair_set_hash"]) == 64
    assert meta["settings"]["history_weight"] == index_settings.retrieval.history_weight
    assert (root / "CURRENT").read_text().strip() == "v0001"

    retriever = open_retriever(index_settings.paths, index_settings.retrieval, migrated_database)
    result = retriever.search(PAIRS[3][0], k=3)
    top = result.hits[0]
    assert top.pair_id == ids[3]
    assert top.reply_text == PAIRS[3][1]
    assert top.citation.pair_id == ids[3]
    assert top.citation.turn_index == 7
    assert top.citation.source == "test"
    assert top.citation.snippet == PAIRS[3][1]
    assert top.citation.score == pytest.approx(top.score)
    with migrated_database.session() as session:
        conversation_id = session.scalar(
            select(TrainingPair.conversation_id).where(TrainingPair.id == ids[3])
        )
    assert top.citation.conversation_id == conversation_id
    assert set(top.scores) >= {"dense", "lexical"}
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)


def test_exclude_pair_ids_never_returns_the_pair(index_settings, migrated_database):
    ids = add_pairs(migrated_database, PAIRS)
    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    retriever = open_retriever(index_settings.paths, index_settings.retrieval, migrated_database)
    assert retriever.search(PAIRS[0][0], k=1).hits[0].pair_id == ids[0]
    result = retriever.search(PAIRS[0][0], k=len(PAIRS), exclude_pair_ids=[ids[0]])
    assert ids[0] not in [h.pair_id for h in result.hits]
    assert len(result.hits) == len(PAIRS) - 1


def test_new_pairs_are_added_incrementally(index_settings, migrated_database):
    first = add_pairs(migrated_database, PAIRS[:4])
    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    root = store_root(index_settings.paths)
    old_vectors = np.load(root / "v0001" / "vectors.npy")

    later = add_pairs(migrated_database, PAIRS[4:])
    report = update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    assert (report.action, report.added, report.pair_count, report.version) == (
        "added",
        2,
        6,
        "v0002",
    )
    meta = read_meta(root / "v0002")
    assert meta["parent_version"] == "v0001" and meta["added"] == 2
    new_vectors = np.load(root / "v0002" / "vectors.npy")
    assert np.array_equal(new_vectors[:4], old_vectors)  # old rows kept, not re-embedded

    retriever = open_retriever(index_settings.paths, index_settings.retrieval, migrated_database)
    assert retriever.version == "v0002"
    assert retriever.search(PAIRS[5][0], k=1).hits[0].pair_id == later[1]
    assert retriever.search(PAIRS[0][0], k=1).hits[0].pair_id == first[0]

    again = update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    assert (again.action, again.version) == ("unchanged", "v0002")


def test_rebuild_writes_beside_the_old_version_and_switches(
    index_settings, migrated_database, monkeypatch
):
    add_pairs(migrated_database, PAIRS)
    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    store = VersionStore(store_root(index_settings.paths))

    # A build that fails half-way leaves the current version in charge and no debris.
    import chatbot.indexing.builder as indexer

    def broken(_documents):
        raise RuntimeError("disk full")

    monkeypatch.setattr(indexer.LexicalIndex, "build", staticmethod(broken))
    with pytest.raises(RuntimeError):
        update_index(
            index_settings.paths,
            index_settings.retrieval,
            index_settings.dialogue,
            migrated_database,
            rebuild=True,
            calibrate=False,
        )
    assert store.current_name() == "v0001"
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".building")] == []
    monkeypatch.undo()

    report = update_index(
        index_settings.paths,
        index_settings.retrieval,
        index_settings.dialogue,
        migrated_database,
        rebuild=True,
    )
    assert (report.action, report.version) == ("rebuilt", "v0002")
    assert store.versions() == ["v0001", "v0002"] and store.current_name() == "v0002"
    assert (
        read_meta(store.root / "v0002")["pair_set_hash"]
        == read_meta(store.root / "v0001")["pair_set_hash"]
    )

    update_index(
        index_settings.paths,
        index_settings.retrieval,
        index_settings.dialogue,
        migrated_database,
        rebuild=True,
    )  # keep_versions = 2
    assert store.versions() == ["v0002", "v0003"]


def test_deleted_or_changed_pairs_are_never_cited_silently(index_settings, migrated_database):
    ids = add_pairs(migrated_database, PAIRS)
    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    with migrated_database.session() as session:
        session.delete(session.get(TrainingPair, ids[2]))
        changed = session.get(TrainingPair, ids[3])
        changed.target = "Passwords are reset by our support team."
        changed.content_hash = "0" * 64

    with pytest.raises(
        IndexStaleError, match="1 of its pairs were deleted and 1 changed.*chatbot index"
    ):
        open_retriever(index_settings.paths, index_settings.retrieval, migrated_database)

    report = update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    assert report.action == "rebuilt" and "deleted" in report.reason
    retriever = open_retriever(index_settings.paths, index_settings.retrieval, migrated_database)
    hits = retriever.search(PAIRS[3][0], k=len(PAIRS)).hits
    assert ids[2] not in [h.pair_id for h in hits]
    assert {h.pair_id: h.reply_text for h in hits}[
        ids[3]
    ] == "Passwords are reset by our support team."


def test_another_embedder_forces_a_rebuild(index_settings, migrated_database, tmp_path):
    from tests.tiny_models import build_tiny_embedder

    add_pairs(migrated_database, PAIRS)
    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    other = build_tiny_embedder(tmp_path / "other", hidden=48)
    changed = index_settings.model_copy(update={"embedder_path": other})
    with pytest.raises(IndexStaleError, match="chatbot index --rebuild"):
        open_retriever(changed.paths, changed.retrieval, migrated_database)
    report = update_index(changed.paths, changed.retrieval, changed.dialogue, migrated_database)
    assert report.action == "rebuilt" and "embedder" in report.reason
    assert open_retriever(changed.paths, changed.retrieval, migrated_database).dense.dim == 48


def test_history_disambiguates_a_follow_up_question(index_settings, migrated_database):
    """Two pairs with the same follow-up message; only the history says which fits."""
    follow_up = "And how long does that take?"
    password = add_pairs(
        migrated_database,
        [(follow_up, "The reset e-mail arrives within minutes.")],
        histories={
            0: [
                ("customer", "How do I reset my password?"),
                ("agent", "Use the reset link on the sign-in page."),
            ]
        },
    )
    refund = add_pairs(
        migrated_database,
        [(follow_up, "Refunds reach your card within 5-7 working days.")],
        histories={
            0: [
                ("customer", "I returned the kettle, when do I get my money back?"),
                ("agent", "We refund as soon as the parcel reaches us."),
            ]
        },
    )
    add_pairs(migrated_database, PAIRS)
    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    retriever = open_retriever(index_settings.paths, index_settings.retrieval, migrated_database)

    history = ["How do I reset my password?", "Use the reset link on the sign-in page."]
    assert retriever.search(follow_up, history=history, k=1).hits[0].pair_id == password[0]
    history = [
        "I returned the kettle, when do I get my money back?",
        "We refund as soon as the parcel reaches us.",
    ]
    assert retriever.search(follow_up, history=history, k=1).hits[0].pair_id == refund[0]

    # Without history fusion the message alone cannot tell the two apart.
    no_history = index_settings.model_copy(
        update={
            "retrieval": index_settings.retrieval.model_copy(
                update={"history_weight": 0.0, "lexical_weight": 0.0}
            )
        }
    )
    update_index(no_history.paths, no_history.retrieval, no_history.dialogue, migrated_database)
    plain = open_retriever(no_history.paths, no_history.retrieval, migrated_database)
    scores = {h.pair_id: h.score for h in plain.search(follow_up, history=history, k=3).hits}
    assert scores[password[0]] == pytest.approx(scores[refund[0]], abs=1e-5)


def test_index_calibrates_out_of_scope_on_validation_pairs(
    tmp_path, tiny_embedder_dir, migrated_database
):
    settings = load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        database_url=migrated_database.url,
        retrieval={"min_calibration_pairs": 6, "gate_resamples": 100},
    )
    add_pairs(migrated_database, PAIRS)
    # Validation questions are the company's own, in its domain by construction (the
    # gate's positives), whatever their top answer; the negatives are the shipped
    # off-topic questions (tests/test_handoff_gate.py covers the gate in detail).
    served = [(q + " ", a) for q, a in PAIRS[:3]]
    unserved = [
        (f"Question number {n} about astronomy and telescopes", f"Answer {n}: look at the moon.")
        for n in range(3)
    ]
    add_pairs(migrated_database, served + unserved, split="val")
    report = update_index(settings.paths, settings.retrieval, settings.dialogue, migrated_database)
    calibration = report.calibration
    assert calibration is not None
    assert (
        calibration["n_in_scope"] == 6
        and calibration["n_out_of_scope"] == calibration["n_background"] > 250
    )
    assert (
        calibration["raw_threshold_low"]
        <= calibration["raw_threshold"]
        <= calibration["raw_threshold_high"]
    )
    assert (
        read_meta(store_root(settings.paths) / report.version)["calibration"]["raw_threshold"]
        == calibration["raw_threshold"]
    )

    retriever = open_retriever(settings.paths, settings.retrieval, migrated_database)
    inside = retriever.search(PAIRS[0][0], k=1)
    assert not inside.out_of_scope and inside.in_scope_score >= calibration["threshold"]
    below = calibration["raw_threshold"] - 0.01
    assert retriever.calibration.out_of_scope(below)
    assert retriever.calibration.probability(below) < retriever.calibration.probability(
        inside.hits[0].score
    )


def test_index_cli(index_settings, migrated_database, monkeypatch):
    from click.testing import CliRunner

    from chatbot.cli import main

    monkeypatch.setenv("CHATBOT_HOME", str(index_settings.home))
    monkeypatch.setenv("CHATBOT_EMBEDDER_PATH", str(index_settings.embedder_path))
    monkeypatch.setenv("CHATBOT_DATABASE_URL", migrated_database.url)
    runner = CliRunner()
    add_pairs(migrated_database, PAIRS)
    first = runner.invoke(main, ["index", "--json"])
    assert first.exit_code == 0, first.output
    payload = json.loads(first.stdout)
    assert (payload["action"], payload["version"], payload["pair_count"]) == (
        "built",
        "v0001",
        len(PAIRS),
    )
    again = runner.invoke(main, ["index"])
    assert again.exit_code == 0 and "index v0001 is up to date: 6 pairs" in again.output
    rebuilt = runner.invoke(main, ["index", "--rebuild"])
    assert (
        rebuilt.exit_code == 0
        and "index v0002: rebuilt (--rebuild asked for); 6 pairs, exact search" in rebuilt.output
    )


def test_serving_follows_a_new_index_version_without_a_restart(index_settings, migrated_database):
    from chatbot.dialogue.sources import following_retriever

    add_pairs(migrated_database, PAIRS[:4])
    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    serving = following_retriever(
        index_settings.paths,
        index_settings.retrieval,
        open_retriever(index_settings.paths, index_settings.retrieval, migrated_database),
        check_interval=0,
    )
    assert serving.version == "v0001"
    later = add_pairs(migrated_database, PAIRS[4:])
    assert later[1] not in [h.pair_id for h in serving.search(PAIRS[5][0], k=6).hits]

    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )  # what the admin console's rebuild runs, in another process
    assert serving.search(PAIRS[5][0], k=1).hits[0].pair_id == later[1]
    assert serving.version == "v0002"

    # A new version that cannot be loaded leaves the old one serving.
    root = store_root(index_settings.paths)
    add_pairs(
        migrated_database,
        [("Is there a shop in Oslo?", "Not yet; we only sell online.")],
        source="later",
    )
    update_index(
        index_settings.paths, index_settings.retrieval, index_settings.dialogue, migrated_database
    )
    (root / "v0003" / "pairs.jsonl").write_text("not json\n")
    assert serving.search(PAIRS[0][0], k=1).hits
    assert serving.version == "v0002"


def test_bm25_weight_is_chosen_on_the_companys_validation_questions(
    tmp_path, tiny_embedder_dir, migrated_database
):
    """The tiny embedder's vectors carry next to no meaning, so the words the questions
    share are what finds the right answer: the weight chosen must be above 0, be the one
    searches use, and an explicitly configured weight must still win."""
    from chatbot.indexing.calibration import FUSION_WEIGHTS

    topics = [
        (f"{noun} {verb}", f"Answer about the {noun}: please {verb} it in your account settings.")
        for noun, verb in [
            ("invoice", "download"),
            ("password", "reset"),
            ("parcel", "track"),
            ("subscription", "cancel"),
            ("address", "change"),
            ("voucher", "redeem"),
            ("refund", "request"),
            ("newsletter", "unsubscribe"),
            ("warranty", "register"),
            ("payment", "retry"),
        ]
    ]
    for n, (words, reply) in enumerate(topics):
        add_pairs(migrated_database, [(f"How do I {words}? {n}", reply)])
        add_pairs(
            migrated_database, [(f"Hello, I want to {words} please, thanks", reply)], split="val"
        )
    settings = load_settings(
        home=tmp_path / "home", embedder_path=tiny_embedder_dir, database_url=migrated_database.url
    )
    report = update_index(settings.paths, settings.retrieval, settings.dialogue, migrated_database)
    fusion = report.fusion
    assert fusion["validation_questions"] == len(topics)
    assert set(fusion["reply_similarity_by_weight"]) == {
        str(w) for w in sorted({*FUSION_WEIGHTS, 0.2})
    }
    by_weight = {float(w): v for w, v in fusion["reply_similarity_by_weight"].items()}
    assert by_weight[max(by_weight)] > by_weight[0.0]  # the shared words help
    assert fusion["best_weight"] > 0 and fusion["lexical_weight"] in (fusion["best_weight"], 0.2)
    assert read_meta(store_root(settings.paths) / report.version)["fusion"] == fusion
    assert (
        open_retriever(settings.paths, settings.retrieval, migrated_database).lexical_weight
        == fusion["lexical_weight"]
    )
    explicit = load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        database_url=migrated_database.url,
        retrieval={"lexical_weight": 0.0},
    )
    assert (
        open_retriever(explicit.paths, explicit.retrieval, migrated_database).lexical_weight == 0.0
    )
