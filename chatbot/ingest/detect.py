"""Telling the formats apart by content (never by file name): the keys of the first
JSON record, or a CSV header with question and answer columns. Reading the records
is the format parsers' job."""

from __future__ import annotations

import csv
import json
import re
from itertools import islice
from pathlib import Path

from chatbot.errors import InputError
from chatbot.ingest.formats.csv_qa import REQUIRED, resolve_columns, sniff_delimiter
from chatbot.ingest.readers import iter_lines

HEAD_LINES = 200


def _key(name: str) -> re.Pattern[str]:
    return re.compile(r'(?<!\\)"' + name + r'"\s*:')


# Checked in this order; the first whose keys are all present wins.
SIGNATURES = (
    ("intercom", ("conversation_parts",)),
    ("chatwoot", ("messages", "message_type")),
    ("zendesk", ("comments", "author_id")),
    ("jsonl", ("turns",)),
)


def _by_keys(keys: set[str]) -> str | None:
    for name, needed in SIGNATURES:
        if all(k in keys for k in needed):
            return name
    return None


def _record_keys(value: object) -> set[str]:
    """Keys of a record and of the objects one or two levels inside it."""
    keys: set[str] = set()
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            keys.update(item)
            if depth < 3:
                stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list) and depth < 3:
            stack.extend((v, depth + 1) for v in item[:5])
    return keys


def detect_format(path: Path | str, column_map: dict[str, str] | None = None) -> str:
    """The format name for `path`; InputError when it cannot be told."""
    name = str(path)
    head = [line for line in islice(iter_lines(path), HEAD_LINES)]
    non_empty = [line.text.strip() for line in head if line.text.strip()]
    if not non_empty:
        raise InputError("is empty: no records to import", path=name)
    first = non_empty[0]
    if first.startswith(("{", "[")):
        for text in non_empty[:5]:
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                continue
            if isinstance(value, dict):
                if isinstance(value.get("turns"), list):
                    return "jsonl"
                found = _by_keys(_record_keys(value))
                if found:
                    return found
        # One JSON document (pretty-printed or an array): look at the keys in its text.
        text = "\n".join(non_empty)
        present = {k for _, needed in SIGNATURES for k in needed if _key(k).search(text)}
        found = _by_keys(present)
        if found:
            return found
        raise InputError(
            "is JSON but not a format this importer knows (expected transcript records with 'turns', "
            "Zendesk tickets with 'comments', Intercom conversations with 'conversation_parts' or Chatwoot "
            "conversations with 'messages'); use --format",
            path=name,
        )
    header = next(csv.reader([first], delimiter=sniff_delimiter(first)))
    columns = resolve_columns(header, column_map or {})
    if len(header) >= 2 and all(field in columns for field in REQUIRED):
        return "csv"
    raise InputError(
        f"cannot tell the format: the first line is neither JSON nor a CSV header with question and answer "
        f"columns (got {first[:80]!r}); use --format, or --map question=COL,answer=COL for CSV",
        path=name,
        line=1,
    )
