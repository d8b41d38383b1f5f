"""Model versions: register, list, promote, roll back, what serving loads, and the
provider that picks up a promotion without a restart. Real store (SQLite and
PostgreSQL), real tiny models."""

from __future__ import annotations

import json
import shutil
from functools import partial

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.errors import ModelUnavailableError
from chatbot.models.reply_model import repair_hint, reply_model_path
from chatbot.models.versions import (
    BASE_VERSION,
    ReplyModelProvider,
    VersionError,
    get_version,
    list_versions,
    promote,
    promoted_reply_model_path,
    promoted_version,
    register_version,
    rollback,
)


def _version(database, root, source_dir, name):
    path = root / name
    shutil.copytree(source_dir, path)
    return register_version(
        database,
        name=name,
        path=path,
        settings={"mode": "lora"},
        data_snapshot={"train_by_source": {"demo": 3}},
        metrics={"val_loss": 1.0},
    )


def test_promote_and_rollback_walk_the_promotion_history(
    migrated_database, tmp_path, tiny_reply_model_dir
):
    db = migrated_database
    for name in ("v1", "v2", "v3"):
        _version(db, tmp_path, tiny_reply_model_dir, name)
    assert promoted_version(db) is None
    promote(db, "v1")
    promote(db, "v2")
    now, previous = promote(db, "v3")
    assert (now.name, previous.name) == ("v3", "v2")
    assert [v.status for v in list_versions(db)] == ["promoted", "retired", "retired"]

    retired, restored = rollback(db)
    assert (retired.name, restored.name) == ("v3", "v2")
    assert get_version(db, "v3").evaluation["rolled_back_at"]
    # A later promotion and rollback returns to v2, never to the rolled-back v3.
    _version(db, tmp_path, tiny_reply_model_dir, "v4")
    promote(db, "v4")
    assert rollback(db)[1].name == "v2"
    assert rollback(db)[1].name == "v1"
    retired, restored = rollback(db)
    assert (retired.name, restored) == ("v1", None)
    assert promoted_version(db) is None
    with pytest.raises(VersionError, match="nothing to roll back"):
        rollback(db)


def test_only_one_version_is_ever_promoted(migrated_database, tmp_path, tiny_reply_model_dir):
    db = migrated_database
    for name in ("a", "b"):
        _version(db, tmp_path, tiny_reply_model_dir, name)
    promote(db, "a")
    promote(db, "b")
    promote(db, "b")  # promoting the promoted version changes nothing
    assert [v.name for v in list_versions(db) if v.status == "promoted"] == ["b"]


def test_promote_refuses_unknown_names_and_missing_files(
    migrated_database, tmp_path, tiny_reply_model_dir
):
    db = migrated_database
    with pytest.raises(VersionError, match="no model version named 'nope'"):
        promote(db, "nope")
    version = _version(db, tmp_path, tiny_reply_model_dir, "gone")
    shutil.rmtree(version.path)
    with pytest.raises(VersionError, match="has no model files"):
        promote(db, "gone")
    with pytest.raises(VersionError, match="already exists"):
        _version(db, tmp_path / "other", tiny_reply_model_dir, "gone")


def test_serving_path_falls_back_to_the_base_model(
    migrated_database, tmp_path, tiny_settings, tiny_reply_model_dir
):
    db = migrated_database
    assert promoted_reply_model_path(db, partial(reply_model_path, tiny_settings.paths)) == (
        tiny_reply_model_dir,
        BASE_VERSION,
    )
    version = _version(db, tmp_path, tiny_reply_model_dir, "v1")
    promote(db, "v1")
    assert promoted_reply_model_path(db, partial(reply_model_path, tiny_settings.paths)) == (
        tmp_path / "v1",
        "v1",
    )
    shutil.rmtree(version.path)
    with pytest.raises(ModelUnavailableError, match="rollback"):
        promoted_reply_model_path(db, partial(reply_model_path, tiny_settings.paths))


def _provider(settings, db, *, check_interval):
    return ReplyModelProvider(
        db,
        partial(reply_model_path, settings.paths),
        base_repair=partial(repair_hint, settings.paths),
        check_interval=check_interval,
    )


def test_provider_picks_up_a_promotion_without_a_restart(
    migrated_database, tmp_path, tiny_settings, tiny_reply_model_dir
):
    db = migrated_database
    _version(db, tmp_path, tiny_reply_model_dir, "v1")
    provider = _provider(tiny_settings, db, check_interval=0.0)
    model_a, tokenizer, name = provider.get()
    assert name == BASE_VERSION and tokenizer is not None
    assert provider.get()[0] is model_a  # nothing changed: no reload
    promote(db, "v1")
    model_b, _, name = provider.get()
    assert name == "v1" and model_b is not model_a
    # A promoted version whose files vanished does not take serving down.
    shutil.rmtree(tmp_path / "v1")
    assert provider.get()[2] == "v1"
    assert "has no model at" in provider.error


