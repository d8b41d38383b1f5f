"""Versioned index directories under `settings.index_dir / "pairs"`, and the atomic
switch between them.

    pairs/v0001/  meta.json, pairs.jsonl, vectors.npy, index.faiss, lexical/
    pairs/v0002/  ...
    pairs/CURRENT   the name of the version searches use

A version is written under a temporary name and renamed only when complete; then
CURRENT is replaced (write to a temp file, rename), so a reader sees the old version
or the new one, never half of one. What goes inside a version is `indexer`'s job.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from chatbot.errors import ChatbotError

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^v(\d{4,})$")


class IndexNotFoundError(ChatbotError):
    """There is no index to search yet."""


class IndexStaleError(ChatbotError):
    """The index no longer matches the store or the embedder: its citations would be wrong."""


def write_json_atomic(path: Path, payload: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VersionStore:
    def __init__(self, root: Path):
        self.root = root

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = [p.name for p in self.root.iterdir() if p.is_dir() and _VERSION.match(p.name)]
        return sorted(names, key=lambda n: int(_VERSION.match(n).group(1)))

    def current_name(self) -> str | None:
        pointer = self.root / "CURRENT"
        if not pointer.is_file():
            return None
        name = pointer.read_text().strip()
        return name if (self.root / name / "meta.json").is_file() else None

    def current(self) -> Path | None:
        name = self.current_name()
        return self.root / name if name else None

    def require_current(self) -> Path:
        path = self.current()
        if path is None:
            raise IndexNotFoundError(f"there is no retrieval index in {self.root}; run: chatbot index")
        return path

    def staging(self) -> Path:
        """A fresh temporary directory to write a version into."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.root, prefix=".building-"))

    def next_name(self) -> str:
        existing = self.versions()
        number = int(_VERSION.match(existing[-1]).group(1)) + 1 if existing else 1
        return f"v{number:04d}"

    def commit(self, staged: Path) -> str:
        """Rename a complete staged directory to the next version and make it current."""
        name = self.next_name()
        os.replace(staged, self.root / name)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".CURRENT.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(name + "\n")
        os.replace(tmp, self.root / "CURRENT")
        return name

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest versions beyond `keep` (never the current one) and stale
        staging directories; returns the deleted names."""
        current = self.current_name()
        old = [n for n in self.versions() if n != current]
        doomed = old[: max(0, len(old) - (keep - 1))]
        for name in doomed:
            shutil.rmtree(self.root / name, ignore_errors=True)
        return doomed
