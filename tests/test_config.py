"""Settings: defaults, file, environment, precedence and clear errors."""

from __future__ import annotations

import pytest

from chatbot.config import ensure_home
from chatbot.errors import ConfigError
from chatbot.settings import load_settings


def test_defaults_put_everything_under_the_data_directory(tmp_path):
    settings = load_settings()
    assert settings.home == tmp_path / "xdg" / "chatbot"
    assert settings.resolved_database_url == f"sqlite:///{settings.home / 'chatbot.db'}"
    assert settings.model_cache_dir == settings.home / "models"
    assert settings.index_dir.parent == settings.home


def test_environment_sets_home_and_database(monkeypatch, tmp_path):
    monkeypatch.setenv("CHATBOT_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CHATBOT_DATABASE_URL", "postgresql+psycopg://u@db/x")
    settings = load_settings()
    assert settings.home == tmp_path / "h"
    assert settings.resolved_database_url == "postgresql+psycopg://u@db/x"


def test_file_values_apply_and_environment_wins(monkeypatch, tmp_path):
    config = tmp_path / "chatbot.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("CHATBOT_PORT", "9100")
    settings = load_settings(config)
    assert settings.host == "0.0.0.0"
    assert settings.port == 9100


def test_config_file_from_environment_variable(monkeypatch, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("port = 9001\n")
    monkeypatch.setenv("CHATBOT_CONFIG", str(config))
    assert load_settings().port == 9001


def test_two_files_never_mix(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("port = 1111\n")
    b.write_text('host = "10.0.0.1"\n')
    assert load_settings(a).host == "127.0.0.1"
    assert load_settings(b).port == 7860


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("port = 'abc'\n", "port: Input should be a valid integer"),
        ("prot = 1\n", "prot: Extra inputs are not permitted"),
        ("port = [\n", "not valid TOML"),
        ("[dialogue]\ndecline_nearer_offtopic_by = 3\n", "decline_nearer_offtopic_by"),
        ("[dialogue]\nclarify_other = ''\n", "clarify_other"),
    ],
)
def test_bad_file_names_the_problem(tmp_path, content, expected):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(config)
    assert str(config) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_ensure_home_creates_the_tree(tmp_path):
    settings = load_settings(home=tmp_path / "new" / "home")
    ensure_home(settings.paths)
    for directory in (
        settings.home,
        settings.model_cache_dir,
        settings.index_dir,
        settings.versions_dir,
    ):
        assert directory.is_dir()


def test_unusable_home_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot be created.*CHATBOT_HOME"):
        ensure_home(load_settings(home=blocker / "home").paths)
