"""Every wait for the reply model is bounded: a model that raises part-way, one that
stalls, and one still loading end, within their bounds, in the retrieved answer (never a
hung turn); the streaming protocol (tokens, then a replace when a better answer wins)
adds up to what was sent; and a confident retrieved answer is sent without generating.
Tiny real models throughout; the faults are injected with forward hooks on them."""

from __future__ import annotations

import threading
import time

import pytest

from chatbot.dialogue.turn import DialogueEvent, LiveText
from chatbot.models.generate import (
    GenerationFailed,
    GenerationTimeout,
    Limits,
    generate_text,
    stream_text,
)
from chatbot.models.reply_model import load_reply_model, reply_model_path
from tests.test_dialogue_support import SHOP, make_manager, shop  # noqa: F401

ORDER_Q = SHOP[0][0]
MESSAGES = [{"role": "user", "content": "Where is my order?"}]


def faulty(model, *, after: int, fault: str, stall_s: float = 30.0):
    """The model, made to raise or stall (sleep) from its `after`-th forward pass on."""
    calls = {"n": 0}

    def hook(module, args, output):
        calls["n"] += 1
        if calls["n"] >= after:
            if fault == "raise":
                raise RuntimeError("CUDA error: device-side assert (injected)")
            time.sleep(stall_s)
        return output

    handle = model.register_forward_hook(hook)
    return handle, calls


@pytest.fixture
def tiny_model(tiny_settings):
    return load_reply_model(reply_model_path(tiny_settings.paths))


def test_a_model_that_raises_mid_generation_raises_in_the_callers_thread(tiny_model):
    model, tokenizer = tiny_model
    handle, calls = faulty(model, after=3, fault="raise")
    try:
        with pytest.raises(GenerationFailed, match="injected"):
            list(
                stream_text(
                    model,
                    tokenizer,
                    MESSAGES,
                    max_new_tokens=20,
                    limits=Limits(first_token=5, next_token=5),
                )
            )
        assert calls["n"] == 3  # it did start, then failed part-way
    finally:
        handle.remove()


def test_a_stalled_model_times_out_within_its_bound_and_is_told_to_stop(tiny_model):
    model, tokenizer = tiny_model
    handle, calls = faulty(model, after=2, fault="stall", stall_s=1.5)
    try:
        started = time.monotonic()
        with pytest.raises(GenerationTimeout, match="no text for 0.3 s"):
            generate_text(
                model,
                tokenizer,
                MESSAGES,
                max_new_tokens=50,
                limits=Limits(first_token=0.3, next_token=0.3),
            )
        assert time.monotonic() - started < 1.2  # the bound, not the stall, decided
        time.sleep(2.5)
        seen = calls["n"]
        time.sleep(2.0)
        assert calls["n"] == seen  # the abandoned generation stopped at its next token
    finally:
        handle.remove()


def test_the_whole_reply_has_a_bound_too(tiny_model):
    model, tokenizer = tiny_model
    handle, _ = faulty(model, after=1, fault="stall", stall_s=0.15)
    try:
        with pytest.raises(GenerationTimeout, match="more than 0.5 s"):
            generate_text(
                model,
                tokenizer,
                MESSAGES,
                max_new_tokens=60,
                limits=Limits(next_token=5, total=0.5),
            )
    finally:
        handle.remove()


def _answer_within(manager, message, seconds):
    started = time.monotonic()
    reply = manager.respond(message)
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"took {elapsed:.1f}s"
    return reply


@pytest.mark.parametrize("fault", ["raise", "stall"])
def test_a_failing_model_ends_in_the_retrieved_answer_within_the_bound(shop, fault):
    settings, database, retriever, ids = shop
    manager = make_manager(
        settings,
        database,
        retriever,
        max_rounds=0,
        first_token_s=0.5,
        next_token_s=0.5,
        handoff_threshold=0.0,
    )
    model, _, _ = manager.reply_model()
    handle, _ = faulty(model, after=2, fault=fault, stall_s=5.0)
    try:
        reply = _answer_within(manager, ORDER_Q, 4.0)
    finally:
        handle.remove()
    assert reply.sent and reply.reason.endswith("retrieved won") and reply.text == SHOP[0][1]
    error = next(c["error"] for c in reply.to_dict()["candidates"] if "error" in c)
    assert (
        ("GenerationFailed" in error and "injected" in error)
        if fault == "raise"
        else "GenerationTimeout" in error
    )


def test_a_model_still_loading_does_not_hold_up_the_turn(shop):
    settings, database, retriever, _ = shop
    release = threading.Event()

    class SlowSource:
        def get(self):
            release.wait(30)
            raise RuntimeError("never loaded")

    manager = make_manager(
        settings, database, retriever, source=SlowSource(), model_wait_s=0.3, handoff_threshold=0.0
    )
    try:
        reply = _answer_within(manager, ORDER_Q, 3.0)
        assert reply.sent and reply.text == SHOP[0][1]
        assert any("ModelNotReady" in c.get("error", "") for c in reply.to_dict()["candidates"])
    finally:
        release.set()


