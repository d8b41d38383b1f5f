"""Training pieces one at a time: settings, pair weighting and the too-few-pairs error,
noise augmentation, prompts and loss masks, the learning-rate schedule, the loss, and
checkpoint averaging. Real SQLite store, tiny real models."""

from __future__ import annotations

import math

import pytest

from chatbot.errors import ConfigError
from chatbot.pairs import PairRecord
from chatbot.settings import load_settings
from chatbot.text.prompt import PromptFormat, PromptSettings, build_messages
from chatbot.training import TrainingError
from chatbot.training.data import load_training_data, quality_multipliers
from chatbot.training.examples import IGNORE, encode_pair, end_token_id
from chatbot.training.loop import lr_at
from chatbot.training.noise import add_noise
from chatbot.training.settings import TrainingSettings
from tests.test_training_support import fill_pairs


def test_settings_come_from_the_environment_and_are_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("CHATBOT_TRAINING__MODE", "full")
    monkeypatch.setenv("CHATBOT_TRAINING__ORIGIN_WEIGHTS", '{"imported": 1, "agent_edited": 5}')
    settings = load_settings(home=tmp_path)
    assert settings.training.mode == "full"
    assert settings.training.origin_weights == {"imported": 1.0, "agent_edited": 5.0}
    assert settings.training.peak_learning_rate == 5e-5
    monkeypatch.setenv("CHATBOT_TRAINING__ORIGIN_WEIGHTS", '{"bogus": 1}')
    with pytest.raises(ConfigError, match="unknown origins"):
        load_settings(home=tmp_path)
    with pytest.raises(ValueError, match="max_target_tokens"):
        TrainingSettings(max_length=64, max_target_tokens=64)
    assert TrainingSettings().layers_to_train(30, on_gpu=False) == 8
    assert TrainingSettings().layers_to_train(30, on_gpu=True) is None
    assert TrainingSettings(trainable_layers=40).layers_to_train(30, on_gpu=False) is None


def test_too_few_pairs_is_a_clear_error(sqlite_database):
    fill_pairs(sqlite_database, n_train=5, n_val=1)
    with pytest.raises(
        TrainingError,
        match=r"too few training pairs to train: 5 in the train split \(need 16\) and 1 in the val split \(need 2\)",
    ):
        load_training_data(sqlite_database, TrainingSettings())


def test_origin_and_quality_weight_or_filter_pairs(sqlite_database):
    fill_pairs(sqlite_database, n_train=20, n_val=4, origin="imported", source="a")
    fill_pairs(sqlite_database, n_train=20, n_val=0, origin="agent_edited", source="b")
    data = load_training_data(sqlite_database, TrainingSettings())
    weights = {p.origin: p.weight for p in data.train}
    assert weights == {"imported": 1.0, "agent_edited": 3.0}
    assert data.snapshot["train_by_source"] == {"a": 20, "b": 20}
    assert data.snapshot["train_by_origin"] == {"imported": 20, "agent_edited": 20}

    pairs = [
        PairRecord(i, "s", "imported", "train", [], "x", quality=q)
        for i, q in enumerate([-2.0, 0.0, 2.0, None])
    ]
    m = quality_multipliers(pairs, 0.25)
    assert m[0] < m[1] < m[2] and m[3] == 1.0
    assert quality_multipliers(pairs, 0.0) == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}


def test_min_quality_drops_low_quality_pairs(sqlite_database):
    fill_pairs(sqlite_database, n_train=20, n_val=4, source="good", quality=1.0)
    fill_pairs(sqlite_database, n_train=20, n_val=4, source="bad", quality=-1.0)
    data = load_training_data(sqlite_database, TrainingSettings(min_quality=0.0))
    assert {p.source for p in data.train} == {"good"}
    assert data.snapshot["dropped_below_min_quality"] == 24


def test_validation_subset_is_fixed_and_capped(sqlite_database):
    fill_pairs(sqlite_database, n_train=20, n_val=12)
    cfg = TrainingSettings(val_max_pairs=5)
    first = [p.id for p in load_training_data(sqlite_database, cfg).val]
    assert len(first) == 5 and first == [p.id for p in load_training_data(sqlite_database, cfg).val]


