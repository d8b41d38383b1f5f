"""Text generation with a loaded causal LM: chat-formatted prompt in, reply text out,
optionally streamed token by token. What to say (prompts, evidence, refinement) is
decided by the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any


def chat_inputs(tokenizer: Any, messages: list[dict[str, str]]) -> dict[str, Any]:
    return tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )


def generate_text(model: Any, tokenizer: Any, messages: list[dict[str, str]], *, max_new_tokens: int = 120) -> str:
    import torch

    inputs = chat_inputs(tokenizer, messages)
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id
        )
    return tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def stream_text(model: Any, tokenizer: Any, messages: list[dict[str, str]], *, max_new_tokens: int = 120) -> Iterator[str]:
    """Yield the reply piece by piece as the model produces it."""
    import torch
    from transformers import TextIteratorStreamer

    inputs = chat_inputs(tokenizer, messages)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(
        **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id, streamer=streamer
    )

    def run() -> None:
        with torch.no_grad():
            model.generate(**kwargs)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    yield from streamer
    worker.join()
