"""Versioned index directories under `paths.index_dir / "pairs"`, and the atomic
switch between them.

    pairs/v0001/  meta.json, pairs.jsonl, vectors.npy, index.faiss, lexical/
    pairs/v0002/  ...
    pairs/CURRENT   the name of the version searches use

A version is written under a temporary name and renamed only when complete; then
CURRENT is replaced (write to a temp file, rename), so a reader sees the old version
or the new one, never half of one. A build in progress holds an advisory lock on
`.building-*/.lock`; a staging directory whose lock nobody holds (its build was killed)
is deleted by the next build, and is never taken for a version. What goes inside a
version is `index_files`' job (reading) and `chatbot.indexing`'s (writing).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from chatbot.errors import ChatbotError
from chatbot.files import replace_directory, write_text_atomic
from chatbot.meta_file import describe_problem

__all__ = [
    "IndexDamagedError",
    "IndexNotFoundError",
    "IndexStaleError",
    "VersionStore",
    "describe_problem",
]

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^v(\d{4,})$")
STAGING_PREFIX = ".building-"
LOCK_FILE = ".lock"
# A staging directory without its lock file (killed between creating the directory and
# the lock) or a temporary CURRENT file is left alone this long before it counts as debris.
STALE_SECONDS = 60.0
REBUILD_HINT = "run: chatbot index --rebuild"


class IndexNotFoundError(ChatbotError):
    """There is no index to search yet."""


class IndexStaleError(ChatbotError):
    """The index no longer matches the store or the embedder: its citations would be wrong."""


class IndexDamagedError(ChatbotError):
    """A file of the current index version is missing, cut short or unreadable. The
    message names the file and the repair (`chatbot index --rebuild`)."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"the retrieval index is damaged: {path}: {problem}; {REBUILD_HINT}")
        self.path = Path(path)
        self.problem = problem


def _number(name: str) -> int:
    """The number of a version name (`v0012` -> 12); ValueError for anything else."""
    match = _VERSION.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a version name")
    return int(match.group(1))


def _try_lock(fd: int) -> bool:
    """Take an exclusive advisory lock without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no locks, so never "stale" by lock
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class VersionStore:
    def __init__(self, root: Path):
        self.root = root
        self._locks: dict[Path, int] = {}

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = [p.name for p in self.root.iterdir() if p.is_dir() and _VERSION.match(p.name)]
        return sorted(names, key=_number)

    def _pointer(self) -> str | None:
        """The name CURRENT holds (None when there is no CURRENT file)."""
        pointer = self.root / "CURRENT"
        try:
            return pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):
            return ""

    def current_pointer(self) -> str | None:
        """What CURRENT holds, whether or not that version is complete (None: nothing)."""
        return self._pointer() or None

    def current_name(self) -> str | None:
        """The current version's name; None when there is none or CURRENT names no
        complete version (see `require_current` for the reason)."""
        name = self._pointer()
        if not name or not _VERSION.match(name):
            return None
        return name if (self.root / name / "meta.json").is_file() else None

    def current(self) -> Path | None:
        name = self.current_name()
        return self.root / name if name else None

    def require_current(self) -> Path:
        """The current version's directory. IndexNotFoundError when no index was ever
        built; IndexDamagedError when CURRENT names a version that is not there."""
        path = self.current()
        if path is not None:
            return path
        name = self._pointer()
        pointer = self.root / "CURRENT"
        if name is None:
            raise IndexNotFoundError(
                f"there is no retrieval index in {self.root}; run: chatbot index"
            )
        if not name or not _VERSION.match(name):
            raise IndexDamagedError(pointer, "does not name an index version")
        if not (self.root / name).is_dir():
            raise IndexDamagedError(pointer, f"names the version {name}, which is missing")
        raise IndexDamagedError(self.root / name / "meta.json", "missing")

    def staging(self) -> Path:
        """A fresh temporary directory to write a version into, locked by this process
        until `commit` or `discard` (stale ones of killed builds are deleted first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_stale()
        staged = Path(tempfile.mkdtemp(dir=self.root, prefix=STAGING_PREFIX))
        fd = os.open(staged / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        _try_lock(fd)
        self._locks[staged] = fd
        return staged

    def _release(self, staged: Path) -> None:
        fd = self._locks.pop(staged, None)
        if fd is not None:
            os.close(fd)

    def clean_stale(self) -> list[str]:
        """Delete the staging directories of builds that no longer run (their lock is
        free) and temporary CURRENT files older than STALE_SECONDS; returns their names."""
        if not self.root.is_dir():
            return []
        removed = []
        now = time.time()
        for path in self.root.iterdir():
            try:
                if path.name.startswith(STAGING_PREFIX) and path.is_dir():
                    if path in self._locks or not self._abandoned(path, now):
                        continue
                    shutil.rmtree(path, ignore_errors=True)
                elif path.name.startswith(".CURRENT.") and path.name.endswith(".tmp"):
                    if now - path.stat().st_mtime < STALE_SECONDS:
                        continue
                    path.unlink(missing_ok=True)
                else:
                    continue
            except OSError:
                continue
            removed.append(path.name)
            log.info("removed %s, left behind by an interrupted build", path)
        return removed

    @staticmethod
    def _abandoned(staged: Path, now: float) -> bool:
        try:
            fd = os.open(staged / LOCK_FILE, os.O_RDWR)
        except FileNotFoundError:
            return now - staged.stat().st_mtime >= STALE_SECONDS
        try:
            return _try_lock(fd)
        finally:
            os.close(fd)  # releases the lock taken to test it

    def next_name(self) -> str:
        existing = self.versions()
        number = _number(existing[-1]) + 1 if existing else 1
        return f"v{number:04d}"

    def commit(self, staged: Path) -> str:
        """Rename a complete staged directory to the next version and make it current."""
        name = self.next_name()
        (staged / LOCK_FILE).unlink(missing_ok=True)
        try:
            replace_directory(staged, self.root / name)
        finally:
            self._release(staged)
        write_text_atomic(self.root / "CURRENT", name + "\n")
        return name

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)
        self._release(staged)

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest versions beyond `keep` (never the current one); returns
        the deleted names. (Stale staging directories go in `clean_stale`.)"""
        current = self.current_name()
        old = [n for n in self.versions() if n != current]
        doomed = old[: max(0, len(old) - (keep - 1))]
        for name in doomed:
            shutil.rmtree(self.root / name, ignore_errors=True)
        return doomed
