"""The project's transcript format (JSON Lines):
{"id": "...", "source": "...", "turns": [{"role": "customer"|"agent", "text": "..."}], "meta": {...}}.
Checks the record's shape and roles; merging turns and length limits are
`chatbot.ingest.validate`'s job."""

from __future__ import annotations

from collections.abc import Iterator

from chatbot.ingest.formats import FormatOptions
from chatbot.ingest.formats.jsonsource import OpenRecord, conversations
from chatbot.ingest.readers import Line
from chatbot.ingest.records import Problem, RawConversation, Turn

ROLES = ("customer", "agent")


def parse(
    lines: Iterator[Line], path: str, options: FormatOptions
) -> Iterator[RawConversation | Problem]:
    return conversations(
        lines,
        path,
        _conversation,
        wrapper_keys=("conversations", "transcripts"),
        no_id="missing field 'id'",
        tell_bad_id=True,
    )


def _conversation(record: OpenRecord) -> RawConversation | Problem:
    value, ident, problem = record.value, record.ident, record.problem
    if "turns" not in value:
        return problem(f"conversation {ident}: missing field 'turns'", "missing_field")
    turns = value["turns"]
    if not isinstance(turns, list):
        return problem(
            f"conversation {ident}: 'turns' must be a list, got {type(turns).__name__}", "bad_field"
        )
    source = value.get("source")
    if source is not None and not (isinstance(source, str) and source.strip()):
        return problem(f"conversation {ident}: 'source' must be a non-empty string", "bad_field")
    source_name = source.strip() if isinstance(source, str) else None
    meta = value.get("meta") or {}
    if not isinstance(meta, dict):
        return problem(f"conversation {ident}: 'meta' must be an object", "bad_field")
    parsed: list[Turn] = []
    for number, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            return problem(f"conversation {ident}: turn {number} is not an object", "bad_field")
        for key in ("role", "text"):
            if key not in turn:
                return problem(
                    f"conversation {ident}: turn {number} has no '{key}'", "missing_field"
                )
        role, text = turn["role"], turn["text"]
        if role not in ROLES:
            return problem(
                f"conversation {ident}: turn {number} has role {role!r}; expected 'customer' or 'agent'",
                "bad_role",
            )
        if not isinstance(text, str):
            return problem(
                f"conversation {ident}: turn {number} text must be a string, got {type(text).__name__}",
                "bad_field",
            )
        parsed.append(Turn(role, text))
    return record.conversation(parsed, meta, source_name)
