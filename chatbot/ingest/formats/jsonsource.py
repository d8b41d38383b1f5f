"""JSON records out of a file: JSON Lines (one object a line, bad lines reported one
by one) or one JSON document (an array, a wrapper object such as {"tickets": [...]},
or a single record). Says where each record is, and reads the id every export format
opens a conversation with (`open_record`, `conversations`); what the rest of a record
means is the format's job."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from chatbot.errors import InputError
from chatbot.ingest.readers import Line
from chatbot.ingest.records import Problem, RawConversation, Turn

# A decoded JSON object: its values are whatever JSON holds, to be checked before use.
JsonObject = dict[str, object]


@dataclass
class JsonRecord:
    value: JsonObject
    line: int | None
    index: int

    def problem(self, path: str, reason: str, kind: str) -> Problem:
        """A problem with this record, placed at its line (or record index)."""
        return Problem(path, reason, kind, line=self.line, index=self.index)


@dataclass(frozen=True)
class OpenRecord:
    """A record whose id has been read: what a format's parser goes on with."""

    value: JsonObject
    ident: str
    path: str
    line: int | None
    index: int

    def problem(self, reason: str, kind: str) -> Problem:
        """A problem with this record, placed at its line (or record index)."""
        return Problem(self.path, reason, kind, line=self.line, index=self.index)

    def conversation(
        self, turns: list[Turn], meta: dict[str, object], source: str | None = None
    ) -> RawConversation:
        """The record read as a conversation, placed where the record is."""
        return RawConversation(self.ident, source, turns, meta, line=self.line, index=self.index)


def open_record(
    record: JsonRecord,
    path: str,
    *,
    no_id: str = "conversation has no 'id'",
    tell_bad_id: bool = False,
) -> OpenRecord | Problem:
    """The record with its id, or the problem that it has none (`no_id`, a missing_field).
    With `tell_bad_id`, an id that is there but neither a non-empty string nor a number
    is a bad_field of its own instead."""
    value = record.value
    ident = external_id(value.get("id"))
    if ident is None:
        if tell_bad_id and "id" in value:
            return record.problem(
                path,
                f"field 'id' must be a non-empty string or number, got {value['id']!r}",
                "bad_field",
            )
        return record.problem(path, no_id, "missing_field")
    return OpenRecord(value, ident, path, record.line, record.index)


def conversations(
    lines: Iterable[Line],
    path: str,
    read: Callable[[OpenRecord], RawConversation | Problem],
    *,
    wrapper_keys: tuple[str, ...] = (),
    no_id: str = "conversation has no 'id'",
    tell_bad_id: bool = False,
) -> Iterator[RawConversation | Problem]:
    """A JSON export's conversations, record by record: each record is opened (its id
    read, see `open_record`) and handed to the format's `read`; bad records are problems."""
    for item in json_records(lines, path, wrapper_keys):
        if isinstance(item, Problem):
            yield item
            continue
        opened = open_record(item, path, no_id=no_id, tell_bad_id=tell_bad_id)
        yield opened if isinstance(opened, Problem) else read(opened)


def _json_reason(exc: json.JSONDecodeError, text: str) -> str:
    if exc.pos >= len(text.rstrip()):
        return f"not valid JSON: the record is cut short ({exc.msg} at column {exc.colno})"
    return f"not valid JSON: {exc.msg} at column {exc.colno}"


def _parses_as_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def json_records(
    lines: Iterable[Line], path: str, wrapper_keys: tuple[str, ...] = ()
) -> Iterator[JsonRecord | Problem]:
    lines = iter(lines)
    head: list[Line] = []
    for line in lines:
        head.append(line)
        if sum(1 for item in head if item.text.strip()) >= 5:
            break
    non_empty = [item for item in head if item.text.strip()]
    if not non_empty:
        raise InputError("is empty: no records to import", path=path)
    first = non_empty[0].text.lstrip("\ufeff").strip()
    ndjson = first.startswith("{") and any(_parses_as_object(item.text) for item in non_empty)
    if ndjson:
        yield from _ndjson(_chain(head, lines), path, wrapper_keys)
    else:
        yield from _document(_chain(head, lines), path, wrapper_keys)


def _chain(head: list[Line], rest: Iterator[Line]) -> Iterator[Line]:
    yield from head
    yield from rest


def _ndjson(
    lines: Iterator[Line], path: str, wrapper_keys: tuple[str, ...]
) -> Iterator[JsonRecord | Problem]:
    index = 0
    for line in lines:
        text = line.text.strip()
        if not text:
            continue
        index += 1
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Problem(
                path, _json_reason(exc, text), "invalid_json", line=line.number, index=index
            )
            continue
        except RecursionError:
            yield Problem(
                path,
                "not valid JSON: nested too deeply",
                "invalid_json",
                line=line.number,
                index=index,
            )
            continue
        if not isinstance(value, dict):
            yield Problem(
                path,
                f"expected a JSON object, got {type(value).__name__}",
                "not_an_object",
                line=line.number,
                index=index,
            )
            continue
        wrapped = next((value[k] for k in wrapper_keys if isinstance(value.get(k), list)), None)
        if wrapped is None:
            yield JsonRecord(value, line.number, index)
            continue
        # A page of an API export on one line: {"tickets": [...]}.
        index -= 1
        for item in wrapped:
            index += 1
            if isinstance(item, dict):
                yield JsonRecord(item, line.number, index)
            else:
                yield Problem(
                    path,
                    f"expected a JSON object, got {type(item).__name__}",
                    "not_an_object",
                    line=line.number,
                    index=index,
                )


def _document(
    lines: Iterator[Line], path: str, wrapper_keys: tuple[str, ...]
) -> Iterator[JsonRecord | Problem]:
    text = "\n".join(line.text for line in lines)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (the file is cut short)" if exc.pos >= len(text.rstrip()) else ""
        raise InputError(
            f"not valid JSON: {exc.msg} at column {exc.colno}{cut}", path=path, line=exc.lineno
        ) from None
    except RecursionError:
        raise InputError("not valid JSON here: nested too deeply", path=path) from None
    if isinstance(document, dict):
        for key in wrapper_keys:
            if isinstance(document.get(key), list):
                document = document[key]
                break
        else:
            document = [document]
    if not isinstance(document, list):
        raise InputError(
            f"expected a JSON array or object of records, got {type(document).__name__}", path=path
        )
    for index, value in enumerate(document, start=1):
        if not isinstance(value, dict):
            yield Problem(
                path,
                f"expected a JSON object, got {type(value).__name__}",
                "not_an_object",
                index=index,
            )
            continue
        yield JsonRecord(value, None, index)


def external_id(value: object) -> str | None:
    """An id as text: a non-empty string or a number (not a boolean); None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        text = str(value).strip()
        return text or None
    return None
