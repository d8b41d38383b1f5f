"""Retrieve and refine for training (Weston, Dinan & Miller 2018): the past answers a
train example is shown in one epoch. A reply model trained only on other conversations'
answers learns to ignore them; so now and then (`true_reply_in_evidence`) a train
example is shown the agent's true reply among its retrieved answers, at a random
position, and some of those times (`true_reply_noise`) a near copy of it (a few words
dropped or swapped, maybe a sentence dropped): the model learns to copy evidence that
fits and to edit evidence that almost does.

Every choice is deterministic given (run seed, epoch, pair id), like the noise of
`noise`. Validation pairs never come out changed (validation measures the serving
situation). Retrieving the answers is `evidence`'s job, tokenising them `examples`',
and when an example is encoded `loop`'s.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.pairs import PairRecord
from chatbot.training.settings import TrainingSettings

EXACT = "exact"
NEAR_COPY = "near_copy"

MAX_DROPPED_SHARE = 0.4  # a dropped sentence holds at most this share of the reply's words
_SENTENCES = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True)
class ShownEvidence:
    """The past answers one example is shown, and whether the true reply is among them."""

    texts: list[str]
    inserted: str | None = None  # None, EXACT or NEAR_COPY
    position: int | None = None  # where the true reply (or its near copy) is in `texts`


def eligible(pair: PairRecord, retrieved: Sequence[str], evidence_k: int) -> bool:
    """Whether the pair may be shown its own reply: a train pair with a reply, whose
    prompts show past answers (evidence_k > 0) and that has retrieved ones. A pair
    without retrieved answers is left alone: were the reply its only past answer, the
    model would learn that the evidence always is the answer."""
    return (
        pair.split == "train" and evidence_k > 0 and bool(retrieved) and bool(pair.target.strip())
    )


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _visible_words(words: list[str], visible_chars: int | None) -> int:
    """How many of the words start within the first `visible_chars` characters (the
    prompt cuts each past answer there)."""
    if visible_chars is None:
        return len(words)
    offset, n = 0, 0
    for word in words:
        if offset >= visible_chars - 1:
            break
        n += 1
        offset += len(word) + 1
    return n


def near_copy(text: str, seed: int | str, *, visible_chars: int | None = None) -> str:
    """A near copy of `text`: maybe one sentence dropped (a minor one: at most
    `MAX_DROPPED_SHARE` of the words, so the substance stays), then one to three words dropped or swapped with their neighbour, within the first
    `visible_chars` characters so that the prompt shows the change. Deterministic for
    (text, seed); whitespace is normalised; any text of two or more words changes, and
    most of its words survive in order.
    """
    rng = random.Random(f"near-copy:{seed}:{text}")
    original = " ".join(text.split())
    sentences = [s for s in _SENTENCES.split(original) if s]
    total = len(original.split())
    minor = [i for i, s in enumerate(sentences) if len(s.split()) <= MAX_DROPPED_SHARE * total]
    if len(sentences) >= 2 and minor and rng.random() < 0.5:
        del sentences[rng.choice(minor)]
    words = " ".join(sentences).split(" ")
    limit = _visible_words(words, visible_chars)
    for _ in range(min(3, max(1, len(words) // 8))):
        if limit < 2:
            break
        i = rng.randrange(limit - 1)
        if len(words) > 3 and rng.random() < 0.5:
            del words[i]
            limit -= 1
        else:
            words[i], words[i + 1] = words[i + 1], words[i]
    if " ".join(words) == original and len(words) >= 2:  # only equal words were swapped
        del words[rng.randrange(max(1, min(limit, len(words))))]
    return " ".join(words)


def shown_evidence(
    pair: PairRecord,
    retrieved: Sequence[str],
    cfg: TrainingSettings,
    *,
    evidence_k: int,
    epoch: int,
    visible_chars: int | None = None,
) -> ShownEvidence:
    """The past answers `pair` is shown in `epoch`.

    Unchanged (`retrieved` as is, `inserted` None) for validation pairs, pairs that are
    not `eligible`, and when the (seed, epoch, pair) draw says no. Otherwise the true
    reply, or a near copy of it, at a random position among the `evidence_k` shown;
    the least relevant retrieved answer makes room when there are already `evidence_k`,
    and a retrieved answer identical to the reply is not shown twice.
    """
    if cfg.true_reply_in_evidence <= 0 or not eligible(pair, retrieved, evidence_k):
        return ShownEvidence(list(retrieved))
    rng = random.Random(f"refine:{cfg.seed}:{epoch}:{pair.id}")
    if rng.random() >= cfg.true_reply_in_evidence:
        return ShownEvidence(list(retrieved))
    reply = pair.target.strip()
    text, kind = reply, EXACT
    if rng.random() < cfg.true_reply_noise:
        copy = near_copy(reply, f"{cfg.seed}:{epoch}:{pair.id}", visible_chars=visible_chars)
        if not _same(copy, reply):
            text, kind = copy, NEAR_COPY
    others = [t for t in retrieved if not _same(t, reply)][:evidence_k]
    position = rng.randrange(min(len(others) + 1, evidence_k))
    texts = (others[:position] + [text] + others[position:])[:evidence_k]
    return ShownEvidence(texts, kind, position)


def refine_meta(
    cfg: TrainingSettings,
    evidence_k: int,
    train: Sequence[PairRecord],
    evidence: Mapping[int, Sequence[str]],
) -> dict[str, Any]:
    """What a run records about retrieve and refine: the knobs, and how many train
    pairs could be shown their own reply (none without retrieved evidence)."""
    n = sum(eligible(p, evidence.get(p.id, ()), evidence_k) for p in train)
    return {
        "true_reply_in_evidence": cfg.true_reply_in_evidence,
        "true_reply_noise": cfg.true_reply_noise,
        "eligible_train_pairs": n,
        "train_pairs": len(train),
        "active": cfg.true_reply_in_evidence > 0 and n > 0,
        "applies_to": "train examples only; validation examples never show the true reply",
    }
