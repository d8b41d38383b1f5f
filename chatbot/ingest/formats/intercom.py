"""Intercom conversation export (the REST API's conversation object): the opening
message in `source`, the rest in `conversation_parts`. Users and leads are the
customer; admins, bots and teams are the agent. Notes and parts without a body
(assignments, state changes) are left out; HTML bodies become plain text."""

from __future__ import annotations

from collections.abc import Iterator

from chatbot.ingest.formats import FormatOptions
from chatbot.ingest.formats.html_text import html_to_text
from chatbot.ingest.formats.jsonsource import OpenRecord, conversations
from chatbot.ingest.readers import Line
from chatbot.ingest.records import Problem, RawConversation, Turn

CUSTOMER = {"user", "lead", "contact"}
AGENT = {"admin", "bot", "team", "operator"}
SKIPPED_PARTS = {"note", "note_and_reopen"}


def parse(
    lines: Iterator[Line], path: str, options: FormatOptions
) -> Iterator[RawConversation | Problem]:
    return conversations(lines, path, _conversation, wrapper_keys=("conversations",))


def _role(author: object) -> str | None:
    kind = author.get("type") if isinstance(author, dict) else None
    if kind in CUSTOMER:
        return "customer"
    if kind in AGENT:
        return "agent"
    return None


def _conversation(record: OpenRecord) -> RawConversation | Problem:
    value, ident, problem = record.value, record.ident, record.problem
    source = value.get("source")
    if not isinstance(source, dict):
        return problem(
            f"conversation {ident}: missing field 'source' (the opening message)", "missing_field"
        )
    parts_field = value.get("conversation_parts", {})
    parts = (
        parts_field.get("conversation_parts", []) if isinstance(parts_field, dict) else parts_field
    )
    if not isinstance(parts, list):
        return problem(f"conversation {ident}: 'conversation_parts' must be a list", "bad_field")
    turns: list[Turn] = []
    for number, part in enumerate([source, *parts]):
        if not isinstance(part, dict):
            return problem(f"conversation {ident}: part {number} is not an object", "bad_field")
        if (
            part.get("part_type") in SKIPPED_PARTS
            or not isinstance(part.get("body"), str)
            or not part["body"].strip()
        ):
            continue
        role = _role(part.get("author"))
        if role is None:
            author = part.get("author")
            kind = author.get("type") if isinstance(author, dict) else None
            what = "the opening message" if number == 0 else f"part {number}"
            return problem(
                f"conversation {ident}: {what} has author type {kind!r}; expected one of "
                f"{', '.join(sorted(CUSTOMER | AGENT))}",
                "bad_role",
            )
        turns.append(Turn(role, html_to_text(part["body"])))
    meta: dict[str, object] = {}
    if source.get("subject"):
        meta["subject"] = html_to_text(source["subject"])
    for key in ("state", "created_at"):
        if value.get(key) is not None:
            meta[key] = value[key]
    return record.conversation(turns, meta)
