"""Getting a data directory ready to serve: directories, schema, models, demo data.

Each step is idempotent and fast when already done, so `chatbot serve` can run it on
every start. Serving itself is `chatbot.app`'s job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.config import ensure_home
from chatbot.settings import Settings

if TYPE_CHECKING:
    from chatbot.store.database import Database

log = logging.getLogger(__name__)

DEMO_DATA = Path(__file__).resolve().parent.parent / "data" / "demo_shop.jsonl"
DEMO_SOURCE = "northwind-demo"  # the `source` of every demo conversation
# The demo shop's orders, for the `sql` order connector (docs/orders.md).
DEMO_ORDERS = DEMO_DATA.with_name("demo_orders.jsonl")
# The demo shop's own support address is part of its answers, not customer PII.
DEMO_SUPPORT_DOMAIN = "northwindgoods.example"


def prepare(settings: Settings, *, demo: bool, report: Callable[[str], None] = log.info) -> None:
    from chatbot.models.reply_model import prepare_reply_model
    from chatbot.store.migrations import upgrade

    ensure_home(settings.paths)
    before, after = upgrade(settings.resolved_database_url)
    report(
        f"database at revision {after}"
        + ("" if before == after else f" (migrated from {before or 'empty'})")
    )
    if settings.reply_model_path is None:
        result = prepare_reply_model(settings.paths)
        report(f"reply model {result.action}: {result.path} ({result.seconds:.1f}s)")
    else:
        report(f"reply model: using the configured {settings.reply_model_path}")
    if demo:
        load_demo_data(settings, report=report)
    index_pairs(settings, report=report)


def index_pairs(settings: Settings, *, report: Callable[[str], None] = log.info) -> None:
    """Bring the retrieval index up to date with the stored pairs (fast when it is)."""
    from sqlalchemy import func, select

    from chatbot.indexing.builder import update_index
    from chatbot.retrieval.versions import IndexDamagedError
    from chatbot.store.database import Database
    from chatbot.store.schema import TrainingPair

    database = Database(settings.resolved_database_url)
    try:
        with database.session() as session:
            if not session.scalar(select(func.count()).select_from(TrainingPair)):
                report(
                    "index: no training pairs yet; import transcripts with `chatbot import`, then `chatbot index`"
                )
                return
        try:
            result = update_index(settings.paths, settings.retrieval, settings.dialogue, database)
        except IndexDamagedError as exc:
            # Degrade, don't die: the web app stands in the newest intact version
            # (chatbot.retrieval.fallback) and says so; the repair is the admin's call.
            report(f"index: {exc} (serving the newest intact version meanwhile)")
            return
        report(
            f"index {result.version}: {result.action} ({result.reason}), {result.pair_count} pairs"
        )
    finally:
        database.dispose()


def load_demo_data(settings: Settings, *, report: Callable[[str], None] = log.info) -> None:
    """Import the bundled demo shop, but only into a store that holds no imported
    history yet: a company's real store is never mixed with the demo. The demo's orders
    (for the `sql` order connector) go in the same way: only into an empty `orders`
    table of a store that holds no history but the demo's."""
    from sqlalchemy import func, select

    from chatbot.ingest.importer import import_paths
    from chatbot.store.database import Database
    from chatbot.store.schema import Conversation

    database = Database(settings.resolved_database_url)
    try:
        with database.session() as session:
            imported = session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.channel == "import")
            )
            foreign = session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.channel == "import", Conversation.source != DEMO_SOURCE)
            )
        if imported:
            report(f"demo data: skipped, the store already holds {imported} imported conversations")
        else:
            allow = [*settings.ingest.redact_allowlist, DEMO_SUPPORT_DOMAIN]
            summary = import_paths(
                database,
                [DEMO_DATA],
                ingest=settings.ingest.model_copy(update={"redact_allowlist": allow}),
            )
            report(
                f"demo data: imported {summary.conversations} conversations, {summary.pairs} training pairs"
            )
        load_demo_orders(database, foreign_history=bool(foreign), report=report)
    finally:
        database.dispose()


def load_demo_orders(
    database: Database, *, foreign_history: bool = False, report: Callable[[str], None] = log.info
) -> int:
    """Load the demo shop's orders into an empty `orders` table; returns how many were
    loaded (0 when the table already holds orders or the store holds a company's own
    history: `foreign_history`)."""
    from sqlalchemy.exc import IntegrityError

    from chatbot.orders.importer import import_orders_file
    from chatbot.orders.repository import count_orders

    if foreign_history:
        report("demo orders: skipped, the store holds a company's own history")
        return 0
    with database.session() as session:
        existing = count_orders(session=session)
    if existing:
        report(f"demo orders: skipped, the orders table already holds {existing} orders")
        return 0
    try:
        result = import_orders_file(database, DEMO_ORDERS)
    except IntegrityError:  # another worker starting at the same time loaded them first
        report("demo orders: skipped, loaded by another process")
        return 0
    report(f"demo orders: loaded {result.added} orders into the orders table")
    return result.added
