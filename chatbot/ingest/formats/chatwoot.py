"""Chatwoot conversation export: a conversation object with its `messages`
(`message_type` 0/"incoming" = customer, 1/"outgoing" and 3/"template" = agent,
2/"activity" left out; private notes left out). A file may hold one conversation per
line, an array, or {"payload": [...]}."""

from __future__ import annotations

from collections.abc import Iterator

from chatbot.ingest.formats import FormatOptions
from chatbot.ingest.formats.jsonsource import OpenRecord, conversations
from chatbot.ingest.readers import Line
from chatbot.ingest.records import Problem, RawConversation, Turn

ROLE_BY_TYPE: dict[int | str, str] = {
    0: "customer",
    "incoming": "customer",
    1: "agent",
    "outgoing": "agent",
    3: "agent",
    "template": "agent",
}
SKIPPED_TYPES: set[int | str] = {2, "activity"}


def parse(
    lines: Iterator[Line], path: str, options: FormatOptions
) -> Iterator[RawConversation | Problem]:
    return conversations(
        lines, path, _conversation, wrapper_keys=("payload", "conversations", "data")
    )


def _conversation(record: OpenRecord) -> RawConversation | Problem:
    value, ident, problem = record.value, record.ident, record.problem
    messages = value.get("messages")
    if not isinstance(messages, list):
        return problem(f"conversation {ident}: missing field 'messages' (a list)", "missing_field")
    turns: list[Turn] = []
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            return problem(f"conversation {ident}: message {number} is not an object", "bad_field")
        kind = message.get("message_type")
        if kind in SKIPPED_TYPES or message.get("private") is True:
            continue
        if kind not in ROLE_BY_TYPE:
            return problem(
                f"conversation {ident}: message {number} has message_type {kind!r}; expected incoming, outgoing, activity or template",
                "bad_role",
            )
        content = message.get("content")
        if content is None:
            continue  # attachments only
        if not isinstance(content, str):
            return problem(
                f"conversation {ident}: message {number} content must be a string", "bad_field"
            )
        turns.append(Turn(ROLE_BY_TYPE[kind], content))
    meta = {
        key: value[key]
        for key in ("status", "inbox_id", "labels")
        if value.get(key) not in (None, "", [])
    }
    return record.conversation(turns, meta)
