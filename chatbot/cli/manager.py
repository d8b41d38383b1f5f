"""The dialogue manager as the entry points serve it (`chatbot serve`, `chat`, `ask`):
`open_manager` opens the store and each part from its own section of the assembled
settings (`chatbot.dialogue.sources`) and hands them to the manager."""

from __future__ import annotations

from chatbot.dialogue.consensus import warm
from chatbot.dialogue.manager import DialogueManager
from chatbot.dialogue.sources import open_retriever_or_explain, ranker_source, reply_model_source
from chatbot.orders.factory import open_connector
from chatbot.settings import Settings
from chatbot.store.database import Database, require_schema
from chatbot.text.prompt import PromptFormat


def open_manager(
    settings: Settings, *, fallback_index: bool = False
) -> tuple[DialogueManager, Database]:
    """(manager, database) for the settings; the caller disposes of the database.
    `fallback_index`: see `open_retriever_or_explain`."""
    database = Database(settings.resolved_database_url)
    try:
        require_schema(database.engine)
        retriever = open_retriever_or_explain(
            settings.paths, settings.retrieval, database, fallback=fallback_index
        )
        if settings.dialogue.consensus and retriever.consensus is not None:
            warm()
        source = (
            reply_model_source(settings.paths, database) if settings.dialogue.generate else None
        )
    except BaseException:
        database.dispose()
        raise
    prompt = PromptFormat.from_settings(settings.prompt)
    ranker = ranker_source(settings.ranker, database)
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
