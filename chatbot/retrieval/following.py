"""A retriever that follows the index's current version: when `chatbot index` (or the
admin console's rebuild) commits a new version, the serving process picks it up on the
next search, without a restart. Failures follow `chatbot.following`'s rule: a version
that cannot be loaded (a file missing or damaged, CURRENT naming a version that is not
there) leaves the old one answering, and is tried again at the next check, so its repair
is picked up too. `health` says which version serves and, while it is not the current
one (a damaged current version at start, `chatbot.retrieval.fallback`), why.

Loading one version is `chatbot.retrieval.retriever`'s job (the `load` given); this
module only says which version is current and swaps it in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.following import DEFAULT_CHECK_INTERVAL, Follower
from chatbot.retrieval.fallback import IndexHealth
from chatbot.retrieval.retriever import PairRetriever
from chatbot.retrieval.types import SearchResult
from chatbot.retrieval.versions import VersionStore

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from chatbot.retrieval.answer_classes import AnswerClasses
    from chatbot.retrieval.types import ConsensusChoice


class FollowingRetriever:
    """Implements `chatbot.retrieval.types.Retriever` over whichever version is current
    in the version store at `root`, starting with `current` (already loaded);
    `load(version_dir)` loads another.

    The version pointer is read at most every `check_interval` seconds (a small file
    read), so a search costs nothing extra in between."""

    def __init__(
        self,
        root: Path,
        current: PairRetriever,
        load: Callable[[Path], PairRetriever],
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        health: IndexHealth | None = None,
    ):
        self.root = root
        self.health = health or IndexHealth(current.version)
        self._follower: Follower[str | None, PairRetriever] = Follower(
            lambda: VersionStore(root).require_current().name,
            lambda name: load(root / str(name)),
            what="index",
            check_interval=check_interval,
            start=(current.version, current),
        )

    @property
    def current(self) -> PairRetriever:
        """The version serving now (no check)."""
        served = self._follower.value
        assert served is not None  # started with one, never unloaded
        return served

    @property
    def check_interval(self) -> float:
        return self._follower.check_interval

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
        swapped = self._follower.refresh(force=force)
        if self.health.degraded and self._follower.up_to_date:  # the current one serves again
            self.health = IndexHealth(self.version)
        return swapped
