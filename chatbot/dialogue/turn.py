"""What one customer message carries through the dialogue stages: the `Turn` (the stored
message, what was read of its conversation, and what the stages collect on the way), the
stage clock, and the events a streaming UI is sent (`DialogueEvent`, with `LiveText`
deciding which words of a reply may be shown while it is being written).

Structure only: the stages that fill a turn are in `chatbot.dialogue.stages`, the order
they run in is `chatbot.dialogue.manager`'s."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

from chatbot.dialogue import repository as repo
from chatbot.dialogue.case import Case
from chatbot.dialogue.records import BlockedCandidate, Reply, RoundTrace
from chatbot.dialogue.specifics import ConversationFacts
from chatbot.text.prompt import ROLE_MAP


class EventKind(StrEnum):
    """What a `DialogueEvent` says (see there)."""

    STAGE = "stage"
    ROUND = "round"
    TOKEN = "token"
    REPLACE = "replace"
    DONE = "done"


@dataclass
class DialogueEvent:
    """One step of answering, for streaming UIs: `stage` (a stage started), `round` (a
    refinement round finished; `data` is its RoundTrace), `token` (the next piece of the
    text shown to the customer, as soon as it is known: a draft's words while the model
    writes them, or the chosen answer's), `replace` (the text shown so far is replaced by
    `text`, the final one: a retrieved answer beat the draft, or the draft was withheld),
    `done` (`reply`). The tokens, with any replace applied, add up to `reply.shown_text`."""

    kind: EventKind
    text: str = ""
    data: RoundTrace | None = None
    reply: Reply | None = None


Listener = Callable[[DialogueEvent], None]


def ignore(event: DialogueEvent) -> None:
    """The listener of a caller that does not stream."""


class Clock:
    """Time per stage of one message, and in all."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Adds the time spent inside to the stage's total (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(
                self.timings.get(name, 0.0) + time.perf_counter() - started, 5
            )

    def total(self) -> float:
        return round(time.perf_counter() - self._started, 5)


class LiveText:
    """What the customer has been shown of the reply while it is being written: whole
    words only, and only while every prefix passes `showable` (which returns the text as
    it may be shown, or None); at the first one that does not, nothing more is shown
    until the final text settles it (`settle`: the rest of it, or a `replace`)."""

    def __init__(self, emit: Listener, showable: Callable[[str], str | None]):
        self.emit = emit
        self.showable = showable
        self.raw = ""
        self.shown = ""
        self.stopped = False
        self._cut = 0  # where the last prefix checked ended: a piece inside a word adds none

    def add(self, piece: str) -> None:
        self.raw += piece
        if self.stopped:
            return
        raw = self.raw.lstrip()  # a reply never starts with blank space (drafts are stripped too)
        cut = max(raw.rfind(" "), raw.rfind("\n"))
        if cut <= self._cut:
            return
        self._cut = cut
        text = self.showable(raw[:cut])
        if text is None or not text.startswith(self.shown):
            self.stopped = True
            return
        if len(text) > len(self.shown):
            self.emit(DialogueEvent(EventKind.TOKEN, text[len(self.shown) :]))
            self.shown = text

    def settle(self, final: str) -> None:
        """Bring what was shown to the final text: its remaining words, or a replace."""
        if self.shown and not final.startswith(self.shown):
            self.emit(DialogueEvent(EventKind.REPLACE, final))
            return
        rest = final[len(self.shown) :]
        pieces = re.findall(r"\s*\S+", rest)
        trailing = rest[len("".join(pieces)) :]
        for piece in (
            pieces[:-1] + [pieces[-1] + trailing] if pieces else ([trailing] if trailing else [])
        ):
            self.emit(DialogueEvent(EventKind.TOKEN, piece))
        self.shown = final


@dataclass
class Turn:
    """What answering one message knows as it goes: the stored message and what was read
    of its conversation, the stage clock, the stream to the customer, and what the stages
    collect on the way (texts whose addresses a reply may repeat; candidates withheld for
    holding another customer's specifics)."""

    message: str
    conversation_id: int
    message_id: int
    state: str
    history: list[tuple[str, str]]  # earlier turns, (role, text), oldest first
    earlier_customer: list[str]
    previous_smoothed: float | None
    facts: ConversationFacts | None
    clock: Clock
    emit: Listener
    live: LiveText
    last: repo.LastReply | None = None  # what the assistant did with the previous message
    case: Case | None = None  # the order this conversation named, as the order system knows it
    case_given_now: bool = False  # this message named it
    question: str | None = None  # what to answer when not the message itself (an earlier question)
    trusted: list[str] = field(default_factory=list)
    withheld: list[BlockedCandidate] = field(default_factory=list)

    @property
    def history_text(self) -> list[str]:
        return [text for _, text in self.history]

    @property
    def history_chat(self) -> list[dict[str, str]]:
        return [
            {"role": ROLE_MAP[role], "content": text}
            for role, text in self.history
            if role in ROLE_MAP
        ]

    def context(self) -> list[dict[str, str]]:
        """The conversation as the ranker reads it: the earlier turns and this message."""
        return [
            *({"role": role, "text": text} for role, text in self.history if role in ROLE_MAP),
            {"role": "customer", "text": self.message},
        ]
