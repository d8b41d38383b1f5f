"""The chat prompt of the reply model: a system instruction carrying the retrieved
past answers, then the recent conversation. Training, serving and evaluation all build
prompts here from the one `prompt` settings section (`PromptSettings`,
`CHATBOT_PROMPT__<KEY>`), so the model is trained on exactly what it will see.
Tokenising and loss masks are `chatbot.training.examples`' job; choosing the evidence is
the retriever's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field, model_validator

from chatbot.settings_section import Section

# How the store's roles read in a chat prompt.
ROLE_MAP = {"customer": "user", "agent": "assistant", "bot": "assistant"}


def build_messages(
    context: Sequence[dict[str, str]],
    evidence: Sequence[str] = (),
    *,
    system_prompt: str,
    history_turns: int = 4,
    evidence_max_chars: int = 300,
) -> list[dict[str, str]]:
    """Chat messages for the reply to `context` (oldest first, the customer's last
    message at the end). System turns of the stored conversation are left out."""
    system = system_prompt
    if evidence:
        lines = []
        for item in evidence:
            text = " ".join(item.split())
            if len(text) > evidence_max_chars:
                text = text[: evidence_max_chars - 1].rstrip() + "…"
            lines.append(f"- {text}")
        system += "\n\nPast answers that may help:\n" + "\n".join(lines)
    turns = [t for t in context if t.get("role") in ROLE_MAP][-history_turns:]
    messages = [{"role": "system", "content": system}]
    messages += [{"role": ROLE_MAP[t["role"]], "content": t["text"]} for t in turns]
    return messages


DEFAULT_SYSTEM_PROMPT = (
    "You are the customer-service assistant of this company. Answer the customer's last "
    "message briefly and politely, in the company's usual style. Use the past answers "
    "below when they fit; never invent order details, prices or policies."
)


class PromptSettings(Section):
    """The `prompt` section: what the reply model is shown, the same in training,
    serving and evaluation (one place, one default for each knob)."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    evidence_k: int = Field(
        default=2, ge=0, le=20, description="Retrieved past answers shown in each prompt."
    )
    evidence_max_chars: int = Field(
        default=300, ge=20, description="Each past answer is cut to this many characters."
    )
    history_turns: int = Field(
        default=4,
        ge=1,
        le=50,
        description="Conversation turns kept in the prompt, the customer's last included.",
    )

    @model_validator(mode="after")
    def _check(self) -> PromptSettings:
        if not self.system_prompt.strip():
            raise ValueError("system_prompt must not be empty")
        return self


@dataclass(frozen=True)
class PromptFormat:
    """The prompt contract between training and serving: the same system instruction,
    number of past answers, their length and the history kept, built from the `prompt`
    settings section and used by training, the dialogue manager and evaluation as is."""

    system_prompt: str
    evidence_k: int
    evidence_max_chars: int
    history_turns: int

    @classmethod
    def from_settings(cls, prompt: PromptSettings) -> PromptFormat:
        return cls(
            prompt.system_prompt, prompt.evidence_k, prompt.evidence_max_chars, prompt.history_turns
        )

    def messages(
        self, context: Sequence[dict[str, str]], evidence: Sequence[str]
    ) -> list[dict[str, str]]:
        return build_messages(
            context,
            list(evidence)[: self.evidence_k],
            system_prompt=self.system_prompt,
            history_turns=self.history_turns,
            evidence_max_chars=self.evidence_max_chars,
        )
