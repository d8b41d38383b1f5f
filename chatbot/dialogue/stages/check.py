"""The checks on what may be shown: nothing that repeats the system prompt, nothing
degenerate, no other customer's specifics among the candidates (`Screen`), and on the
reply itself, whatever path made it, every text redacted and no slot or redaction
placeholder sent (`FinalCheck`). `Showable` is the same rule for a piece of text
streamed while it is being written.

Checking only: making candidates and choosing among them are other stages' jobs."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from chatbot.dialogue.degenerate import degenerate_reason
from chatbot.dialogue.own_answers import OwnAnswers
from chatbot.dialogue.records import (
    ANSWERED,
    Blocked,
    BlockedCandidate,
    Candidate,
    GenerationFailure,
    Reason,
    Reply,
    with_detail,
)
from chatbot.dialogue.say import Say
from chatbot.dialogue.settings import DialogueSettings
from chatbot.dialogue.turn import Turn
from chatbot.ingest.settings import IngestSettings
from chatbot.text.redact import EMAIL_RE, PLACEHOLDERS, Redactor
from chatbot.text.specifics import SLOT_RE

log = logging.getLogger(__name__)

# A reply sharing this many consecutive words with the system prompt repeats it.
PROMPT_LEAK_WORDS = 6
_WORD_RE = re.compile(r"\w+")
_PLACEHOLDER_RE = re.compile(
    "|".join(re.escape(p) for p in PLACEHOLDERS.values()) + r"|" + SLOT_RE.pattern
)


def has_placeholder(text: str) -> bool:
    """The text holds a slot (`{order_number}`) or a redaction placeholder (`<EMAIL>`)."""
    return bool(_PLACEHOLDER_RE.search(text or ""))


def live_redactor(ingest: IngestSettings | None) -> Redactor:
    """The redactor for live messages: the same kinds and allowlist as imports."""
    ingest = ingest or IngestSettings()
    return Redactor(ingest.redact_kinds if ingest.redact else (), ingest.redact_allowlist)


def _shingles(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class PromptGuard:
    """Whether a text repeats part of the system prompt (PROMPT_LEAK_WORDS words in a row)."""

    def __init__(self, system_prompt: str):
        self.system_prompt = system_prompt
        words = _WORD_RE.findall(system_prompt.lower())
        self._n = max(3, min(PROMPT_LEAK_WORDS, len(words)))
        self._shingles = _shingles(words, self._n)

    def reveals(self, text: str) -> bool:
        if not self._shingles or not text:
            return False
        words = _WORD_RE.findall(text.lower())
        return any(shingle in self._shingles for shingle in _shingles(words, self._n))


class Showable:
    """What of a reply (or the start of one) may be shown to the customer: the text
    redacted, or None when it must not be shown at all (it repeats the system prompt,
    or holds a placeholder)."""

    def __init__(self, prompt: PromptGuard, redactor: Redactor):
        self.prompt = prompt
        self.redactor = redactor

    def __call__(self, text: str) -> str | None:
        if self.prompt.reveals(text):
            return None
        shown = self.redactor.redact(text)
        return None if has_placeholder(shown) else shown


@dataclass
class Screened:
    """The candidates allowed to compete, and those blocked, with why."""

    kept: list[Candidate]
    blocked: list[BlockedCandidate]


class Screen:
    """The candidates allowed to compete, and those blocked with why: nothing that
    repeats the system prompt, nothing degenerate (empty, a sentence said twice, the
    customer's words echoed, cut off), nothing holding another customer's specifics."""

    def __init__(self, prompt: PromptGuard, own: OwnAnswers):
        self.prompt = prompt
        self.own = own

    def run(self, turn: Turn, candidates: list[Candidate]) -> Screened:
        blocked = [
            BlockedCandidate(c.origin, c.round, c.pair_id, Blocked.PROMPT)
            for c in candidates
            if self.prompt.reveals(c.text)
        ]
        if blocked:
            candidates = [c for c in candidates if not self.prompt.reveals(c.text)]
            log.info(
                "conversation %s: %d candidate(s) repeating the system prompt withheld",
                turn.conversation_id,
                len(blocked),
            )
        kept = []
        for c in candidates:
            why = degenerate_reason(
                c.text,
                customer_message=turn.message,
                prompt_texts=[self.prompt.system_prompt],
                cut_off=c.cut_off,
            )
            if why is None:
                kept.append(c)
            else:
                blocked.append(
                    BlockedCandidate(
                        c.origin, c.round, c.pair_id, Blocked.DEGENERATE, why, text=c.text
                    )
                )
        kept = self.own.candidates(kept, turn.facts, turn.withheld)
        return Screened(kept, blocked + turn.withheld)


class FinalCheck:
    """The last stage before the reply is stored, on every path: every text of the reply
    record redacted (addresses the company's own past answers or notices hold are
    allowed), and no slot (`{customer_name}`) or redaction placeholder (`<EMAIL>`) ever
    reaching a customer. A slot left over is phrased out as `chatbot.dialogue.specifics`
    does; a reply that still holds one is not sent: the conversation goes to an agent,
    with the text kept for them to review."""

    def __init__(self, settings: DialogueSettings, redactor: Redactor, own: OwnAnswers, say: Say):
        self.settings = settings
        self.redactor = redactor
        self.own = own
        self.say = say

    def run(self, turn: Turn, reply: Reply) -> Reply:
        return self._without_placeholders(self._redacted(reply, turn.trusted), turn)

    def _reply_redactor(self, trusted: Sequence[str]) -> Redactor:
        """The live redactor, also allowing the exact addresses in `trusted` texts (the
        company's past answers, already redacted when imported, and its own notices)."""
        addresses = {
            re.sub(r"\s", "", m.group(0)).lower()
            for t in trusted
            if t and "@" in t
            for m in EMAIL_RE.finditer(t)
        }
        if not addresses or not self.redactor.kinds:
            return self.redactor
        return Redactor(self.redactor.kinds, [*self.redactor.allow, *sorted(addresses)])

    def _redacted(self, reply: Reply, trusted: Sequence[str]) -> Reply:
        """Every text of the reply record redacted: what is sent, stored and reviewed."""
        redactor = self._reply_redactor(
            [*trusted, self.settings.handoff_message, self.settings.hold_message]
        )
        reply.text = redactor.redact(reply.text)
        reply.shown_text = redactor.redact(reply.shown_text)
        reply.candidates = [
            replace(c, text=redactor.redact(c.text))
            if not isinstance(c, GenerationFailure) and c.text is not None
            else c
            for c in reply.candidates
        ]
        for step in reply.trace:
            step.text = redactor.redact(step.text)
        return reply

    def _without_placeholders(self, reply: Reply, turn: Turn) -> Reply:
        if not reply.sent or not has_placeholder(reply.shown_text):
            return reply
        filled = self.own.filled(reply.shown_text, turn.facts)
        if not has_placeholder(filled):
            reply.shown_text = filled
            if reply.decision in ANSWERED:
                reply.text = filled
            return reply
        log.warning(
            "conversation %s: a reply holding a placeholder was withheld", turn.conversation_id
        )
        withheld = self.say.handoff(turn, with_detail(Reason.NO_CANDIDATE, "placeholder withheld"))
        withheld.text, withheld.confidence = reply.text, reply.confidence
        withheld.citations, withheld.candidates = reply.citations, reply.candidates
        return withheld
