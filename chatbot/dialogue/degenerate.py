"""The degenerate-output guard: pure text checks that say why a candidate reply must
never be sent to a customer, whatever its score. A reply is degenerate when it is

- empty: nothing but whitespace, punctuation or stray symbols;
- repetitive: the same sentence twice or more (compared without case, punctuation or
  spacing), or one phrase looping inside a sentence (a word 4-gram three times or more,
  or most of its word trigrams said before);
- an echo of the prompt: mostly the customer's own message said back, or six or more
  consecutive words of an instruction (`prompt_texts`, e.g. the system prompt);
- cut off: the generator hit its token limit (`cut_off=True`) and the text stops
  mid-sentence.

Only the text is looked at: no models, no scores, no settings. Whether a degenerate
candidate is dropped, revised or handed to a human is the caller's decision (the
dialogue manager and `refine`). Do not pass retrieved past answers as `prompt_texts`:
copying a past answer that fits is what the reply model is meant to do.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from chatbot.text.measures import EMAIL, URL, content_words, normalise, repetition_ratio, words

LOOP_GRAM = 4  # a word n-gram of this size ...
LOOP_COUNT = 3  # ... said this many times is a loop
REPEAT_RATIO = 0.4  # share of word trigrams that repeat an earlier one ...
REPEAT_MIN_WORDS = 12  # ... in a reply of at least this many words
ECHO_SHARE = 0.8  # a reply this much one contiguous run of the customer's words is an echo ...
ECHO_MIN_RUN = 4  # ... when the run is at least this many words
VERBATIM_MIN_WORDS = 6  # a customer message this long, repeated whole, is an echo
PROMPT_RUN = 6  # this many consecutive words of an instruction is a prompt leak

# Said back to a thanking customer without being an echo ("Thank you so much for your patience!").
_COURTESY = frozenset("so much very really lot all again".split())
# A sentence ends at . ! ? … (and their full-width forms) followed by a space or the end.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?…])[\"'”’)\]}»]*\s+|(?<=[。！？])|\n+")
_SENTENCE_END = ".!?…。！？"
_CLOSERS = "\"'”’)]}»"
_EMOTICON = re.compile(r"(?:[:;=]-?[)(DPp]|<3|\^\^|xD)$")
# Characters that may follow or join an emoji: variation selectors, joiners, skin tones.
_ENDS_WITH_LINK = re.compile(rf"(?:{URL.pattern}|{EMAIL.pattern})$", re.I)
_EMOJI_TAIL = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]+$")


def _has_content(text: str) -> bool:
    """A letter, a digit or a pictograph (emoji): anything but punctuation, spacing,
    control characters and stray math or currency signs."""
    return any(ch.isalnum() or unicodedata.category(ch) == "So" for ch in text)


def _sentence_key(sentence: str) -> str:
    """A sentence without case, punctuation or spacing (any script)."""
    return normalise(sentence) or " ".join(re.findall(r"\w+", sentence.casefold()))


def _repeated_sentence(text: str) -> str | None:
    seen: set[str] = set()
    for sentence in _SENTENCE_SPLIT.split(text):
        key = _sentence_key(sentence)
        if not key:
            continue
        if key in seen:
            return f"repeats the sentence '{_short(sentence)}'"
        seen.add(key)
    return None


def _looping_phrase(tokens: list[str], text: str) -> str | None:
    grams = Counter(tuple(tokens[i : i + LOOP_GRAM]) for i in range(len(tokens) - LOOP_GRAM + 1))
    if grams:
        gram, count = grams.most_common(1)[0]
        if count >= LOOP_COUNT:
            return f"repeats the phrase '{' '.join(gram)}' {count} times"
    if len(tokens) >= REPEAT_MIN_WORDS and repetition_ratio(text, 3) >= REPEAT_RATIO:
        return "says the same words over and over"
    return None


def _echoes_customer(tokens: list[str], message: str) -> str | None:
    said = words(message)
    if not said or not tokens:
        return None
    haystack = f" {' '.join(said)} "
    if len(said) >= VERBATIM_MIN_WORDS and haystack in f" {' '.join(tokens)} ":
        return "repeats the customer's message verbatim"
    # One contiguous run of the message covering ECHO_SHARE of the reply (substring
    # search on joined tokens: linear in practice, even for a pasted wall of text).
    need = max(ECHO_MIN_RUN, math.ceil(ECHO_SHARE * len(tokens)))
    for i in range(len(tokens) - need + 1):
        run = tokens[i : i + need]
        if f" {' '.join(run)} " in haystack and any(
            w not in _COURTESY for w in content_words(" ".join(run))
        ):
            return "mostly repeats the customer's own message"
    return None


def _echoes_prompt(tokens: list[str], prompt_texts: Sequence[str]) -> str | None:
    if len(tokens) < PROMPT_RUN:
        return None
    mine = {tuple(tokens[i : i + PROMPT_RUN]) for i in range(len(tokens) - PROMPT_RUN + 1)}
    for text in prompt_texts:
        theirs = words(text)
        if any(
            tuple(theirs[i : i + PROMPT_RUN]) in mine for i in range(len(theirs) - PROMPT_RUN + 1)
        ):
            return (
                f"repeats the prompt ({PROMPT_RUN} or more consecutive words of the instructions)"
            )
    return None


def ends_a_sentence(text: str) -> bool:
    """The text ends as a finished reply would: a sentence end (also before a closing
    quote or bracket), an emoji or emoticon, a link or an e-mail address."""
    end = text.rstrip()
    if not end:
        return False
    if _EMOTICON.search(end):
        return True
    if _ENDS_WITH_LINK.search(end.split()[-1].rstrip(".,;:!?)]}>\"'”’")):
        return True
    bare = _EMOJI_TAIL.sub("", end)
    if bare and unicodedata.category(bare[-1]) == "So":
        return True
    bare = bare.rstrip(_CLOSERS)
    return bool(bare) and bare[-1] in _SENTENCE_END


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def degenerate_reason(
    text: str,
    *,
    customer_message: str = "",
    prompt_texts: Sequence[str] = (),
    cut_off: bool = False,
) -> str | None:
    """Why `text` must never be sent (a short reason a person can read in a log or the
    agent console), or None when none of the checks objects.

    `customer_message` is the message being answered (for the echo check);
    `prompt_texts` are instructions the model was given and must not recite (the
    system prompt; never the past answers); `cut_off` says the generator stopped at its
    token limit, so a text that does not end a sentence was cut mid-way. The first
    failing check names the reason: empty, repetition, prompt echo, customer echo, cut off.
    """
    if not text or not _has_content(text):
        return "empty: no words, only whitespace or punctuation" if text.strip() else "empty"
    tokens = words(text)
    reason = (
        _repeated_sentence(text)
        or _looping_phrase(tokens, text)
        or _echoes_prompt(tokens, prompt_texts)
        or _echoes_customer(tokens, customer_message)
    )
    if reason:
        return reason
    if cut_off and not ends_a_sentence(text):
        return "cut off mid-sentence at the token limit"
    return None
