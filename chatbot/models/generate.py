"""Text generation with a loaded causal LM: chat-formatted prompt in, reply text out,
streamed piece by piece as the model produces it, and never waited on without a bound.

Every wait has a limit (`Limits`): for the first piece, between two pieces, and for the
whole reply. A limit passed raises `GenerationTimeout`; an exception inside the model
(it runs in its own thread) is raised in the caller's thread as `GenerationFailed`.
Either way the model's thread is told to stop at its next token, so nothing keeps
running for a caller that has gone. What to say (prompts, evidence, refinement) is
decided by the caller.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from chatbot.errors import ChatbotError

if TYPE_CHECKING:
    import torch
    from torch.nn import Module  # a transformers model, or its int8 copy (a plain Module)
    from transformers import (
        BatchEncoding,
        GenerationMixin,
        PreTrainedTokenizerBase,
        StoppingCriteriaList,
    )


class GenerationFailed(ChatbotError):
    """The reply model raised while generating."""


class GenerationTimeout(GenerationFailed):
    """The reply model did not produce its next piece of text in time."""


@dataclass(frozen=True)
class Limits:
    """Seconds to wait for the first piece, for each next piece, and for the whole reply
    (None: no limit of that kind)."""

    first_token: float | None = None
    next_token: float | None = None
    total: float | None = None


NO_LIMITS = Limits()


def chat_inputs(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> BatchEncoding:
    """The chat-formatted prompt as model inputs (input_ids, attention_mask tensors)."""
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    return cast("BatchEncoding", inputs)  # return_dict=True gives a BatchEncoding


def generate_text(
    model: Module,
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    *,
    max_new_tokens: int = 120,
    limits: Limits = NO_LIMITS,
) -> str:
    """The whole reply (the same bounded path as `stream_text`)."""
    return "".join(
        stream_text(model, tokenizer, messages, max_new_tokens=max_new_tokens, limits=limits)
    ).strip()


def _stop_when(flag: threading.Event) -> StoppingCriteriaList:
    """A stopping criterion that ends generation at the next token once `flag` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(
            self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object
        ) -> torch.BoolTensor:
            stop = torch.full(
                (input_ids.shape[0],), flag.is_set(), dtype=torch.bool, device=input_ids.device
            )
            return cast("torch.BoolTensor", stop)

    return StoppingCriteriaList([_Stop()])


def stream_text(
    model: Module,
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, str]],
    *,
    max_new_tokens: int = 120,
    limits: Limits = NO_LIMITS,
) -> Iterator[str]:
    """Yield the reply piece by piece as the model produces it, within `limits`."""
    import torch
    from transformers import TextIteratorStreamer

    inputs = chat_inputs(tokenizer, messages)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    stop = threading.Event()
    failure: list[BaseException] = []
    kwargs: dict[str, Any] = dict(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.eos_token_id,
        streamer=streamer,
        stopping_criteria=_stop_when(stop),
    )

    def run() -> None:
        try:
            with torch.no_grad():
                # A causal LM generates; transformers 5 types `generate` on its mixin only.
                cast("GenerationMixin", model).generate(**kwargs)
        except BaseException as exc:
            failure.append(exc)
            streamer.text_queue.put(streamer.stop_signal)

    started = time.monotonic()
    worker = threading.Thread(target=run, name="reply-generation", daemon=True)
    worker.start()
    first = True
    try:
        while True:
            wait = limits.first_token if first else limits.next_token
            total_bound = False
            if limits.total is not None:
                left = limits.total - (time.monotonic() - started)
                total_bound = wait is None or left <= wait
                wait = max(left, 0.0) if total_bound else wait
            try:
                piece = streamer.text_queue.get(timeout=wait)
            except queue.Empty:
                if total_bound:
                    raise GenerationTimeout(
                        f"the reply model took more than {limits.total:g} s for one reply"
                    ) from None
                what = "its first words" if first else "its next words"
                raise GenerationTimeout(
                    f"the reply model produced no text for {wait:.3g} s (waiting for {what})"
                ) from None
            if piece == streamer.stop_signal:
                break
            if piece:
                first = False
                yield piece
        if failure:
            exc = failure[0]
            raise GenerationFailed(f"the reply model failed: {type(exc).__name__}: {exc}") from exc
    finally:
        stop.set()  # also when the caller stops reading: the model stops at its next token
