"""Serving prompts the reply model exactly as training did: the dialogue writer and
the training examples are built by the same `PromptFormat`."""

from __future__ import annotations

from chatbot.dialogue.critique import Evidence, EvidenceItem
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.writer import ReplyWriter
from chatbot.text.prompt import PromptFormat, PromptSettings, build_messages


def test_draft_prompt_is_the_training_prompt():
    training = PromptSettings(evidence_k=2, history_turns=3, system_prompt="Be brief.")
    prompt = PromptFormat.from_settings(training)
    answers = [
        "Returns are free within 30 days.",
        "Start a return under Orders.",
        "A third answer, not shown.",
    ]
    evidence = Evidence(
        query="and how long does that take?",
        history=[],
        items=[EvidenceItem(i, "q", a, 0.9) for i, a in enumerate(answers)],
    )
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "I want to return a lamp"},
        {"role": "assistant", "content": "Sure, I can help with that."},
    ]
    served = ReplyWriter(None, None, DialogueSettings(), prompt).draft_messages(evidence, history)

    context = [
        {"role": "customer", "text": "Hi"},
        {"role": "agent", "text": "Hello! How can I help?"},
        {"role": "customer", "text": "I want to return a lamp"},
        {"role": "agent", "text": "Sure, I can help with that."},
        {"role": "customer", "text": "and how long does that take?"},
    ]
    trained = build_messages(
        context,
        answers[:2],
        system_prompt="Be brief.",
        history_turns=3,
        evidence_max_chars=training.evidence_max_chars,
    )
    assert served == trained
    assert "A third answer" not in served[0]["content"]
    assert served[-1] == {"role": "user", "content": "and how long does that take?"}
    assert len(served) == 1 + 3


def test_one_prompt_section_and_moved_knobs_say_where_they_went(tmp_path, monkeypatch):
    import pytest

    from chatbot.errors import ConfigError
    from chatbot.settings import load_settings

    settings = load_settings(home=tmp_path, prompt={"evidence_k": 3, "history_turns": 5})
    assert PromptFormat.from_settings(settings.prompt).evidence_k == 3
    assert not hasattr(settings.training, "evidence_k") and not hasattr(
        settings.dialogue, "history_turns"
    )
    with pytest.raises(ConfigError, match=r"moved to the prompt section \(prompt.evidence_k"):
        load_settings(home=tmp_path, training={"evidence_k": 3})
    monkeypatch.setenv("CHATBOT_DIALOGUE__EVIDENCE_K", "4")
    with pytest.raises(ConfigError, match="renamed retrieve_k"):
        load_settings(home=tmp_path)


def test_evaluation_builds_the_same_prompt(tiny_settings):
    from chatbot.evaluation.variants import OnePassVariant

    variant = OnePassVariant(
        "base", None, None, "v", None, tiny_settings.prompt, tiny_settings.dialogue.max_new_tokens
    )
    assert variant.prompt == PromptFormat.from_settings(tiny_settings.prompt)
