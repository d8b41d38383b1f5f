"""From a parsed conversation to a clean one: control and bidirectional-override
characters removed (from the turns, the id, the source and the metadata), empty turns
dropped, consecutive turns of one side merged, message length limits, and the content
hash that makes imports idempotent. Redaction and pair building come after this, elsewhere."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from chatbot.ingest.records import Problem, RawConversation
from chatbot.text.sanitize import clean_text, clean_value


@dataclass
class CleanTurn:
    role: str
    text: str  # redacted later, in place
    original: str
    merged: int = 1  # how many input messages this turn is made of


@dataclass
class CleanConversation:
    external_id: str | None
    source: str
    turns: list[CleanTurn]
    meta: dict[str, Any]
    line: int | None
    index: int
    content_hash: str
    dropped_empty: int = 0
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def content_hash(source: str, turns: list[tuple[str, str]]) -> str:
    payload = json.dumps([source, turns], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def clean(
    raw: RawConversation, *, path: str, source: str, max_chars: int
) -> CleanConversation | Problem:
    def problem(reason: str, kind: str) -> Problem:
        return Problem(path, reason, kind, line=raw.line, index=raw.index)

    external_id = clean_text(raw.external_id) if raw.external_id else raw.external_id
    source = clean_text(source)
    label = f"conversation {external_id}" if external_id else "record"
    turns: list[CleanTurn] = []
    dropped = 0
    for number, turn in enumerate(raw.turns, start=1):
        if len(turn.text) > max_chars:
            return problem(
                f"{label}: turn {number} is {len(turn.text):,} characters long; the limit is {max_chars:,} "
                "(setting ingest.max_message_chars)",
                "too_long",
            )
        text = clean_text(turn.text).strip()
        if not text:
            dropped += 1
            continue
        if turns and turns[-1].role == turn.role:
            previous = turns[-1]
            previous.text = previous.original = f"{previous.original}\n{text}"
            previous.merged += 1
        else:
            turns.append(CleanTurn(turn.role, text, text))
    if not turns:
        return problem(f"{label}: no turns with text", "no_turns")
    try:
        meta = clean_value(raw.meta)
    except ValueError as exc:
        return problem(f"{label}: its metadata is {exc}", "bad_meta")
    digest = content_hash(source, [(t.role, t.original) for t in turns])
    return CleanConversation(external_id, source, turns, meta, raw.line, raw.index, digest, dropped)
