"""The shipped models, for real: conversion of SmolLM2 from its GGUF file once, reuse of
the cache, and the real embedder. Slow: run with ./run.sh test-slow."""

from __future__ import annotations

import json

import pytest

from chatbot.config import ensure_home
from chatbot.models.check import run_checks
from chatbot.models.embedder import load_embedder
from chatbot.models.generate import generate_text
from chatbot.models.reply_model import converted_dir, load_reply_model, prepare_reply_model

pytestmark = pytest.mark.slow


def test_minilm_embeds_similar_questions_close_together(settings):
    model = load_embedder(settings.paths)
    a, b, c = model.encode(
        ["Where is my parcel?", "My package has not arrived yet", "How do I change my password?"],
        normalize_embeddings=True,
    )
    assert a.shape == (384,)
    assert float(a @ b) > float(a @ c) + 0.1


def test_smollm2_is_converted_once_then_reused(settings):
    ensure_home(settings.paths)
    first = prepare_reply_model(settings.paths)
    assert first.action == "converted"
    assert first.parameters > 100_000_000
    meta = json.loads((converted_dir(settings.paths) / "meta.json").read_text())
    assert meta["source_sha256"] and meta["dtype"] == "float32"
    second = prepare_reply_model(settings.paths)
    assert second.action == "reused"
    assert second.seconds < first.seconds / 5  # a ratio within one run, not a wall-clock target

    model, tokenizer = load_reply_model(converted_dir(settings.paths))
    reply = generate_text(
        model, tokenizer, [{"role": "user", "content": "Say hello."}], max_new_tokens=10
    )
    assert reply.strip()
    assert all(check.ok for check in run_checks(settings.paths)), run_checks(settings.paths)
