"""The chat prompt of the reply model: a system instruction carrying the retrieved
past answers, then the recent conversation. Training and serving both build prompts
here, so the model is trained on exactly what it will see. Tokenising and loss masks
are `examples`' job; choosing the evidence is the retriever's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class PromptFormat:
    """The prompt contract between training and serving: the same system instruction,
    number of past answers, their length and the history kept, built from the
    `training` settings section and used by the dialogue manager as is."""

    system_prompt: str
    evidence_k: int
    evidence_max_chars: int
    history_turns: int

    @classmethod
    def from_settings(cls, training: Any) -> PromptFormat:
        return cls(training.system_prompt, training.evidence_k, training.evidence_max_chars, training.history_turns)

    def messages(self, context: Sequence[dict[str, str]], evidence: Sequence[str]) -> list[dict[str, str]]:
        return build_messages(
            context, list(evidence)[: self.evidence_k], system_prompt=self.system_prompt,
            history_turns=self.history_turns, evidence_max_chars=self.evidence_max_chars,
        )
