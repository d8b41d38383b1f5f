"""Where the dialogue manager's parts come from: the retriever over the current index
version that follows later ones, the promoted reply model (`ReplyModelProvider`, which
falls back to the base model) and the promoted ranker, each from its own settings
section and `DataPaths`; `BaseReplyModelSource` serves a fixed model directory
(benchmarks, tests). Putting them together with the assembled settings is the entry
points' job (`chatbot.cli.manager.open_manager`); the manager takes them as given."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from chatbot.config import DataPaths
from chatbot.errors import ConfigError
from chatbot.following import DEFAULT_CHECK_INTERVAL
from chatbot.ranking.settings import RankerSettings
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.store.database import Database

if TYPE_CHECKING:
    from chatbot.dialogue.model_wait import LoadedModel
    from chatbot.models.versions import ReplyModelProvider
    from chatbot.ranking.model import RankerSource
    from chatbot.retrieval.fallback import IndexHealth
    from chatbot.retrieval.following import FollowingRetriever
    from chatbot.retrieval.retriever import PairRetriever

NO_INDEX_HINT = (
    "there is no index to answer from yet; import support history and build the index first: "
    "chatbot import data/demo_shop.jsonl, then chatbot index"
)


class BaseReplyModelSource:
    """The configured base reply model, loaded on first use and kept."""

    def __init__(self, paths: DataPaths):
        self.paths = paths
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedModel:
        with self._lock:
            if self._loaded is None:
                from chatbot.models.reply_model import (
                    load_reply_model,
                    repair_hint,
                    reply_model_path,
                )

                path = reply_model_path(self.paths)
                model, tokenizer = load_reply_model(path, repair=repair_hint(self.paths, path))
                self._loaded = (model, tokenizer, f"base:{path.name}")
            return self._loaded


def reply_model_source(paths: DataPaths, database: Database) -> ReplyModelProvider:
    """The promoted reply model, reloaded on promotion; the base model until one exists."""
    from functools import partial

    from chatbot.models.reply_model import repair_hint, reply_model_path
    from chatbot.models.versions import ReplyModelProvider

    return ReplyModelProvider(
        database,
        partial(reply_model_path, paths),
        base_repair=partial(repair_hint, paths),
    )


def following_retriever(
    paths: DataPaths,
    retrieval: RetrievalSettings,
    retriever: PairRetriever,
    *,
    check_interval: float = DEFAULT_CHECK_INTERVAL,
    health: IndexHealth | None = None,
) -> FollowingRetriever:
    """`retriever` (already open), followed by later index versions, each loaded with
    the same embedder."""
    from chatbot.retrieval.following import FollowingRetriever
    from chatbot.retrieval.index_files import store_root
    from chatbot.retrieval.retriever import load_version

    model = retriever.model
    return FollowingRetriever(
        store_root(paths),
        retriever,
        lambda version_dir: load_version(paths, retrieval, version_dir, model=model),
        check_interval=check_interval,
        health=health,
    )


def open_retriever_or_explain(
    paths: DataPaths, retrieval: RetrievalSettings, database: Database, *, fallback: bool = False
) -> FollowingRetriever:
    """The retriever over the current index version, following later versions (a
    rebuild from the admin console is served without a restart). With `fallback` (the
    web app: degrade, don't die), a damaged current version is stood in for by the
    newest intact one, its `health` saying so; without it (one-shot commands), the
    damage is the error."""
    from chatbot.retrieval.fallback import IndexHealth, open_intact_retriever
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.retrieval.versions import IndexNotFoundError

    try:
        if fallback:
            retriever, health = open_intact_retriever(paths, retrieval, database)
        else:
            retriever = open_retriever(paths, retrieval, database)
            health = IndexHealth(retriever.version)
        return following_retriever(paths, retrieval, retriever, health=health)
    except IndexNotFoundError:
        raise ConfigError(NO_INDEX_HINT) from None


def ranker_source(section: RankerSettings, database: Database) -> RankerSource | None:
    """The promoted learned ranker, reloaded on promotion (None while `ranker.enabled` is off);
    until one is trained and kept, candidates are scored by the hand-set critique."""
    if not section.enabled:
        return None
    from chatbot.ranking.model import RankerSource

    return RankerSource(database, section)
