"""Orchestrating an import: for each file, detect the format, parse, validate, redact,
store conversations, messages and pairs in ONE transaction, and report what happened;
then recount company constants and re-slot the pairs' replies over the whole store
(`chatbot.ingest.constants`, its own transaction).

Idempotent twice over: a file whose bytes were already imported (same source and column
options) is skipped at once, and every conversation and pair carries a content hash,
so overlapping files add only what is new. A failure, --strict rejection or a killed
process leaves the store as it was before that file. Live conversations are never
read or written here. The CLI (`chatbot import`) and the app's start-up call
`import_paths`; printing and progress bars are theirs.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatbot.config import DataPaths
from chatbot.errors import InputError, StoreError
from chatbot.ingest import repository
from chatbot.ingest.constants import needs_recompute, recompute
from chatbot.ingest.detect import detect_format
from chatbot.ingest.formats import FORMAT_NAMES, FormatOptions, parser_for
from chatbot.ingest.formats.csv_qa import check_column_map
from chatbot.ingest.pairs import PairCandidate, build_pairs, labels_from_meta, split_for
from chatbot.ingest.readers import Line, iter_lines
from chatbot.ingest.records import (
    FileStatus,
    FileSummary,
    ImportSummary,
    Problem,
    RawConversation,
)
from chatbot.ingest.settings import IngestSettings
from chatbot.ingest.validate import CleanConversation, clean
from chatbot.store.enums import PairOrigin
from chatbot.text.redact import Redactor

if TYPE_CHECKING:
    from chatbot.store.database import Database

log = logging.getLogger(__name__)

DEFAULT_SOURCES = {
    "csv": "csv",
    "zendesk": "zendesk",
    "intercom": "intercom",
    "chatwoot": "chatwoot",
}


class ProgressBar(Protocol):
    def update(self, n: int) -> object: ...
    def close(self) -> object: ...


ProgressFactory = Callable[[str, int], ProgressBar]
J = TypeVar("J")


class _NewPair(NamedTuple):
    """A pair of a conversation being stored, before the store is asked whether it has it."""

    conversation_id: int
    conversation: CleanConversation
    pair: PairCandidate
    quality: float | None
    labels: dict[str, Any]


class _Rejected(Exception):
    """Raised inside the file's transaction to roll it back (--strict with bad records)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror}", path=str(path)) from None
    return digest.hexdigest()


def import_paths(
    target: DataPaths | Database,
    paths: Iterable[Path | str],
    *,
    format: str = "auto",
    source: str | None = None,
    strict: bool = False,
    column_map: dict[str, str] | None = None,
    ingest: IngestSettings | None = None,
    progress: ProgressFactory | None = None,
) -> ImportSummary:
    """Import `paths` into the store of `target` (the data paths' store, or a `Database`),
    cleaned by `ingest` (default: the defaults).

    Bad records are listed in the summary and skipped (or, with `strict`, make their
    whole file be skipped); unreadable files are reported as failed. Raises StoreError
    when the store cannot be used and InputError for bad arguments."""
    from chatbot.store.database import Database, require_schema

    if format != "auto" and format not in FORMAT_NAMES:
        raise InputError(
            f"unknown format {format!r}; expected auto or one of {', '.join(FORMAT_NAMES)}"
        )
    column_map = dict(column_map or {})
    check_column_map(column_map)
    owned = False
    if isinstance(target, DataPaths):
        database = Database(target.database_url)
        owned = True
    elif isinstance(target, Database):
        database = target
    else:
        raise TypeError(f"import_paths needs DataPaths or Database, got {type(target).__name__}")
    ingest = ingest or IngestSettings()
    try:
        require_schema(database.engine)
        summary = ImportSummary()
        for path in paths:
            summary.files.append(
                _FileImport(
                    database, Path(path), format, source, strict, column_map, ingest, progress
                ).run()
            )
        if summary.pairs or needs_recompute(database):
            # Constants vs one customer's specifics, recounted over the whole store (one transaction).
            recompute(database, min_conversations=ingest.constant_min_conversations)
        return summary
    finally:
        if owned:
            database.dispose()