def test_a_confident_retrieved_answer_is_sent_without_generating(shop):
    settings, database, retriever, ids = shop
    calls = []

    class CountingSource:
        def get(self):
            calls.append(1)
            raise AssertionError("the model must not be asked for")

    # The default: generate only below the answer threshold.
    manager = make_manager(
        settings,
        database,
        retriever,
        source=CountingSource(),
        send_retrieved_at=None,
        cache_enabled=False,
    )
    reply = manager.respond(ORDER_Q)
    assert reply.decision == "answer" and reply.text == SHOP[0][1] and reply.confidence >= 0.55
    assert (
        calls == []
        and reply.trace == []
        and "draft" not in reply.timings
        and "load_model" not in reply.timings
    )


def test_streamed_words_add_up_to_what_was_sent(shop):
    settings, database, retriever, _ = shop
    for overrides in ({"max_rounds": 1}, {"send_retrieved_at": None, "cache_enabled": False}):
        events = list(
            make_manager(settings, database, retriever, **overrides).respond_stream(ORDER_Q)
        )
        assert events[-1].kind == "done"
        reply = events[-1].reply
        shown = ""
        for event in events:
            if event.kind == "token":
                shown += event.text
            elif event.kind == "replace":
                shown = event.text
        assert shown == reply.shown_text and len([e for e in events if e.kind == "token"]) > 1


def test_live_text_shows_whole_words_and_stops_at_the_first_unshowable_prefix():
    events: list[DialogueEvent] = []
    live = LiveText(
        events.append,
        lambda text: None if "SECRET" in text else text.replace("a@b.example", "<EMAIL>"),
    )
    for piece in ["Hel", "lo ", "there, ", "mail a@b.example", " or ", "SECRET", " more words "]:
        live.add(piece)
    # Whole words only (the address is shown redacted once it is whole); nothing from the unshowable prefix on.
    assert [e.text for e in events] == ["Hello", " there,", " mail", " <EMAIL> or"]
    live.settle("A retrieved answer instead.")
    assert (events[-1].kind, events[-1].text) == ("replace", "A retrieved answer instead.")
    rest: list[DialogueEvent] = []
    live = LiveText(rest.append, lambda text: text)
    live.add("Our returns ")
    live.settle("Our returns are free.")
    assert "".join(e.text for e in rest) == "Our returns are free." and {e.kind for e in rest} == {
        "token"
    }


def test_a_reply_path_is_read_from_what_is_stored(shop):
    from chatbot.dialogue.records import reply_path

    settings, database, retriever, _ = shop
    retrieved = make_manager(
        settings, database, retriever, send_retrieved_at=None, cache_enabled=False
    ).respond(ORDER_Q)
    cached = make_manager(settings, database, retriever).respond(SHOP[1][0])
    # The tiny model's drafts run into the token limit mid-sentence, so they are withheld as cut off
    # (`degenerate`): a retrieved answer is what is sent, after the drafting work that the path names.
    refined = make_manager(
        settings,
        database,
        retriever,
        max_rounds=1,
        answer_threshold=0.0,
        handoff_threshold=0.0,
        fuse_retrieved=1,
        cache_enabled=False,
    ).respond(ORDER_Q)
    assert refined.trace and refined.decision == "answer"
    assert reply_path(retrieved.decision, retrieved.reason, retrieved.trace) == "retrieved"
    assert reply_path(cached.decision, cached.reason, cached.trace) == "cache"
    assert reply_path(refined.decision, refined.reason, refined.trace) in ("generated", "refined")
    assert reply_path("handoff", "out_of_scope", []) == "handoff"


def test_chat_prints_a_draft_as_it_comes_then_the_answer_that_replaced_it(shop, monkeypatch):
    """`chatbot chat` with the events in the manager's order (the tiny model cannot write a
    draft with words, so the draft is scripted; the real manager's events are tested above)."""
    from click.testing import CliRunner

    from chatbot.cli import dialogue as cli_dialogue
    from chatbot.cli import main

    settings, database, retriever, _ = shop
    real = make_manager(settings, database, retriever, send_retrieved_at=None, cache_enabled=False)

    class Scripted:
        def respond_stream(self, message, conversation_id=None, *, source="widget"):
            reply = real.respond(message, conversation_id, source=source)
            for piece in ["Your", " parcel", " is"]:
                yield DialogueEvent("token", piece)
            yield DialogueEvent("replace", reply.shown_text)
            yield DialogueEvent("done", reply=reply)

    monkeypatch.setattr(cli_dialogue, "build_manager", lambda _settings: (Scripted(), database))
    result = CliRunner().invoke(main, ["chat", "--no-details"], input=f"{ORDER_Q}\n\n")
    assert result.exit_code == 0, result.output
    assert f"bot> Your parcel is\nbot> {SHOP[0][1]}\n" in result.output