def test_noise_is_deterministic_and_changes_the_text():
    text = "Where is my order? It was supposed to arrive yesterday."
    assert add_noise(text, 7) == add_noise(text, 7)
    variants = {add_noise(text, seed) for seed in range(20)}
    assert text not in variants
    assert len(variants) > 10
    # Still recognisably the same message: most words survive.
    for noisy in variants:
        shared = set(noisy.lower().split()) & set(text.lower().split())
        assert len(shared) >= len(text.split()) // 2


def test_prompt_has_instruction_evidence_and_recent_history():
    context = [
        {"role": "customer", "text": f"message {i}"}
        if i % 2 == 0
        else {"role": "agent", "text": f"reply {i}"}
        for i in range(7)
    ]
    messages = build_messages(
        context, ["Past answer one.", "Past answer two."], system_prompt="Be nice.", history_turns=3
    )
    assert messages[0]["role"] == "system"
    assert (
        messages[0]["content"].startswith("Be nice.")
        and "- Past answer two." in messages[0]["content"]
    )
    assert [(m["role"], m["content"]) for m in messages[1:]] == [
        ("user", "message 4"),
        ("assistant", "reply 5"),
        ("user", "message 6"),
    ]
    assert "Past answers" not in build_messages(context, [], system_prompt="Be nice.")[0]["content"]


def test_loss_only_on_reply_tokens_and_prompt_matches_serving(tiny_reply_model_dir):
    from transformers import AutoTokenizer

    from chatbot.models.generate import chat_inputs

    tokenizer = AutoTokenizer.from_pretrained(tiny_reply_model_dir)
    cfg = TrainingSettings(max_length=512)
    pair = PairRecord(
        1,
        "s",
        "imported",
        "train",
        [{"role": "customer", "text": "Where is my order?"}],
        "You can track your parcel.",
    )
    prompt = PromptFormat.from_settings(PromptSettings())
    encoded = encode_pair(tokenizer, pair, ["Returns are free."], cfg, prompt)
    reply = tokenizer("You can track your parcel.", add_special_tokens=False)["input_ids"] + [
        end_token_id(tokenizer)
    ]
    assert [x for x in encoded.labels if x != IGNORE] == reply
    prompt_len = encoded.labels.index(reply[0])
    assert all(x == IGNORE for x in encoded.labels[:prompt_len])
    # The prompt part is exactly what serving feeds the model for the same evidence.
    messages = build_messages(
        pair.context, ["Returns are free."], system_prompt=prompt.system_prompt
    )
    serving = chat_inputs(tokenizer, messages)["input_ids"][0].tolist()
    assert encoded.input_ids[:prompt_len] == serving


def test_long_examples_drop_history_then_evidence(tiny_reply_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_reply_model_dir)
    context = [
        {"role": "customer", "text": "old message " * 30},
        {"role": "agent", "text": "old reply " * 30},
        {"role": "customer", "text": "Where is my order?"},
    ]
    pair = PairRecord(1, "s", "imported", "train", context, "Track it.")
    cfg = TrainingSettings(max_length=200, max_target_tokens=16)
    brief = PromptFormat.from_settings(
        PromptSettings(evidence_max_chars=1000, system_prompt="Be brief.")
    )
    full = encode_pair(tokenizer, pair, [], TrainingSettings(max_length=4096), brief)
    fitted = encode_pair(tokenizer, pair, ["evidence " * 5], cfg, brief)
    assert len(full.input_ids) > 200 >= len(fitted.input_ids)
    assert "old message" not in tokenizer.decode(fitted.input_ids)
    assert "evidence" in tokenizer.decode(fitted.input_ids)
    long_prompt = PromptFormat.from_settings(
        PromptSettings(evidence_max_chars=10_000, system_prompt="x " * 100)
    )
    assert (
        encode_pair(
            tokenizer,
            pair,
            ["evidence " * 500],
            TrainingSettings(max_length=40, max_target_tokens=8),
            long_prompt,
        )
        is None
    )