def test_provider_checks_the_store_at_most_every_interval(
    migrated_database, tmp_path, tiny_settings, tiny_reply_model_dir
):
    db = migrated_database
    _version(db, tmp_path, tiny_reply_model_dir, "v1")
    provider = _provider(tiny_settings, db, check_interval=3600.0)
    assert provider.get()[2] == BASE_VERSION
    promote(db, "v1")
    assert provider.get()[2] == BASE_VERSION  # not checked again yet
    provider.check_interval = 0.0
    assert provider.get()[2] == "v1"


def test_models_cli_list_promote_rollback(tmp_path, tiny_reply_model_dir, monkeypatch):
    from chatbot.settings import load_settings
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    home = tmp_path / "home"
    monkeypatch.setenv("CHATBOT_HOME", str(home))
    settings = load_settings()
    home.mkdir()
    upgrade(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    _version(db, tmp_path, tiny_reply_model_dir, "reply-1")
    _version(db, tmp_path, tiny_reply_model_dir, "reply-2")
    runner = CliRunner()

    result = runner.invoke(main, ["models", "promote", "reply-1"])
    assert result.exit_code == 0, result.output
    assert "reply-1" in result.output
    result = runner.invoke(main, ["models", "promote", "reply-2", "--json"])
    assert json.loads(result.output)["previous"] == "reply-1"
    listing = json.loads(runner.invoke(main, ["models", "list", "--json"]).output)
    assert [(v["name"], v["status"]) for v in listing["versions"]] == [
        ("reply-2", "promoted"),
        ("reply-1", "retired"),
    ]
    assert listing["serving"] == "reply-2"
    text = runner.invoke(main, ["models", "list"]).output
    assert "reply-2" in text and "promoted" in text

    result = runner.invoke(main, ["models", "rollback"])
    assert result.exit_code == 0 and "reply-1" in result.output
    result = runner.invoke(main, ["models", "rollback"])
    assert result.exit_code == 0 and "base model" in result.output
    result = runner.invoke(main, ["models", "rollback"])
    assert result.exit_code == 1 and "nothing to roll back" in result.output
    result = runner.invoke(main, ["models", "promote", "missing"])
    assert result.exit_code == 1 and "no model version named 'missing'" in result.output
    db.dispose()


def test_promotion_refuses_a_version_that_evaluated_worse_unless_forced(
    migrated_database, tmp_path, tiny_reply_model_dir
):
    from chatbot.models.versions import set_evaluation

    db = migrated_database
    for name in ("good", "worse", "unknown"):
        _version(db, tmp_path, tiny_reply_model_dir, name)
    set_evaluation(
        db,
        "good",
        {"val_pairs": 6, "val_loss": 2.0, "compared_with": "base", "compared_val_loss": 3.0},
    )
    promote(db, "good")
    set_evaluation(
        db,
        "worse",
        {"val_pairs": 6, "val_loss": 2.5, "compared_with": "good", "compared_val_loss": 2.0},
    )
    with pytest.raises(VersionError) as refused:
        promote(db, "worse")
    assert str(refused.value) == (
        "not promoted: worse evaluates worse than the serving good: validation loss 2.5000 "
        "vs 2.0000 on the same 6 validation pairs; to serve it anyway, promote it with --force"
    )
    assert promoted_version(db).name == "good"
    # Never compared with the serving version on the same pairs: nothing to go by, so allowed.
    promote(db, "unknown")
    # The comparison counts whichever of the two recorded it: here the serving version
    # measured "good" on its validation pairs, after "good" was retired.
    set_evaluation(
        db,
        "unknown",
        {"val_pairs": 5, "val_loss": 1.0, "compared_with": "good", "compared_val_loss": 2.0},
    )
    with pytest.raises(
        VersionError,
        match="good evaluates worse than the serving unknown: validation loss 2.0000 "
        "vs 1.0000 on the same 5 validation pairs",
    ):
        promote(db, "good")
    now, previous = promote(db, "good", force=True)
    assert (now.name, previous.name) == ("good", "unknown")


def test_models_cli_promote_force(tmp_path, tiny_reply_model_dir, monkeypatch):
    from chatbot.models.versions import set_evaluation
    from chatbot.settings import load_settings
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    monkeypatch.setenv("CHATBOT_HOME", str(tmp_path / "home"))
    settings = load_settings()
    (tmp_path / "home").mkdir()
    upgrade(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    _version(db, tmp_path, tiny_reply_model_dir, "reply-1")
    set_evaluation(
        db,
        "reply-1",
        {"val_pairs": 4, "val_loss": 3.5, "compared_with": "base", "compared_val_loss": 3.0},
    )
    runner = CliRunner()
    result = runner.invoke(main, ["models", "promote", "reply-1"])
    assert result.exit_code == 1
    assert (
        "reply-1 evaluates worse than the serving base: validation loss 3.5000 vs 3.0000"
        in result.output
    )
    assert "--force" in result.output
    result = runner.invoke(main, ["models", "promote", "reply-1", "--force", "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == {
        "promoted": "reply-1",
        "previous": None,
    }
    db.dispose()
