"""The records that flow between the ingest stages: parsed turns and conversations,
problems found in a file, and the summary of an import. Structure only; no parsing,
no storage."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


@dataclass
class Turn:
    role: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawConversation:
    """One conversation as a format parser read it, before validation."""

    external_id: str | None
    source: str | None
    turns: list[Turn]
    meta: dict[str, Any] = field(default_factory=dict)
    line: int | None = None  # first line of the record in the file
    index: int = 0  # 1-based record number in the file


@dataclass
class Problem:
    """A bad record (or a bad file): where it is and why it was refused."""

    path: str
    reason: str
    kind: str  # short code for counting: invalid_json, missing_field, bad_role, too_long, ...
    line: int | None = None
    index: int | None = None

    def where(self) -> str:
        if self.line is not None:
            return f"{self.path}:{self.line}"
        if self.index is not None:
            return f"{self.path} (record {self.index})"
        return self.path

    def __str__(self) -> str:
        return f"{self.where()}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "record": self.index,
            "kind": self.kind,
            "reason": self.reason,
        }


class FileStatus(StrEnum):
    """What became of one file of an import."""

    PENDING = "pending"  # not finished yet
    IMPORTED = "imported"
    ALREADY_IMPORTED = "already_imported"  # the same bytes with the same options, before
    REJECTED = "rejected"  # --strict, and bad records in it: nothing kept
    FAILED = "failed"  # the file could not be read


@dataclass
class FileSummary:
    path: str
    format: str | None = None
    status: FileStatus = FileStatus.PENDING
    import_id: int | None = None
    records: int = 0
    conversations: int = 0
    messages: int = 0
    pairs: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # records not stored, by reason
    pairs_skipped: Counter[str] = field(
        default_factory=Counter
    )  # agent turns that gave no pair, by reason
    redactions: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self, max_problems: int | None = None) -> dict[str, Any]:
        problems = self.problems if max_problems is None else self.problems[:max_problems]
        return {
            "path": self.path,
            "format": self.format,
            "status": self.status,
            "import_id": self.import_id,
            "records": self.records,
            "conversations": self.conversations,
            "messages": self.messages,
            "pairs": self.pairs,
            "skipped": dict(self.skipped),
            "pairs_skipped": dict(self.pairs_skipped),
            "redactions": dict(self.redactions),
            "problems": [p.to_dict() for p in problems],
            "problems_total": len(self.problems),
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ImportSummary:
    files: list[FileSummary] = field(default_factory=list)

    def _sum(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    def _counter(self, name: str) -> Counter[str]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(getattr(f, name))
        return total

    @property
    def conversations(self) -> int:
        return self._sum("conversations")

    @property
    def messages(self) -> int:
        return self._sum("messages")

    @property
    def pairs(self) -> int:
        return self._sum("pairs")

    @property
    def skipped(self) -> Counter[str]:
        return self._counter("skipped")

    @property
    def pairs_skipped(self) -> Counter[str]:
        return self._counter("pairs_skipped")

    @property
    def redactions(self) -> Counter[str]:
        return self._counter("redactions")

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files for p in f.problems]

    @property
    def ok(self) -> bool:
        """True when every file was imported (or already was); bad records skipped in
        lenient mode do not make an import fail."""
        return all(
            f.status in (FileStatus.IMPORTED, FileStatus.ALREADY_IMPORTED) for f in self.files
        )

    def to_dict(self, max_problems: int | None = None) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "conversations": self.conversations,
            "messages": self.messages,
            "pairs": self.pairs,
            "skipped": dict(self.skipped),
            "pairs_skipped": dict(self.pairs_skipped),
            "redactions": dict(self.redactions),
            "files": [f.to_dict(max_problems) for f in self.files],
        }


__all__ = [
    "Turn",
    "RawConversation",
    "Problem",
    "FileStatus",
    "FileSummary",
    "ImportSummary",
    "asdict",
]
