"""The CUDA path, where a GPU is present (skipped everywhere else: nothing depends on
one). A tiny reply-model training run and the ranker scoring on the GPU, with
the same entry points the CPU uses; a GPU-trained version loads on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def test_training_a_reply_model_runs_on_the_gpu(tmp_path, tiny_reply_model_dir):
    from chatbot.config import ensure_home
    from chatbot.models.reply_model import load_reply_model
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.training.run import run_training
    from tests.test_training_run import _settings
    from tests.test_training_support import fill_pairs

    settings = _settings(tmp_path, tiny_reply_model_dir)
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    try:
        fill_pairs(database)
        result = run_training(settings.paths, settings.training, settings.prompt, database)
    finally:
        database.dispose()
    assert result is not None and result.metrics["device"].startswith("cuda")
    assert result.metrics["val_loss"] < result.metrics["val_loss_before"]
    model, _tokenizer = load_reply_model(
        Path(result.version_path)
    )  # a GPU-trained version serves on the CPU
    assert next(model.parameters()).device.type == "cpu"


def test_the_ranker_scores_on_the_gpu(tiny_settings, tiny_embedder_dir):
    from chatbot.training.ranker import base_model

    model, _ = base_model(tiny_settings.paths, tiny_settings.ranker, "cuda")
    scores = model.predict(
        [["where is my parcel?", "track it under Orders"]], activation_fn=torch.nn.Sigmoid()
    )
    assert 0.0 <= float(scores[0]) <= 1.0