def test_learning_rate_warms_up_then_decays():
    cfg = TrainingSettings(learning_rate=1.0, warmup_fraction=0.1, min_lr_fraction=0.1)
    assert lr_at(0.05, cfg) == pytest.approx(0.5)
    assert lr_at(0.1, cfg) == pytest.approx(1.0)
    values = [lr_at(p / 20, cfg) for p in range(2, 21)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_at(1.0, cfg) == pytest.approx(0.1)


def test_weighted_label_smoothed_loss_on_tiny_model(tiny_reply_model_dir):
    import torch

    from chatbot.training.examples import collate
    from chatbot.training.model import build_loss_module, load_base

    model, tokenizer = load_base(tiny_reply_model_dir, "cpu")
    cfg = TrainingSettings(max_length=512)
    pairs = [
        PairRecord(i, "s", "imported", "train", [{"role": "customer", "text": q}], a, weight=w)
        for i, (q, a, w) in enumerate(
            [
                ("Where is my order?", "Track it.", 1.0),
                ("Return a kettle", "Free within 30 days.", 3.0),
            ]
        )
    ]
    batch = collate(
        [
            encode_pair(tokenizer, p, [], cfg, PromptFormat.from_settings(PromptSettings()))
            for p in pairs
        ],
        tokenizer.pad_token_id,
    )
    module = build_loss_module(model)
    with torch.no_grad():
        loss, ce_sum, tokens = module(
            batch["input_ids"], batch["attention_mask"], batch["labels"], batch["weights"]
        )
        full_logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits
        smoothed, _, _ = module(
            batch["input_ids"], batch["attention_mask"], batch["labels"], batch["weights"], 0.1
        )
    # Plain CE equals the usual shifted CE of the full model on the reply tokens.
    labels = batch["labels"][:, 1:]
    reference = torch.nn.functional.cross_entropy(
        full_logits[:, :-1].reshape(-1, full_logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    assert ce_sum.item() == pytest.approx(reference.item(), rel=1e-4)
    assert tokens.item() == (labels != IGNORE).sum().item()
    # The weighted loss leans toward the heavier example; smoothing changes it.
    per_example = [
        torch.nn.functional.cross_entropy(
            full_logits[i, :-1][labels[i] != IGNORE],
            labels[i][labels[i] != IGNORE],
            reduction="sum",
        )
        for i in range(2)
    ]
    n = [(labels[i] != IGNORE).sum() for i in range(2)]
    expected = (per_example[0] + 3 * per_example[1]) / (n[0] + 3 * n[1])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert not math.isclose(loss.item(), smoothed.item())


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_checkpoint_averaging_is_the_mean_of_merged_weights(tmp_path, tiny_reply_model_dir, mode):
    import torch

    from chatbot.training.checkpoints import save_checkpoint
    from chatbot.training.fusion import best_and_fused
    from chatbot.training.model import load_base, materialize, prepare_trainable, trainable_state

    cfg = TrainingSettings(mode=mode, trainable_layers="all", fuse_top_k=2)
    model, _ = load_base(tiny_reply_model_dir, "cpu")
    model = prepare_trainable(model, cfg)
    validations = []
    torch.manual_seed(0)
    for step, val_loss in [(1, 3.0), (2, 1.0), (3, 2.0)]:
        with torch.no_grad():
            for p in trainable_state(model).values():
                p.add_(torch.randn_like(p) * 0.01)
        path = save_checkpoint(tmp_path, step, trainable_state(model), {"val_loss": val_loss})
        validations.append({"step": step, "val_loss": val_loss, "checkpoint": str(path)})
    best, fused, steps = best_and_fused(model, validations, cfg)
    assert steps == [2, 3]
    from chatbot.training.checkpoints import load_checkpoint_tensors

    two = materialize(model, load_checkpoint_tensors(tmp_path / "checkpoints" / "step-000002"), cfg)
    three = materialize(
        model, load_checkpoint_tensors(tmp_path / "checkpoints" / "step-000003"), cfg
    )
    assert best.keys() == fused.keys() == two.keys() and len(best) > 0
    for key in best:
        assert torch.equal(best[key], two[key])
        assert torch.allclose(fused[key], (two[key] + three[key]) / 2)
    if mode == "lora":
        # Merged LoRA weights are what peft's own merge produces.
        import copy

        from chatbot.training.model import load_trainable_state

        load_trainable_state(
            model, load_checkpoint_tensors(tmp_path / "checkpoints" / "step-000002")
        )
        merged = copy.deepcopy(model).merge_and_unload().state_dict()
        for key, value in two.items():
            assert torch.allclose(merged[key], value, atol=1e-6)
