"""Getting a data directory ready to serve: schema, demo data only into an empty store."""

from __future__ import annotations

from sqlalchemy import func, select

from chatbot.bootstrap import DEMO_DATA, load_demo_data, prepare
from chatbot.ingest.importer import import_paths
from chatbot.store.database import Database
from chatbot.store.migrations import head_revision
from chatbot.store.schema import Conversation, TrainingPair


def _count(settings, model, *where):
    database = Database(settings.resolved_database_url)
    try:
        with database.session() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where))
    finally:
        database.dispose()


def test_prepare_migrates_and_loads_the_demo_once(tiny_settings):
    lines: list[str] = []
    prepare(tiny_settings, demo=True, report=lines.append)
    demo_conversations = sum(1 for line in DEMO_DATA.read_text().splitlines() if line.strip())
    assert _count(tiny_settings, Conversation) == demo_conversations
    assert (
        _count(tiny_settings, TrainingPair) > demo_conversations
    )  # several agent turns per conversation
    assert any(head_revision() in line for line in lines)
    # The shop's own support address survives redaction; customers' addresses do not.
    database = Database(tiny_settings.resolved_database_url)
    with database.session() as session:
        targets = " ".join(session.scalars(select(TrainingPair.target)))
        contexts = " ".join(str(c) for c in session.scalars(select(TrainingPair.context)))
    database.dispose()
    assert "support@northwindgoods.example" in targets
    assert "@example.com" not in contexts and "@example.org" not in contexts

    lines.clear()
    prepare(tiny_settings, demo=True, report=lines.append)
    assert _count(tiny_settings, Conversation) == demo_conversations
    assert any("skipped" in line for line in lines)


def test_demo_is_never_mixed_into_a_real_store(tiny_settings, tmp_path):
    prepare(tiny_settings, demo=False, report=lambda _: None)
    history = tmp_path / "history.jsonl"
    history.write_text(
        '{"id": "c1", "source": "acme", "turns": [{"role": "customer", "text": "Is my invoice ready?"},'
        ' {"role": "agent", "text": "Yes, it is under Billing > Invoices."}]}\n'
    )
    import_paths(tiny_settings.paths, [history], ingest=tiny_settings.ingest)
    load_demo_data(tiny_settings, report=lambda _: None)
    assert _count(tiny_settings, Conversation) == 1
    assert _count(tiny_settings, Conversation, Conversation.source == "northwind-demo") == 0
