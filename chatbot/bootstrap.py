"""Getting a data directory ready to serve: directories, schema, models, demo data.

Each step is idempotent and fast when already done, so `chatbot serve` can run it on
every start. Serving itself (the UI) is `ui.app`'s job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from chatbot.config import Settings, ensure_home

log = logging.getLogger(__name__)

DEMO_DATA = Path(__file__).resolve().parent.parent / "data" / "demo_shop.jsonl"


def prepare(settings: Settings, *, demo: bool, report: Callable[[str], None] = log.info) -> None:
    from chatbot.models.reply_model import prepare_reply_model
    from chatbot.store.migrations import upgrade

    ensure_home(settings)
    before, after = upgrade(settings.resolved_database_url)
    report(f"database at revision {after}" + ("" if before == after else f" (migrated from {before or 'empty'})"))
    result = prepare_reply_model(settings)
    report(f"reply model {result.action}: {result.path} ({result.seconds:.1f}s)")
