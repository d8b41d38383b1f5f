"""From a training pair to token ids: the chat prompt (see `prompt`), the agent's reply
as the target with the loss on the reply tokens only, truncation to the length budget,
noise on the customer text, and padded batches. The optimisation itself is `loop`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from chatbot.pairs import PairRecord
from chatbot.text.prompt import PromptFormat, build_messages
from chatbot.training.noise import add_noise
from chatbot.training.settings import TrainingSettings

if TYPE_CHECKING:
    import torch
    from transformers import BatchEncoding, PreTrainedTokenizerBase

IGNORE = -100
EvidenceFn = Callable[[PairRecord], list[str]]


@dataclass
class Encoded:
    pair_id: int
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens
    weight: float

    @property
    def target_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def end_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    tid = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(tid, int) and tid != tokenizer.unk_token_id:
        return tid
    return int(tokenizer.eos_token_id)


def _prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(cast("BatchEncoding", out)["input_ids"])


def encode_pair(
    tokenizer: PreTrainedTokenizerBase,
    pair: PairRecord,
    evidence: Sequence[str],
    cfg: TrainingSettings,
    prompt: PromptFormat,
    *,
    noise_seed: str | None = None,
) -> Encoded | None:
    """Token ids and labels for one pair, or None when even the shortest prompt does not fit.

    When too long, the oldest history turns go first, then the least relevant evidence.
    With `noise_seed`, every customer turn of the context is noised (deterministically).
    """
    context = [dict(t) for t in pair.context]
    if noise_seed is not None:
        for i, turn in enumerate(context):
            if turn.get("role") == "customer":
                turn["text"] = add_noise(turn["text"], f"{noise_seed}:{i}")
    target = tokenizer(pair.target.strip(), add_special_tokens=False)["input_ids"][
        : cfg.max_target_tokens - 1
    ]
    target = list(target) + [end_token_id(tokenizer)]
    budget = cfg.max_length - len(target)
    history = prompt.history_turns
    evidence = list(evidence)[: prompt.evidence_k]
    while True:
        messages = build_messages(
            context,
            evidence,
            system_prompt=prompt.system_prompt,
            history_turns=history,
            evidence_max_chars=prompt.evidence_max_chars,
        )
        prompt_ids = _prompt_ids(tokenizer, messages)
        if len(prompt_ids) <= budget:
            break
        if history > 1:
            history -= 1
        elif evidence:
            evidence.pop()
        else:
            return None
    return Encoded(pair.id, prompt_ids + target, [IGNORE] * len(prompt_ids) + target, pair.weight)


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids, attention_mask, labels, per-example weights."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    weights = torch.tensor([e.weight for e in batch], dtype=torch.float32)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "weights": weights}
