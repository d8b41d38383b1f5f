"""The file formats the importer reads. Each module turns decoded lines into
`RawConversation`s (or `Problem`s for bad records) and knows nothing of validation
beyond its own shape, of redaction or of storage.

Every parser has the signature `parse(lines, path, options) -> Iterator[RawConversation | Problem]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from chatbot.ingest.readers import Line
from chatbot.ingest.records import Problem, RawConversation


@dataclass
class FormatOptions:
    column_map: dict[str, str] = field(default_factory=dict)  # CSV: role -> column name


Parser = Callable[[Iterator[Line], str, FormatOptions], Iterator[RawConversation | Problem]]

FORMAT_NAMES = ("jsonl", "csv", "zendesk", "intercom", "chatwoot")


def parser_for(name: str) -> Parser:
    from chatbot.ingest.formats import chatwoot, csv_qa, intercom, transcript, zendesk

    return {
        "jsonl": transcript.parse,
        "csv": csv_qa.parse,
        "zendesk": zendesk.parse,
        "intercom": intercom.parse,
        "chatwoot": chatwoot.parse,
    }[name]
