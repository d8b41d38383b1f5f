"""Prompts and generation: turn the evidence, the conversation and (when revising) the
best draft so far into chat messages, and run the reply model on
them, whole or streamed, within the `dialogue` section's time bounds (a bound passed
raises `chatbot.models.generate.GenerationTimeout`). The draft prompt is training's
`PromptFormat`, so the model sees at serving time exactly what it was trained on. Which
text wins is decided elsewhere."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from chatbot.dialogue.critique import Evidence
from chatbot.dialogue.records import Candidate
from chatbot.dialogue.settings import DialogueSettings
from chatbot.text.prompt import PromptFormat

if TYPE_CHECKING:
    from torch.nn import Module
    from transformers import PreTrainedTokenizerBase

    from chatbot.models.generate import Limits

_STORE_ROLE = {"user": "customer", "assistant": "agent"}


class ReplyWriter:
    def __init__(
        self,
        model: Module,
        tokenizer: PreTrainedTokenizerBase,
        settings: DialogueSettings,
        prompt: PromptFormat,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.prompt = prompt

    def draft_messages(
        self, evidence: Evidence, history: Sequence[dict[str, str]]
    ) -> list[dict[str, str]]:
        context = [
            {"role": _STORE_ROLE[m["role"]], "text": m["content"]}
            for m in history
            if m["role"] in _STORE_ROLE
        ]
        context.append({"role": "customer", "text": evidence.query})
        return self.prompt.messages(context, [item.answer for item in evidence.items])

    def revision_messages(
        self, evidence: Evidence, history: Sequence[dict[str, str]], best: Candidate
    ) -> list[dict[str, str]]:
        """Retrieve and refine, y_{t+1} = f(y_t, evidence, conversation): the draft prompt
        with the best reply so far (y_t) as the first past answer, in the very form the
        reply model was trained on (`chatbot.training.refine_examples` puts the agent's
        true reply, or a near copy, among the past answers): it copies what fits and edits
        what does not."""
        context = [
            {"role": _STORE_ROLE[m["role"]], "text": m["content"]}
            for m in history
            if m["role"] in _STORE_ROLE
        ]
        context.append({"role": "customer", "text": evidence.query})
        others = [
            item.answer for item in evidence.items if item.answer.strip() != best.text.strip()
        ]
        return self.prompt.messages(context, [best.text, *others])

    def cut_off(self, text: str) -> bool:
        """The text used up the whole token budget: the model was stopped, not finished."""
        if not text:
            return False
        return (
            len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            >= self.settings.max_new_tokens - 1
        )

    def limits(self) -> Limits:
        from chatbot.models.generate import Limits

        s = self.settings
        return Limits(first_token=s.first_token_s, next_token=s.next_token_s, total=s.generation_s)

    def write(self, messages: list[dict[str, str]]) -> str:
        from chatbot.models.generate import generate_text

        return generate_text(
            self.model,
            self.tokenizer,
            messages,
            max_new_tokens=self.settings.max_new_tokens,
            limits=self.limits(),
        )

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        from chatbot.models.generate import stream_text

        yield from stream_text(
            self.model,
            self.tokenizer,
            messages,
            max_new_tokens=self.settings.max_new_tokens,
            limits=self.limits(),
        )
