"""`chatbot index --adapt`: the adapted embedder is kept only above the margin, the index
rebuilt with it names it and queries are embedded with it, too few pairs is a clear
error that writes nothing, and the CLI's JSON shape (tiny real embedder, real SQLite
store, real FAISS and BM25)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.indexing.adapt import AdaptError, adapt_and_index, adapt_embedder, embedders_root
from chatbot.indexing.builder import update_index
from chatbot.meta_file import read_meta
from chatbot.models.embedder import load_embedder
from chatbot.retrieval.embedding import embed_contexts
from chatbot.retrieval.index_files import model_fingerprint, store_root
from chatbot.retrieval.retriever import open_retriever
from chatbot.retrieval.versions import IndexStaleError, VersionStore
from chatbot.settings import load_settings
from tests.test_retrieval_index import add_pairs

TOPICS = [
    ("where is my parcel", "Track your parcel with the link in your shipping e-mail."),
    ("return the kettle", "Returns are free within 30 days; start one under Orders."),
    ("card declined but charged", "The hold is released within 3 working days."),
    ("reset my password", "Use the reset link on the sign-in page."),
    ("change delivery address", "Until the parcel ships: Orders > Change address."),
    ("ship to Norway", "We ship to every EU and EEA country, Norway included."),
]
TRAIN = [
    (f"{how} {topic}?", reply)
    for topic, reply in TOPICS
    for how in ("Hi, I want to", "Please help me")
]
VAL = [(f"Could you tell me how to {topic}", reply) for topic, reply in TOPICS]

# Small enough for a tiny model and a dozen pairs; a high learning rate so the adapted
# model really differs from the base one.
FAST = {
    "adapt_min_pairs": 8,
    "adapt_min_val_pairs": 4,
    "adapt_max_steps": 4,
    "adapt_batch_size": 4,
    "adapt_learning_rate": 5e-3,
    "adapt_min_gain_stderrs": 0.0,
    "lexical_weight": 0.0,
}


@pytest.fixture
def database(sqlite_database):
    return sqlite_database


def make_settings(tmp_path, tiny_embedder_dir, database, **retrieval):
    return load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        database_url=database.url,
        retrieval={**FAST, **retrieval},
    )


def fill(database):
    return add_pairs(database, TRAIN, split="train"), add_pairs(database, VAL, split="val")


def test_kept_above_the_margin_and_queries_use_the_adapted_embedder(
    tmp_path, tiny_embedder_dir, database
):
    settings = make_settings(
        tmp_path, tiny_embedder_dir, database, adapt_min_gain=-2.0
    )  # any gain is enough
    train_ids, _ = fill(database)
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, database
    )  # a base index first: the adapted one must replace it

    report = adapt_and_index(settings.paths, settings.retrieval, settings.dialogue, database)
    assert report.kept and "above" in report.reason
    assert report.counts == {"train": len(TRAIN), "val": len(VAL), "val_measured": len(VAL)}
    assert report.training["steps"] == 4 and report.training["stopped_by"] == "steps"
    assert set(report.base) >= {
        "reply_similarity",
        "fit_rate",
        "exact_reply_at_1",
        "exact_reply_at_5",
    }
    assert report.base["n_with_duplicate_reply"] == len(VAL)  # every val reply also occurs in train
    assert report.gain == pytest.approx(
        report.adapted["reply_similarity"] - report.base["reply_similarity"], abs=1e-6
    )

    directory = embedders_root(settings.paths) / "v0001"
    assert report.embedder_path == str(directory) and (directory / "modules.json").is_file()
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["kept"] is True and meta["made_by"] == "chatbot index --adapt"
    assert meta["base_model"]["path"] == str(tiny_embedder_dir)
    assert meta["counts"]["train"] == len(TRAIN) and len(meta["pair_set_hash"]) == 64
    assert meta["settings"]["adapt_min_gain"] == -2.0
    assert {"base", "adapted", "gain", "wall_seconds", "training"} <= set(meta)
    assert not [
        p for p in embedders_root(settings.paths).iterdir() if p.name.startswith(".building")
    ]

    # The index was rebuilt with the adapted embedder and says so.
    assert report.index["action"] == "rebuilt" and report.index["version"] == "v0002"
    index_meta = read_meta(store_root(settings.paths) / "v0002")
    assert index_meta["model"]["path"] == str(directory)
    assert index_meta["model"]["fingerprint"] == model_fingerprint(directory)
    assert index_meta["model"]["adapted_from"]["fingerprint"] == model_fingerprint(
        tiny_embedder_dir
    )

    # Queries are embedded with the adapted embedder, not the configured base one.
    retriever = open_retriever(settings.paths, settings.retrieval, database)
    adapted = load_embedder(settings.paths, path=directory)
    base = load_embedder(settings.paths, path=tiny_embedder_dir)
    message = TRAIN[3][0]
    query = retriever.query_vector(message)
    want = embed_contexts(adapted, [(message, [])], settings.retrieval)[0]
    other = embed_contexts(base, [(message, [])], settings.retrieval)[0]
    assert np.allclose(query, want, atol=1e-5)
    assert float(other @ want) < 0.999
    stored = np.load(store_root(settings.paths) / "v0002" / "vectors.npy")
    assert float(query @ stored[3]) == pytest.approx(1.0, abs=1e-4)
    hit = retriever.search(message, k=1).hits[0]
    assert hit.citation.pair_id == train_ids[3] and hit.reply_text == TRAIN[3][1]

    # Handing the base embedder to the retriever is refused: its citations would be wrong.
    with pytest.raises(IndexStaleError, match="another embedder"):
        open_retriever(settings.paths, settings.retrieval, database, model=base)
    assert (
        open_retriever(settings.paths, settings.retrieval, database, model=adapted).version
        == "v0002"
    )


def test_new_pairs_are_added_with_the_adapted_embedder_until_it_is_gone(
    tmp_path, tiny_embedder_dir, database
):
    settings = make_settings(tmp_path, tiny_embedder_dir, database, adapt_min_gain=-2.0)
    fill(database)
    report = adapt_and_index(settings.paths, settings.retrieval, settings.dialogue, database)
    later = add_pairs(
        database, [("Do you sell gift cards?", "Yes, from 10 to 200 euros.")], split="train"
    )

    added = update_index(
        settings.paths, settings.retrieval, settings.dialogue, database
    )  # plain `chatbot index`
    assert (added.action, added.added) == ("added", 1)
    meta = read_meta(store_root(settings.paths) / added.version)
    assert meta["model"]["path"] == report.embedder_path
    retriever = open_retriever(settings.paths, settings.retrieval, database)
    assert retriever.search("Do you sell gift cards?", k=1).hits[0].pair_id == later[0]

    # The adapted embedder deleted: the index cannot be searched; `chatbot index` goes back to the base.
    shutil.rmtree(report.embedder_path)
    with pytest.raises(IndexStaleError, match="chatbot index --rebuild"):
        open_retriever(settings.paths, settings.retrieval, database)
    rebuilt = update_index(settings.paths, settings.retrieval, settings.dialogue, database)
    assert rebuilt.action == "rebuilt" and "embedder changed" in rebuilt.reason
    assert read_meta(store_root(settings.paths) / rebuilt.version)["model"]["path"] == str(
        tiny_embedder_dir
    )
    assert open_retriever(settings.paths, settings.retrieval, database).version == rebuilt.version


@pytest.mark.parametrize(
    ("margins", "why"),
    [
        ({"adapt_min_gain": 2.0}, "not above retrieval.adapt_min_gain 2.0"),  # no gain can pass
        ({"adapt_min_gain": -2.0, "adapt_min_gain_stderrs": 1000.0}, "within 1000 standard errors"),
    ],
)
def test_not_kept_below_the_margin_leaves_the_index_alone(
    tmp_path, tiny_embedder_dir, database, margins, why
):
    settings = make_settings(tmp_path, tiny_embedder_dir, database, **margins)
    fill(database)
    update_index(settings.paths, settings.retrieval, settings.dialogue, database)
    before = (store_root(settings.paths) / "v0001" / "meta.json").read_text()

    report = adapt_and_index(settings.paths, settings.retrieval, settings.dialogue, database)
    assert not report.kept and why in report.reason
    assert report.index is None and report.embedder_path is None
    assert report.training["steps"] == 4
    assert not embedders_root(settings.paths).exists() or not any(
        embedders_root(settings.paths).iterdir()
    )
    store = VersionStore(store_root(settings.paths))
    assert store.versions() == ["v0001"] and store.current_name() == "v0001"
    assert (store_root(settings.paths) / "v0001" / "meta.json").read_text() == before


@pytest.mark.parametrize(
    ("train", "val", "message"),
    [
        (TRAIN[:5], VAL, "at least 8 training pairs"),
        (TRAIN, VAL[:2], "at least 4 validation pairs"),
    ],
)
def test_too_few_pairs_is_a_clear_error_and_writes_nothing(
    tmp_path, tiny_embedder_dir, database, train, val, message
):
    settings = make_settings(tmp_path, tiny_embedder_dir, database)
    add_pairs(database, train, split="train")
    add_pairs(database, val, split="val")
    with pytest.raises(AdaptError, match=message):
        adapt_embedder(settings.paths, settings.retrieval, database)
    assert not embedders_root(settings.paths).exists()
    assert not store_root(settings.paths).exists()


def _cli_env(tmp_path, tiny_embedder_dir, database, min_gain):
    env = {
        "CHATBOT_HOME": str(tmp_path / "home"),
        "CHATBOT_DATABASE_URL": database.url,
        "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
        "CHATBOT_RETRIEVAL__ADAPT_MIN_GAIN": str(min_gain),
    }
    env.update({f"CHATBOT_RETRIEVAL__{k.upper()}": str(v) for k, v in FAST.items()})
    return env


def test_cli_adapt_json_shape(tmp_path, tiny_embedder_dir, database):
    fill(database)
    env = _cli_env(tmp_path, tiny_embedder_dir, database, -2.0)
    result = CliRunner().invoke(
        main, ["index", "--adapt", "--json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {
        "kept",
        "reason",
        "metric",
        "base",
        "adapted",
        "gain",
        "gain_stderr",
        "min_gain",
        "counts",
        "training",
        "base_model",
        "seconds",
        "embedder_version",
        "embedder_path",
        "index",
    } <= set(payload)
    assert payload["kept"] is True and payload["embedder_version"] == "v0001"
    assert payload["index"]["action"] == "built" and payload["index"]["pair_count"] == len(TRAIN)
    assert payload["metric"] == "reply_similarity" and payload["min_gain_stderrs"] == 0.0


def test_cli_adapt_text_and_errors(tmp_path, tiny_embedder_dir, database):
    fill(database)
    env = _cli_env(tmp_path, tiny_embedder_dir, database, 2.0)
    result = CliRunner().invoke(main, ["index", "--adapt"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (
        "base " in result.output
        and "not kept" in result.output
        and "index is unchanged" in result.output
    )

    env["CHATBOT_RETRIEVAL__ADAPT_MIN_PAIRS"] = "1000"
    failed = CliRunner().invoke(main, ["index", "--adapt", "--json"], env=env)
    assert failed.exit_code == 1
    assert failed.output.strip().splitlines() == [
        f"Error: adapting the embedder needs at least 1000 training pairs (split train) and the store holds {len(TRAIN)}; "
        "import more support history first (retrieval.adapt_min_pairs)"
    ]
