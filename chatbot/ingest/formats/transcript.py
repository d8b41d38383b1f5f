"""The project's transcript format (JSON Lines):
{"id": "...", "source": "...", "turns": [{"role": "customer"|"agent", "text": "..."}], "meta": {...}}.
Checks the record's shape and roles; merging turns and length limits are
`chatbot.ingest.validate`'s job."""

from __future__ import annotations

from collections.abc import Iterator

from chatbot.ingest.formats import FormatOptions
from chatbot.ingest.formats.jsonsource import JsonRecord, json_records, open_record
from chatbot.ingest.readers import Line
from chatbot.ingest.records import Problem, RawConversation, Turn

ROLES = ("customer", "agent")


def parse(
    lines: Iterator[Line], path: str, options: FormatOptions
) -> Iterator[RawConversation | Problem]:
    for item in json_records(lines, path, wrapper_keys=("conversations", "transcripts")):
        if isinstance(item, Problem):
            yield item
        else:
            yield _conversation(item, path)


def _conversation(record: JsonRecord, path: str) -> RawConversation | Problem:
    opened = open_record(record, path, no_id="missing field 'id'", tell_bad_id=True)
    if isinstance(opened, Problem):
        return opened
    value, ident, problem = opened.value, opened.ident, opened.problem
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
    return opened.conversation(parsed, meta, source_name)