class _FileImport:
    def __init__(
        self,
        database: Database,
        path: Path,
        format: str,
        source: str | None,
        strict: bool,
        column_map: dict[str, str],
        ingest: IngestSettings,
        progress: ProgressFactory | None,
    ) -> None:
        self.database = database
        self.path = path
        self.name = str(path)
        self.format = format
        self.source_override = source.strip() if source and source.strip() else None
        self.strict = strict
        self.column_map = column_map
        self.cfg = ingest
        self.progress = progress
        self.summary = FileSummary(path=self.name)
        self.redactor = Redactor(
            ingest.redact_kinds if ingest.redact else (), ingest.redact_allowlist
        )
        self.seen_conversations: set[str] = set()
        self.seen_pairs: set[str] = set()
        self.sources: set[str] = set()
        self.import_id: int | None = None

    # -- the file as a whole ---------------------------------------------------------
    def run(self) -> FileSummary:
        started = time.perf_counter()
        summary = self.summary
        try:
            sha = file_sha256(self.path)
            fmt = (
                detect_format(self.path, self.column_map) if self.format == "auto" else self.format
            )
        except InputError as exc:
            return self._failed(exc, started)
        summary.format = fmt
        key = {
            "source": self.source_override,
            "format": fmt,
            "column_map": self.column_map if fmt == "csv" else {},
        }
        with self.database.session() as session:
            previous = repository.done_import(session=session, file_sha256=sha, key=key)
            if previous is not None:
                summary.status = FileStatus.ALREADY_IMPORTED
                summary.import_id = previous.id
                summary.seconds = time.perf_counter() - started
                log.info("%s: already imported (import %d); nothing to do", self.name, previous.id)
                return summary
        bar = self.progress(self.name, self.path.stat().st_size) if self.progress else None
        try:
            with self.database.session() as session:
                self._import(session, fmt, sha, key, bar)
        except _Rejected:
            self._forget_counts()
            summary.status = FileStatus.REJECTED
            summary.error = (
                f"{len(summary.problems)} bad record(s); --strict imports nothing from this file"
            )
        except InputError as exc:
            self._forget_counts()
            return self._failed(exc, started)
        except IntegrityError as exc:
            raise StoreError(
                f"{self.name}: another process stored some of the same records at the same time; run the import again ({exc.orig})"
            ) from None
        finally:
            if bar is not None:
                bar.close()
        summary.seconds = time.perf_counter() - started
        return summary

    def _failed(self, exc: InputError, started: float) -> FileSummary:
        self.summary.status = FileStatus.FAILED
        self.summary.error = str(exc)
        self.summary.problems.append(
            Problem(self.name, exc.reason, "unreadable_file", line=exc.line)
        )
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _forget_counts(self) -> None:
        s = self.summary
        s.import_id = None
        s.conversations = s.messages = s.pairs = 0
        s.redactions.clear()
        s.pairs_skipped.clear()

    def _import(
        self, session: Session, fmt: str, sha: str, key: dict[str, Any], bar: ProgressBar | None
    ) -> None:
        from chatbot.store.schema import Import

        record = Import(
            source=(self.source_override or "")[:200],
            file_name=self.name[:1000],
            file_sha256=sha,
            format=fmt,
            status="running",
            settings={
                "key": key,
                "strict": self.strict,
                "ingest": self.cfg.model_dump(mode="json"),
            },
        )
        session.add(record)
        session.flush()
        self.import_id = record.id
        self.summary.import_id = record.id
        log.info("%s: importing as %s (import %d)", self.name, fmt, record.id)
        parser = parser_for(fmt)
        pending: list[CleanConversation] = []
        for item in parser(self._lines(bar), self.name, FormatOptions(self.column_map)):
            conversation = self._check(item, fmt)
            if conversation is None:
                continue
            pending.append(conversation)
            if len(pending) >= self.cfg.batch_size:
                self._store(session, pending)
                pending = []
        self._store(session, pending)
        if self.strict and self.summary.problems:
            raise _Rejected()
        record.source = (self.source_override or ",".join(sorted(self.sources)) or fmt)[:200]
        record.status = "done"
        self.summary.status = FileStatus.IMPORTED
        record.finished_at = datetime.now(UTC)
        record.stats = self.summary.to_dict(max_problems=100)

    def _lines(self, bar: ProgressBar | None) -> Iterator[Line]:
        for line in iter_lines(self.path):
            if bar is not None:
                bar.update(line.nbytes)
            yield line

    # -- one record ------------------------------------------------------------------
    def _check(self, item: RawConversation | Problem, fmt: str) -> CleanConversation | None:
        summary = self.summary
        summary.records += 1
        if isinstance(item, Problem):
            self._problem(item)
            return None
        source = self.source_override or item.source or DEFAULT_SOURCES.get(fmt) or self.path.stem
        result = clean(
            item, path=self.name, source=source[:200], max_chars=self.cfg.max_message_chars
        )
        if isinstance(result, Problem):
            self._problem(result)
            return None
        if result.content_hash in self.seen_conversations:
            summary.skipped["duplicate_in_file"] += 1
            return None
        self.seen_conversations.add(result.content_hash)
        if result.dropped_empty:
            summary.skipped["empty_turns_dropped"] += result.dropped_empty
        return result

    def _problem(self, problem: Problem) -> None:
        self.summary.problems.append(problem)
        self.summary.skipped[problem.kind] += 1
        log.debug("%s", problem)

    # -- a batch of clean conversations ------------------------------------------------
    def _store(self, session: Session, batch: list[CleanConversation]) -> None:
        if not batch or (self.strict and self.summary.problems):
            return  # strict: nothing will be kept, so write nothing more
        summary = self.summary
        existing = repository.existing_conversation_hashes(
            session=session, hashes=[c.content_hash for c in batch]
        )
        new = [c for c in batch if c.content_hash not in existing]
        if len(new) < len(batch):
            summary.skipped["already_stored"] += len(batch) - len(new)
        if not new:
            return
        conversation_rows = [self._conversation_row(conversation) for conversation in new]
        ids = repository.insert_conversations(session=session, rows=conversation_rows)
        message_rows: list[dict[str, Any]] = []
        candidates: list[_NewPair] = []
        for conversation_id, conversation in zip(ids, new, strict=True):
            message_rows.extend(self._message_rows(conversation_id, conversation))
            candidates.extend(self._new_pairs(conversation_id, conversation))
        pair_rows = self._pair_rows(session, candidates)
        repository.insert_messages(session=session, rows=message_rows)
        repository.insert_pairs(session=session, rows=pair_rows)
        summary.conversations += len(new)
        summary.messages += len(message_rows)
        summary.pairs += len(pair_rows)
        log.debug(
            "%s: stored a batch of %d conversations (%d so far)",
            self.name,
            len(new),
            summary.conversations,
        )

    def _conversation_row(self, conversation: CleanConversation) -> dict[str, Any]:
        """Redact the conversation's turns, give it its split and return its row."""
        cfg = self.cfg
        for turn in conversation.turns:
            turn.text = self.redactor.redact(turn.original, self.summary.redactions)
        ident = conversation.external_id or conversation.content_hash[:16]
        conversation.split = split_for(
            conversation.source,
            ident,
            val_fraction=cfg.val_fraction,
            test_fraction=cfg.test_fraction,
        )
        self.sources.add(conversation.source)
        meta = self._redact_value(dict(conversation.meta))
        meta["import"] = {
            "file": self.path.name,
            "line": conversation.line,
            "record": conversation.index,
        }
        return {
            "external_id": conversation.external_id[:300] if conversation.external_id else None,
            "source": conversation.source,
            "channel": "import",
            "import_id": self.import_id,
            "content_hash": conversation.content_hash,
            "split": conversation.split,
            "state": "closed",
            "meta": meta,
        }

    def _message_rows(
        self, conversation_id: int, conversation: CleanConversation
    ) -> list[dict[str, Any]]:
        return [
            {
                "conversation_id": conversation_id,
                "turn_index": index,
                "role": turn.role,
                "text": turn.text,
                "original_text": turn.original if self.cfg.keep_original_text else None,
                "meta": {"merged": turn.merged} if turn.merged > 1 else {},
            }
            for index, turn in enumerate(conversation.turns)
        ]

    def _new_pairs(self, conversation_id: int, conversation: CleanConversation) -> list[_NewPair]:
        """The conversation's training pairs not seen earlier in this file."""
        cfg, summary = self.cfg, self.summary
        pairs, skipped = build_pairs(
            [(t.role, t.text) for t in conversation.turns],
            window=cfg.context_turns,
            filter_trivial=cfg.filter_trivial_pairs,
            collapse=cfg.collapse_near_duplicates,
        )
        summary.pairs_skipped.update(skipped)
        quality, labels = labels_from_meta(conversation.meta)
        candidates = []
        for pair in pairs:
            if pair.content_hash in self.seen_pairs:
                summary.pairs_skipped["near_duplicate"] += 1
                continue
            self.seen_pairs.add(pair.content_hash)
            candidates.append(_NewPair(conversation_id, conversation, pair, quality, labels))
        return candidates

    def _pair_rows(self, session: Session, candidates: list[_NewPair]) -> list[dict[str, Any]]:
        """Rows for the candidates the store does not hold yet."""
        existing_pairs = repository.existing_pair_hashes(
            session=session, hashes=[c.pair.content_hash for c in candidates]
        )
        rows = []
        for candidate in candidates:
            pair, conversation = candidate.pair, candidate.conversation
            if pair.content_hash in existing_pairs:
                self.summary.pairs_skipped["near_duplicate"] += 1
                continue
            rows.append(
                {
                    "conversation_id": candidate.conversation_id,
                    "turn_index": pair.turn_index,
                    "import_id": self.import_id,
                    "source": conversation.source,
                    "origin": PairOrigin.IMPORTED,
                    "split": conversation.split,
                    "context": pair.context,
                    "target": pair.target,
                    "quality": candidate.quality,
                    "labels": candidate.labels,
                    "content_hash": pair.content_hash,
                }
            )
        return rows

    def _redact_value(self, value: J) -> J:
        """`value` (a JSON value) with every string in it redacted: the same shape."""
        return cast(J, self._redacted(value))

    def _redacted(self, value: object) -> object:
        if isinstance(value, str):
            return self.redactor.redact(value, self.summary.redactions)
        if isinstance(value, dict):
            return {k: self._redacted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redacted(v) for v in value]
        return value


def counts(summary: ImportSummary) -> Counter[str]:
    """Totals as a Counter (handy in tests and logs)."""
    return Counter(
        conversations=summary.conversations, messages=summary.messages, pairs=summary.pairs
    )
