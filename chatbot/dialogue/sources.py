"""Where the dialogue manager's parts come from at an entry point (CLI, UI, benchmark):
`open_manager` opens the store, the retriever, the promoted reply model (training's
`ReplyModelProvider`, which falls back to the base model) and the prompt format from
the settings; `BaseReplyModelSource` serves a fixed model directory (benchmarks,
tests). The manager itself takes them as given."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from chatbot.config import Settings
from chatbot.errors import ConfigError
from chatbot.following import DEFAULT_CHECK_INTERVAL
from chatbot.store.database import Database

if TYPE_CHECKING:
    from chatbot.dialogue.manager import DialogueManager
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

    def __init__(self, settings: Settings):
        self.settings = settings
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

                path = reply_model_path(self.settings)
                model, tokenizer = load_reply_model(path, repair=repair_hint(self.settings, path))
                self._loaded = (model, tokenizer, f"base:{path.name}")
            return self._loaded


def reply_model_source(settings: Settings, database: Database) -> ReplyModelProvider:
    """The promoted reply model, reloaded on promotion; the base model until one exists."""
    from functools import partial

    from chatbot.models.reply_model import repair_hint, reply_model_path
    from chatbot.models.versions import ReplyModelProvider

    return ReplyModelProvider(
        database,
        partial(reply_model_path, settings),
        base_repair=partial(repair_hint, settings),
    )


def following_retriever(
    settings: Settings,
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
        store_root(settings),
        retriever,
        lambda version_dir: load_version(settings, version_dir, model=model),
        check_interval=check_interval,
        health=health,
    )


def open_retriever_or_explain(
    settings: Settings, database: Database, *, fallback: bool = False
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
            retriever, health = open_intact_retriever(settings, database)
        else:
            retriever = open_retriever(settings, database)
            health = IndexHealth(retriever.version)
        return following_retriever(settings, retriever, health=health)
    except IndexNotFoundError:
        raise ConfigError(NO_INDEX_HINT) from None


def open_manager(
    settings: Settings, *, fallback_index: bool = False
) -> tuple[DialogueManager, Database]:
    """(manager, database) for the settings; the caller disposes of the database.
    `fallback_index`: see `open_retriever_or_explain`."""
    from chatbot.dialogue.manager import DialogueManager
    from chatbot.store.database import require_schema
    from chatbot.training.prompt import PromptFormat

    database = Database(settings.resolved_database_url)
    try:
        require_schema(database.engine)
        retriever = open_retriever_or_explain(settings, database, fallback=fallback_index)
        if settings.dialogue.consensus and retriever.consensus is not None:
            from chatbot.ranking.consensus import warm

            warm()
        source = reply_model_source(settings, database) if settings.dialogue.generate else None
    except BaseException:
        database.dispose()
        raise
    from chatbot.orders.factory import open_connector

    prompt = PromptFormat.from_settings(settings.prompt)
    ranker = ranker_source(settings, database)
    return DialogueManager(
        settings.dialogue,
        database,
        retriever,
        source,
        prompt,
        ingest=settings.ingest,
        ranker=ranker,
        orders=open_connector(settings.orders, database),
        order_number_pattern=settings.orders.number_pattern,
    ), database


def ranker_source(settings: Settings, database: Database) -> RankerSource | None:
    """The promoted learned ranker, reloaded on promotion (None while `ranker.enabled` is off);
    until one is trained and kept, candidates are scored by the hand-set critique."""
    if not settings.ranker.enabled:
        return None
    from chatbot.ranking.model import RankerSource

    return RankerSource(database, settings.ranker)
