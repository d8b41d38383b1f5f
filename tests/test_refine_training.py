"""Retrieve-and-refine training (`chatbot.training.refine_examples`): the agent's true
reply, or a near copy, is shown among the past answers of the configured share of train
examples and of no validation example; the choice is deterministic; with the knob at 0
the encoded examples are exactly what they were; a whole run with it on completes and
records it. Tiny real models, real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.config import ensure_home
from chatbot.pairs import PairRecord
from chatbot.settings import load_settings
from chatbot.text.prompt import PromptFormat, PromptSettings
from chatbot.training.epoch_examples import is_noised, train_example
from chatbot.training.refine_examples import EXACT, NEAR_COPY, near_copy, shown_evidence
from chatbot.training.settings import TrainingSettings
from tests.test_training_support import QUESTIONS, fill_pairs, overlap_evidence

REPLIES = [answer for _, answer in QUESTIONS] + [
    "Thanks for waiting. Your parcel left our warehouse today. Tracking is in your e-mail.",
    "Sorry about that! We have refunded {order_number}; it reaches your card within 5 working days.",
]
RETRIEVED = ["Past answer about shipping times.", "Past answer about returns."]


def _pairs(n: int, split: str) -> list[PairRecord]:
    return [
        PairRecord(
            i,
            "demo",
            "imported",
            split,
            [{"role": "customer", "text": f"Question {i}?"}],
            REPLIES[i % len(REPLIES)],
        )
        for i in range(n)
    ]


def test_true_reply_in_the_configured_share_of_train_examples_and_never_in_validation():
    cfg = TrainingSettings(true_reply_in_evidence=0.3, true_reply_noise=0.5)
    train = _pairs(600, "train")
    kinds, positions = {EXACT: 0, NEAR_COPY: 0}, {0: 0, 1: 0}
    for epoch in range(2):
        for pair in train:
            shown = shown_evidence(pair, RETRIEVED, cfg, evidence_k=2, epoch=epoch)
            if shown.inserted is None:
                assert shown.texts == RETRIEVED
                continue
            kinds[shown.inserted] += 1
            positions[shown.position] += 1
            assert len(shown.texts) == 2  # the least relevant retrieved answer made room
            assert shown.texts[1 - shown.position] == RETRIEVED[0]
            if shown.inserted == EXACT:
                assert shown.texts[shown.position] == pair.target
            else:
                assert shown.texts[shown.position] != pair.target
    share = sum(kinds.values()) / (2 * len(train))
    assert 0.25 < share < 0.35
    assert 0.4 < kinds[NEAR_COPY] / sum(kinds.values()) < 0.6
    assert min(positions.values()) > 0.35 * sum(positions.values())  # anywhere among the k shown

    # Validation pairs never: not even when every train example gets it.
    always = TrainingSettings(true_reply_in_evidence=1.0)
    for epoch in range(3):
        for pair in _pairs(200, "val"):
            shown = shown_evidence(pair, RETRIEVED, always, evidence_k=2, epoch=epoch)
            assert shown.inserted is None and shown.texts == RETRIEVED


def test_left_alone_without_retrieved_evidence_or_without_past_answers_in_the_prompt():
    always = TrainingSettings(true_reply_in_evidence=1.0)
    pair = _pairs(1, "train")[0]
    assert shown_evidence(pair, [], always, evidence_k=2, epoch=0).inserted is None
    assert shown_evidence(pair, RETRIEVED, always, evidence_k=0, epoch=0).inserted is None
    # Fewer retrieved than k: the reply joins them, nothing is dropped.
    shown = shown_evidence(pair, RETRIEVED[:1], always, evidence_k=3, epoch=0)
    assert len(shown.texts) == 2 and RETRIEVED[0] in shown.texts
    # A retrieved answer identical to the reply is not shown twice.
    shown = shown_evidence(
        pair,
        [pair.target, *RETRIEVED],
        TrainingSettings(true_reply_in_evidence=1.0, true_reply_noise=0.0),
        evidence_k=3,
        epoch=0,
    )
    assert shown.texts.count(pair.target) == 1 and len(shown.texts) == 3


def test_the_choice_is_deterministic_for_a_seed_and_varies_with_it():
    def choices(seed: int, epoch: int = 0):
        cfg = TrainingSettings(seed=seed, true_reply_in_evidence=0.3, true_reply_noise=0.5)
        return [
            shown_evidence(p, RETRIEVED, cfg, evidence_k=2, epoch=epoch)
            for p in _pairs(200, "train")
        ]

    assert choices(1) == choices(1)
    assert choices(1) != choices(2)
    assert choices(1, epoch=0) != choices(
        1, epoch=1
    )  # a pair is not shown the same thing every epoch


@pytest.mark.parametrize("text", REPLIES + ["Thanks again", "no no", "Yes. Done."])
def test_near_copy_differs_from_and_overlaps_with_the_original(text):
    for seed in range(10):
        copy = near_copy(text, seed)
        assert copy == near_copy(text, seed)
        assert copy != text
        original, kept = text.split(), copy.split()
        assert set(kept) <= set(original)
        assert len(set(kept) & set(original)) >= max(1, len(original) // 3)
    assert len({near_copy(text, seed) for seed in range(10)}) > 1 or len(text.split()) <= 2


def test_near_copy_changes_what_the_prompt_shows():
    long = "Our warehouse ships every order within two working days. " * 12
    for seed in range(10):
        copy = near_copy(long, seed, visible_chars=80)
        assert copy[:79] != " ".join(long.split())[:79]


@pytest.fixture(scope="module")
def tokenizer(tiny_reply_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_reply_model_dir)


def _encodings(tokenizer, cfg, prompt, pairs, epochs=range(4)):
    from chatbot.training.examples import encode_pair

    clean = {p.id: encode_pair(tokenizer, p, RETRIEVED, cfg, prompt) for p in pairs}
    return clean, [
        (train_example(tokenizer, p, list(RETRIEVED), epoch, cfg, prompt, clean[p.id]), p, epoch)
        for epoch in epochs
        for p in pairs
    ]


def test_knob_at_zero_encodes_exactly_as_before(tokenizer):
    from chatbot.training.examples import encode_pair

    cfg = TrainingSettings(true_reply_in_evidence=0.0, noise_probability=0.5)
    prompt = PromptFormat.from_settings(PromptSettings())
    clean, got = _encodings(tokenizer, cfg, prompt, _pairs(24, "train"))
    for (encoded, inserted), pair, epoch in got:
        # The loop before retrieve and refine: noised with its seed, else the clean encoding.
        if is_noised(pair, epoch, cfg):
            before = encode_pair(
                tokenizer, pair, RETRIEVED, cfg, prompt, noise_seed=f"{cfg.seed}:{epoch}:{pair.id}"
            )
        else:
            before = clean[pair.id]
        assert inserted is None
        assert (encoded.input_ids, encoded.labels, encoded.weight) == (
            before.input_ids,
            before.labels,
            before.weight,
        )


def test_the_inserted_reply_is_in_the_encoded_prompt(tokenizer):
    from chatbot.training.examples import IGNORE

    cfg = TrainingSettings(true_reply_in_evidence=0.5, true_reply_noise=0.5, noise_probability=0.0)
    prompt = PromptFormat.from_settings(PromptSettings())
    _, got = _encodings(tokenizer, cfg, prompt, _pairs(24, "train"))
    seen = set()
    for (encoded, inserted), pair, epoch in got:
        prompt_text = tokenizer.decode(
            [t for t, label in zip(encoded.input_ids, encoded.labels) if label == IGNORE]
        )
        shown = shown_evidence(
            pair,
            RETRIEVED,
            cfg,
            evidence_k=prompt.evidence_k,
            epoch=epoch,
            visible_chars=prompt.evidence_max_chars,
        )
        assert inserted == shown.inserted
        if inserted is None:
            assert f"- {pair.target}" not in prompt_text
        else:
            assert f"- {shown.texts[shown.position]}" in prompt_text
            seen.add(inserted)
        assert tokenizer.decode([x for x in encoded.labels if x != IGNORE]).startswith(pair.target)
    assert seen == {EXACT, NEAR_COPY}


def test_a_run_with_retrieve_and_refine_completes_and_records_it(tmp_path, tiny_reply_model_dir):
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.training.data import load_training_data
    from chatbot.training.evidence import compute_evidence
    from chatbot.training.model import load_base
    from chatbot.training.run import run_training, validation_loss

    training = {
        "max_steps": 4,
        "eval_every": 2,
        "eval_every_minutes": None,
        "max_minutes": None,
        "batch_size": 4,
        "grad_accum": 1,
        "learning_rate": 3e-3,
        "trainable_layers": "all",
        "min_train_pairs": 8,
        "fuse_top_k": 1,
        "true_reply_in_evidence": 0.5,
        "true_reply_noise": 0.5,
    }
    settings = load_settings(
        home=tmp_path / "home", reply_model_path=tiny_reply_model_dir, training=training
    )
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    try:
        fill_pairs(database)
        result = run_training(
            settings.paths,
            settings.training,
            settings.prompt,
            database,
            evidence_for=overlap_evidence(database),
            evidence_note="test overlap",
        )
        recorded = result.metrics["retrieve_and_refine"]
        assert recorded["true_reply_in_evidence"] == 0.5 and recorded["true_reply_noise"] == 0.5
        assert (
            recorded["active"] and recorded["eligible_train_pairs"] == recorded["train_pairs"] == 24
        )
        meta = json.loads((Path(result.version_path) / "meta.json").read_text())
        assert meta["retrieve_and_refine"] == recorded
        assert (
            json.loads((Path(result.run_dir) / "meta.json").read_text())["retrieve_and_refine"]
            == recorded
        )

        # Validation saw the serving situation: the base model's loss on the plain evidence.
        data = load_training_data(database, settings.training)
        evidence = compute_evidence([*data.train, *data.val], overlap_evidence(database))
        model, tokenizer = load_base(tiny_reply_model_dir, "cpu")
        plain = validation_loss(
            model,
            tokenizer,
            data,
            evidence,
            settings.training,
            PromptFormat.from_settings(settings.prompt),
            "cpu",
        )
        assert result.metrics["val_loss_before"] == pytest.approx(plain, rel=1e-4)
    finally:
        database.dispose()
