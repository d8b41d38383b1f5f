"""Zendesk ticket export with comments: one ticket per line (the JSON export) or
{"tickets": [...]}. The requester's comments are customer turns, everyone else's are
agent turns; private comments (internal notes) are left out."""

from __future__ import annotations

from collections.abc import Iterator

from chatbot.ingest.formats import FormatOptions
from chatbot.ingest.formats.html_text import html_to_text
from chatbot.ingest.formats.jsonsource import JsonObject, OpenRecord, conversations
from chatbot.ingest.readers import Line
from chatbot.ingest.records import Problem, RawConversation, Turn


def parse(
    lines: Iterator[Line], path: str, options: FormatOptions
) -> Iterator[RawConversation | Problem]:
    return conversations(
        lines, path, _ticket, wrapper_keys=("tickets", "results"), no_id="ticket has no 'id'"
    )


def _body(comment: JsonObject) -> str | None:
    for key in ("plain_body", "body"):
        body = comment.get(key)
        if isinstance(body, str):
            return body
    html = comment.get("html_body")
    if isinstance(html, str):
        return html_to_text(html)
    return None


def _ticket(record: OpenRecord) -> RawConversation | Problem:
    value, ident, problem = record.value, record.ident, record.problem
    comments = value.get("comments")
    if comments is None:
        return problem(
            f"ticket {ident}: missing field 'comments' (export tickets with their comments)",
            "missing_field",
        )
    if not isinstance(comments, list):
        return problem(f"ticket {ident}: 'comments' must be a list", "bad_field")
    requester = value.get("requester_id")
    turns: list[Turn] = []
    internal = 0
    for number, comment in enumerate(comments, start=1):
        if not isinstance(comment, dict):
            return problem(f"ticket {ident}: comment {number} is not an object", "bad_field")
        if "author_id" not in comment:
            return problem(f"ticket {ident}: comment {number} has no 'author_id'", "missing_field")
        if comment.get("public") is False:
            internal += 1
            continue
        body = _body(comment)
        if body is None:
            return problem(f"ticket {ident}: comment {number} has no 'body'", "missing_field")
        if requester is None:
            requester = comment["author_id"]  # the first public comment opens the ticket
        role = "customer" if comment["author_id"] == requester else "agent"
        turns.append(
            Turn(
                role,
                body,
                {"created_at": comment.get("created_at")} if comment.get("created_at") else {},
            )
        )
    meta = {
        key: value[key]
        for key in ("subject", "status", "tags", "created_at")
        if value.get(key) not in (None, "", [])
    }
    via = value.get("via")
    if isinstance(via, dict) and via.get("channel"):
        meta["channel"] = via["channel"]
    if internal:
        meta["internal_notes_left_out"] = internal
    return record.conversation(turns, meta)
