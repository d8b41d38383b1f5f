"""CSV of question/answer rows: each row becomes a two-turn conversation (customer
question, agent answer). Column names are configurable (`--map question=text,answer=reply`);
the delimiter (, ; tab |) is taken from the header line."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from chatbot.errors import InputError
from chatbot.ingest.formats import FormatOptions
from chatbot.ingest.readers import Line
from chatbot.ingest.records import Problem, RawConversation, Turn

# What a column can hold, and the column names tried when the map does not say.
FIELDS = {
    "question": ("question", "q", "customer", "query", "prompt"),
    "answer": ("answer", "a", "agent", "reply", "response"),
    "intent": ("intent", "label", "category"),
    "id": ("id", "conversation_id", "ticket_id"),
    "source": ("source",),
}
REQUIRED = ("question", "answer")
DELIMITERS = (",", ";", "\t", "|")


def check_column_map(column_map: dict[str, str]) -> None:
    unknown = sorted(set(column_map) - set(FIELDS))
    if unknown:
        raise InputError(
            f"--map: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(FIELDS)}"
        )


def sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def resolve_columns(header: list[str], column_map: dict[str, str]) -> dict[str, int]:
    """Field -> column index; fields the header lacks are left out."""
    lowered = [h.strip().lstrip("\ufeff").lower() for h in header]
    found: dict[str, int] = {}
    for name, candidates in FIELDS.items():
        wanted = (column_map[name],) if name in column_map else candidates
        for candidate in wanted:
            if candidate.strip().lower() in lowered:
                found[name] = lowered.index(candidate.strip().lower())
                break
    return found


def parse(
    lines: Iterator[Line], path: str, options: FormatOptions
) -> Iterator[RawConversation | Problem]:
    check_column_map(options.column_map)
    lines = iter(lines)
    header_line = next((line for line in lines if line.text.strip()), None)
    if header_line is None:
        raise InputError("is empty: no records to import", path=path)
    delimiter = sniff_delimiter(header_line.text)
    header = next(csv.reader([header_line.text], delimiter=delimiter))
    columns = resolve_columns(header, options.column_map)
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        wanted = ", ".join(f"{m} (column {options.column_map.get(m, m)!r})" for m in missing)
        raise InputError(
            f"CSV header {header!r} has no column for {wanted}; name the columns with --map question=COL,answer=COL",
            path=path,
            line=header_line.number,
        )
    numbers: list[int] = []

    def texts() -> Iterator[str]:
        for line in lines:
            numbers.append(line.number)
            yield line.text + "\n"

    reader = csv.reader(texts(), delimiter=delimiter)
    index = 0
    while True:
        start = len(numbers)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            index += 1
            yield Problem(
                path,
                f"bad CSV: {exc}",
                "invalid_csv",
                line=numbers[-1] if numbers else None,
                index=index,
            )
            continue
        if not any(cell.strip() for cell in row):
            continue
        index += 1
        line = numbers[start] if len(numbers) > start else None  # first line of the row
        if len(row) != len(header):
            yield Problem(
                path,
                f"row has {len(row)} fields, the header has {len(header)}",
                "bad_row",
                line=line,
                index=index,
            )
            continue
        cell = {name: row[col].strip() for name, col in columns.items()}
        empty = [name for name in REQUIRED if not cell[name]]
        if empty:
            yield Problem(
                path,
                f"empty {' and '.join(empty)} (column {header[columns[empty[0]]]!r})",
                "missing_field",
                line=line,
                index=index,
            )
            continue
        meta = {"intent": cell["intent"]} if cell.get("intent") else {}
        yield RawConversation(
            external_id=cell.get("id") or None,
            source=cell.get("source") or None,
            turns=[Turn("customer", cell["question"]), Turn("agent", cell["answer"])],
            meta=meta,
            line=line,
            index=index,
        )
