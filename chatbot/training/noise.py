"""Noise augmentation of customer text for robustness: typos, casing changes and
dropped words, deterministic given a seed. Which texts are noised and how often is
decided by the caller (`examples`); agent replies and evidence are never noised.
"""

from __future__ import annotations

import random

_KEYBOARD_NEIGHBOURS = {
    "a": "qsz",
    "b": "vn",
    "c": "xv",
    "d": "sf",
    "e": "wr",
    "f": "dg",
    "g": "fh",
    "h": "gj",
    "i": "uo",
    "j": "hk",
    "k": "jl",
    "l": "k",
    "m": "n",
    "n": "bm",
    "o": "ip",
    "p": "o",
    "q": "w",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "u": "yi",
    "v": "cb",
    "w": "qe",
    "x": "zc",
    "y": "tu",
    "z": "x",
}


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double", "neighbour"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    near = _KEYBOARD_NEIGHBOURS.get(word[i].lower())
    return word[:i] + rng.choice(near) + word[i + 1 :] if near else word


def add_noise(
    text: str, seed: int | str, *, typo_rate: float = 0.08, drop_rate: float = 0.06
) -> str:
    """The text with a few typos, maybe a casing change and maybe dropped words.

    The same (text, seed) always gives the same result; at least one change is made
    to any text of two or more words.
    """
    rng = random.Random(f"noise:{seed}:{text}")
    words = text.split(" ")
    out: list[str] = []
    for word in words:
        r = rng.random()
        if r < drop_rate and len(words) > 3:
            continue
        out.append(_typo(word, rng) if r < drop_rate + typo_rate else word)
    if out == words and len(words) >= 2:
        i = rng.randrange(len(out))
        out[i] = _typo(out[i], rng) if len(out[i]) >= 3 else out[i].upper()
    noisy = " ".join(out)
    casing = rng.random()
    if casing < 0.25:
        noisy = noisy.lower()
    elif casing < 0.3:
        noisy = noisy.upper()
    elif casing < 0.4 and noisy:
        noisy = noisy[0].lower() + noisy[1:]
    return noisy
