"""Degrade instead of dying when the current index version is damaged: serve the newest
older version that is intact and still matches the store, and say so; and, after a
rebuild, never keep a damaged version as the one to fall back to.

`open_intact_retriever` is what the serving process opens at start (the admin console
and /readyz show its `IndexHealth`); `remove_damaged_versions` runs after each build.
Loading a version is `chatbot.retrieval.retriever`'s job, switching versions
`chatbot.retrieval.versions`'.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.retrieval.index_files import check_version, load_meta, store_root
from chatbot.retrieval.retriever import (
    PairRetriever,
    check_against_store,
    load_version,
    open_retriever,
)
from chatbot.retrieval.versions import (
    REBUILD_HINT,
    IndexDamagedError,
    IndexStaleError,
    VersionStore,
)

if TYPE_CHECKING:
    from chatbot.config import DataPaths
    from chatbot.retrieval.settings import RetrievalSettings
    from chatbot.store.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexHealth:
    """Which version serves, and why it is not the current one (None: it is)."""

    serving: str | None
    problem: str | None = None

    @property
    def degraded(self) -> bool:
        return self.problem is not None


def open_intact_retriever(
    paths: DataPaths, rs: RetrievalSettings, database: Database
) -> tuple[PairRetriever, IndexHealth]:
    """The retriever over the current version; when that one is damaged, over the
    newest older version that loads and matches the store, with the problem noted.
    IndexDamagedError when no version is intact; IndexNotFoundError (no index) and
    IndexStaleError (the current one no longer matches the store) as `open_retriever`."""
    try:
        retriever = open_retriever(paths, rs, database)
        return retriever, IndexHealth(retriever.version)
    except IndexDamagedError as exc:
        damage = exc
    store = VersionStore(store_root(paths))
    pointer = store.current_pointer()
    for name in reversed(store.versions()):
        if name == pointer:
            continue
        version_dir = store.root / name
        try:
            retriever = load_version(paths, rs, version_dir)
            splits = load_meta(version_dir)["settings"]["index_splits"]
            check_against_store(version_dir, retriever.records, database, splits)
        except (IndexDamagedError, IndexStaleError) as exc:
            log.warning("index version %s cannot stand in either: %s", name, exc)
            continue
        problem = (
            f"the current index version {pointer or '(unnamed)'} is damaged ({damage.path.name}: "
            f"{damage.problem}); serving the older version {name} until it is repaired ({REBUILD_HINT})"
        )
        log.error("%s", problem)
        return retriever, IndexHealth(name, problem)
    raise damage


def remove_damaged_versions(paths: DataPaths, rs: RetrievalSettings) -> list[str]:
    """Delete every version other than the current one whose files are damaged, so that
    none is kept to fall back to; returns their names."""
    store = VersionStore(store_root(paths))
    current = store.current_name()
    removed = []
    for name in store.versions():
        if name == current:
            continue
        try:
            check_version(store.root / name, rs)
        except IndexDamagedError as exc:
            log.warning("deleting the damaged index version %s: %s", name, exc.problem)
            shutil.rmtree(store.root / name, ignore_errors=True)
            removed.append(name)
    return removed
