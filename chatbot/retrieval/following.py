"""A retriever that follows the index's current version: when `chatbot index` (or the
admin console's rebuild) commits a new version, the serving process picks it up on the
next search, without a restart, and keeps answering from the old one if the new one
cannot be loaded (a file missing or damaged, CURRENT naming a version that is not
there). A version that failed is tried again at the next check, so its repair is
picked up too. `health` says which version serves and, while it is not the current
one (a damaged current version at start, `chatbot.retrieval.fallback`), why.

Loading one version is `chatbot.retrieval.retriever`'s job; this module only notices a
new version and swaps it in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatbot.errors import ChatbotError
from chatbot.retrieval.fallback import IndexHealth
from chatbot.retrieval.index_files import store_root
from chatbot.retrieval.retriever import PairRetriever, load_version
from chatbot.retrieval.types import SearchResult
from chatbot.retrieval.versions import VersionStore

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chatbot.retrieval.answer_classes import AnswerClasses
    from chatbot.retrieval.types import ConsensusChoice
    from chatbot.settings import Settings

log = logging.getLogger(__name__)


class FollowingRetriever:
    """Implements `chatbot.retrieval.types.Retriever` over whichever version is current.

    The version pointer is read at most every `check_interval` seconds (a small file
    read), so a search costs nothing extra in between."""

    def __init__(
        self,
        settings: Settings,
        current: PairRetriever,
        *,
        check_interval: float = 5.0,
        health: IndexHealth | None = None,
    ):
        self.settings = settings
        self.current = current
        self.health = health or IndexHealth(current.version)
        self.check_interval = check_interval
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    @property
    def version(self) -> str | None:
        return self.current.version

    @property
    def model(self) -> SentenceTransformer:
        return self.current.model

    @property
    def consensus(self) -> ConsensusChoice | None:
        """The current version's consensus choice (`PairRetriever.consensus`)."""
        self.refresh()
        return self.current.consensus

    @property
    def answer_classes(self) -> AnswerClasses | None:
        """The current version's answer classes (`PairRetriever.answer_classes`)."""
        return self.current.answer_classes

    def search(
        self,
        query: str,
        *,
        history: Sequence[str] = (),
        k: int = 5,
        exclude_pair_ids: Sequence[int] = (),
    ) -> SearchResult:
        self.refresh()
        return self.current.search(query, history=history, k=k, exclude_pair_ids=exclude_pair_ids)

    def refresh(self, *, force: bool = False) -> bool:
        """Swap in the current version if it changed; True when it did."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.check_interval:
            return False
        with self._lock:
            self._checked_at = now
            store = VersionStore(store_root(self.settings.paths))
            name = store.current_name()  # None also when CURRENT names a version that is not there
            if name is None or name == self.current.version:
                if name is not None and self.health.degraded:  # the current one is served again
                    self.health = IndexHealth(name)
                return False
            try:
                loaded = load_version(
                    self.settings.paths,
                    self.settings.retrieval,
                    store.root / name,
                    model=self.current.model,
                )
            except Exception as exc:
                log.warning(
                    "index version %s cannot be loaded; still serving %s: %s",
                    name,
                    self.current.version,
                    exc,
                    exc_info=not isinstance(exc, ChatbotError),
                )
                return False
            log.info("serving index version %s (was %s)", loaded.version, self.current.version)
            self.current = loaded
            self.health = IndexHealth(loaded.version)
            return True
