"""Importing into a real store (SQLite and PostgreSQL): each format, bad records,
--strict, idempotency, redaction before storage, live conversations left alone."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from chatbot.ingest.importer import import_paths
from chatbot.ingest.settings import IngestSettings
from chatbot.settings import load_settings
from chatbot.store.conversations import add_message, start_conversation, table_counts
from chatbot.store.schema import Conversation, Import, Message, TrainingPair


def record(ident, *turns, source="shop", meta=None):
    data = {"id": ident, "source": source, "turns": [{"role": r, "text": t} for r, t in turns]}
    if meta is not None:
        data["meta"] = meta
    return json.dumps(data)


GOOD = [
    record(
        "c1",
        ("customer", "Where is my order? Mail me at jane@example.com"),
        ("agent", "It left the warehouse today."),
    ),
    record(
        "c2",
        ("customer", "Can I return a kettle?"),
        ("agent", "Yes, within 30 days, free of charge."),
        ("customer", "and how?"),
        ("agent", "Under Orders > Return items."),
    ),
    record(
        "c3",
        ("customer", "hello"),
        ("customer", "my card 4111 1111 1111 1111 was charged twice"),
        ("agent", "Sorry! The second one is a pending authorisation."),
        ("agent", "It disappears within 5 days."),
        meta={"quality": {"A": 1.0, "S": 0.0, "E": 0.5}},
    ),
]


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def snapshot(database):
    with database.session() as session:
        return table_counts(session=session)


def test_transcripts_import_with_merge_redaction_pairs_and_splits(migrated_database, tmp_path):
    path = write(tmp_path / "t.jsonl", GOOD)
    summary = import_paths(migrated_database, [path])
    assert summary.ok and summary.files[0].status == "imported"
    assert (summary.conversations, summary.messages, summary.pairs) == (3, 8, 4)
    assert summary.redactions == {"email": 1, "card": 1}
    with migrated_database.session() as session:
        conversations = {c.external_id: c for c in session.scalars(select(Conversation))}
        c3 = conversations["c3"]
        texts = [m.text for m in c3.messages]
        assert texts == [
            "hello\nmy card <CARD> was charged twice",
            "Sorry! The second one is a pending authorisation.\nIt disappears within 5 days.",
        ]
        assert c3.messages[1].meta == {"merged": 2} and all(
            m.original_text is None for m in c3.messages
        )
        pairs = list(session.scalars(select(TrainingPair).order_by(TrainingPair.id)))
        assert all(
            p.split == conversations_split
            for p, conversations_split in (
                (p, session.get(Conversation, p.conversation_id).split) for p in pairs
            )
        )
        assert all(
            c.split in ("train", "val", "test") and c.channel == "import"
            for c in conversations.values()
        )
        by_conv = {
            (session.get(Conversation, p.conversation_id).external_id, p.turn_index): p
            for p in pairs
        }
        assert set(by_conv) == {("c1", 1), ("c2", 1), ("c2", 3), ("c3", 1)}
        follow_up = by_conv[("c2", 3)]
        assert [c["role"] for c in follow_up.context] == ["customer", "agent", "customer"]
        assert follow_up.source == "shop" and follow_up.import_id == summary.files[0].import_id
        assert by_conv[("c3", 1)].quality == pytest.approx(0.5)
        assert by_conv[("c3", 1)].labels == {"quality": {"A": 1.0, "S": 0.0, "E": 0.5}}
        assert "jane@example.com" not in json.dumps(by_conv[("c1", 1)].context)
        imp = session.get(Import, summary.files[0].import_id)
        assert imp.status == "done" and imp.format == "jsonl" and imp.stats["conversations"] == 3


def test_second_import_adds_nothing_and_overlap_adds_only_new(migrated_database, tmp_path):
    path = write(tmp_path / "t.jsonl", GOOD)
    import_paths(migrated_database, [path])
    before = snapshot(migrated_database)
    again = import_paths(migrated_database, [path])
    assert again.files[0].status == "already_imported" and again.conversations == 0
    assert snapshot(migrated_database) == before
    # Same conversations in different bytes (re-encoded, reordered) plus one new one.
    other = tmp_path / "other.jsonl"
    other.write_text(
        "\n".join(
            [
                GOOD[2],
                GOOD[0],
                record("c4", ("customer", "Do you ship to Norway?"), ("agent", "Not yet, sorry.")),
            ]
        ),
        encoding="utf-16",
    )
    summary = import_paths(migrated_database, [other])
    assert summary.files[0].skipped["already_stored"] == 2
    assert (summary.conversations, summary.messages, summary.pairs) == (1, 2, 1)
    after = snapshot(migrated_database)
    assert (
        after["conversations"] == before["conversations"] + 1
        and after["imports"] == before["imports"] + 1
    )


def test_bad_records_are_listed_and_good_ones_imported(migrated_database, tmp_path):
    lines = [
        GOOD[0],
        GOOD[1][: len(GOOD[1]) // 2],  # truncated JSON
        json.dumps({"id": "m1", "source": "shop"}),  # missing turns
        json.dumps({"source": "shop", "turns": []}),  # missing id
        record("r1", ("user", "hi"), ("assistant", "hello")),  # wrong roles
        record("big", ("customer", "x" * 5 * 1024 * 1024), ("agent", "ok")),  # 5 MB message
        json.dumps({"id": "t1", "turns": [{"role": "customer"}]}),  # turn without text
        "[1, 2]",
        GOOD[2],
    ]
    path = write(tmp_path / "mixed.jsonl", lines)
    summary = import_paths(migrated_database, [path])
    item = summary.files[0]
    assert item.status == "imported" and summary.ok
    assert item.conversations == 2
    found = {(p.line, p.kind) for p in item.problems}
    assert found == {
        (2, "invalid_json"),
        (3, "missing_field"),
        (4, "missing_field"),
        (5, "bad_role"),
        (6, "too_long"),
        (7, "missing_field"),
        (8, "not_an_object"),
    }
    reasons = {p.line: str(p) for p in item.problems}
    assert reasons[5].startswith(f"{path}:5: ") and "'user'" in reasons[5]
    assert "5,242,880 characters" in reasons[6] and "ingest.max_message_chars" in reasons[6]
    assert "missing field 'turns'" in reasons[3]
    assert item.skipped == {
        "invalid_json": 1,
        "missing_field": 3,
        "bad_role": 1,
        "too_long": 1,
        "not_an_object": 1,
    }


def test_strict_imports_nothing_from_a_file_with_a_bad_record(migrated_database, tmp_path):
    import_paths(migrated_database, [write(tmp_path / "first.jsonl", GOOD[:1])])
    before = snapshot(migrated_database)
    bad = write(tmp_path / "bad.jsonl", GOOD[1:] + [record("r1", ("bot", "hi"))])
    summary = import_paths(
        migrated_database, [bad], strict=True, ingest=IngestSettings(batch_size=1)
    )
    assert not summary.ok and summary.files[0].status == "rejected"
    assert summary.files[0].problems[0].line == 3 and summary.conversations == 0
    assert snapshot(migrated_database) == before
    lenient = import_paths(migrated_database, [bad])
    assert lenient.conversations == 2


def test_max_message_length_is_configurable(migrated_database, tmp_path):
    path = write(tmp_path / "t.jsonl", GOOD)
    summary = import_paths(migrated_database, [path], ingest=IngestSettings(max_message_chars=40))
    assert summary.conversations == 1  # only c2 has no message over 40 characters
    assert {p.kind for p in summary.problems} == {"too_long"}


def test_file_level_errors_leave_the_store_unchanged(migrated_database, tmp_path):
    import_paths(migrated_database, [write(tmp_path / "first.jsonl", GOOD[:1])])
    before = snapshot(migrated_database)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(
        ("\n".join(GOOD[1:]) + "\n").encode()
        + json.dumps(
            {"id": "x", "turns": [{"role": "customer", "text": "crème brûlée?"}]},
            ensure_ascii=False,
        ).encode("latin-1")
    )
    binary = tmp_path / "x.jsonl"
    binary.write_bytes(b"\x00\x01\x02\xff" * 500)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    summary = import_paths(
        migrated_database,
        [latin, binary, empty, tmp_path / "missing.jsonl"],
        ingest=IngestSettings(batch_size=1),
    )
    assert [f.status for f in summary.files] == ["failed"] * 4
    assert f"{latin}:3:" in summary.files[0].error and "0xe8" in summary.files[0].error
    assert "binary" in summary.files[1].error and "empty" in summary.files[2].error
    assert "not found" in summary.files[3].error
    assert snapshot(migrated_database) == before


def test_live_conversations_are_never_touched(migrated_database, tmp_path):
    with migrated_database.session() as session:
        live = start_conversation(session=session)
        add_message(
            session=session,
            conversation_id=live.id,
            role="customer",
            text="Where is my order? Mail me at jane@example.com",
        )
        add_message(
            session=session,
            conversation_id=live.id,
            role="agent",
            text="It left the warehouse today.",
        )
        live_id = live.id
    import_paths(migrated_database, [write(tmp_path / "t.jsonl", GOOD)])
    with migrated_database.session() as session:
        live = session.get(Conversation, live_id)
        assert (
            live.channel == "live"
            and live.split is None
            and live.import_id is None
            and live.content_hash is None
        )
        assert [m.text for m in live.messages] == [
            "Where is my order? Mail me at jane@example.com",
            "It left the warehouse today.",
        ]
        assert (
            session.scalar(select(TrainingPair).where(TrainingPair.conversation_id == live_id))
            is None
        )


def test_original_text_only_when_asked(migrated_database, tmp_path):
    summary = import_paths(
        migrated_database,
        [write(tmp_path / "t.jsonl", GOOD[:1])],
        ingest=IngestSettings(keep_original_text=True),
    )
    with migrated_database.session() as session:
        first = session.scalars(select(Message).order_by(Message.id)).first()
        assert first.text.endswith("<EMAIL>") and first.original_text.endswith("jane@example.com")
        pair = session.scalars(select(TrainingPair)).one()
        assert "jane@example.com" not in json.dumps(pair.context)
    assert summary.redactions == {"email": 1}


def test_csv_with_column_map(migrated_database, tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text(
        'label;text;reply\nrefund;"How long do refunds take?";"5-7 working days, to the original payment method."\n'
        'ship;"Do you ship\nabroad?";"Only within the EU."\n;"";"An answer without a question"\nx;only two\n',
        encoding="utf-8-sig",
    )
    summary = import_paths(
        migrated_database,
        [path],
        column_map={"question": "text", "answer": "reply", "intent": "label"},
    )
    item = summary.files[0]
    assert item.format == "csv" and item.conversations == 2 and item.pairs == 2
    assert [(p.line, p.kind) for p in item.problems] == [(5, "missing_field"), (6, "bad_row")]
    with migrated_database.session() as session:
        pairs = {p.target: p for p in session.scalars(select(TrainingPair))}
        assert pairs["Only within the EU."].context == [
            {"role": "customer", "text": "Do you ship\nabroad?"}
        ]
        assert (
            pairs["Only within the EU."].labels == {"intent": "ship"}
            and pairs["Only within the EU."].source == "csv"
        )


def test_zendesk_intercom_and_chatwoot_exports(migrated_database, tmp_path):
    zendesk = tmp_path / "tickets.json"
    zendesk.write_text(
        json.dumps(
            {
                "tickets": [
                    {
                        "id": 35436,
                        "subject": "Printer on fire",
                        "requester_id": 20978392,
                        "status": "solved",
                        "tags": ["printer"],
                        "comments": [
                            {
                                "author_id": 20978392,
                                "public": True,
                                "body": "My printer is on fire! Call me on +44 7700 900123",
                            },
                            {
                                "author_id": 555,
                                "public": False,
                                "body": "internal: customer sounds upset",
                            },
                            {
                                "author_id": 555,
                                "public": True,
                                "html_body": '<p>Unplug it first.</p><p>Then see <a href="https://help.example.com/fire">this page</a>.</p>',
                            },
                        ],
                    }
                ]
            },
            indent=2,
        )
    )
    intercom = tmp_path / "conversations.jsonl"
    intercom.write_text(
        json.dumps(
            {
                "type": "conversation",
                "id": "1911149811",
                "source": {
                    "body": "<p>Hi, my order hasn&#39;t arrived</p>",
                    "author": {"type": "user", "id": "5bc"},
                },
                "conversation_parts": {
                    "conversation_parts": [
                        {"part_type": "assignment", "body": None, "author": {"type": "bot"}},
                        {
                            "part_type": "note",
                            "body": "<p>check carrier</p>",
                            "author": {"type": "admin"},
                        },
                        {
                            "part_type": "comment",
                            "body": "<p>Sorry! It ships tomorrow.</p>",
                            "author": {"type": "admin"},
                        },
                    ]
                },
            }
        )
        + "\n"
    )
    chatwoot = tmp_path / "chatwoot.json"
    chatwoot.write_text(
        json.dumps(
            {
                "payload": [
                    {
                        "id": 7,
                        "status": "resolved",
                        "messages": [
                            {"content": "Is the shop open on Sunday?", "message_type": 0},
                            {"content": "Conversation was assigned to Ann", "message_type": 2},
                            {"content": "private note", "message_type": 1, "private": True},
                            {"content": "No, Monday to Friday only.", "message_type": 1},
                        ],
                    }
                ]
            }
        )
    )
    summary = import_paths(migrated_database, [zendesk, intercom, chatwoot])
    assert [f.format for f in summary.files] == ["zendesk", "intercom", "chatwoot"]
    assert summary.ok and summary.conversations == 3 and summary.pairs == 3
    with migrated_database.session() as session:
        convs = {c.source: c for c in session.scalars(select(Conversation))}
        z = convs["zendesk"]
        assert (
            z.external_id == "35436"
            and z.meta["subject"] == "Printer on fire"
            and z.meta["internal_notes_left_out"] == 1
        )
        assert [(m.role, m.text) for m in z.messages] == [
            ("customer", "My printer is on fire! Call me on <PHONE>"),
            ("agent", "Unplug it first.\n\nThen see this page (https://help.example.com/fire)."),
        ]
        assert [(m.role, m.text) for m in convs["intercom"].messages] == [
            ("customer", "Hi, my order hasn't arrived"),
            ("agent", "Sorry! It ships tomorrow."),
        ]
        assert [(m.role, m.text) for m in convs["chatwoot"].messages] == [
            ("customer", "Is the shop open on Sunday?"),
            ("agent", "No, Monday to Friday only."),
        ]


def test_import_paths_with_settings_imports_the_demo_data(tmp_path):
    from chatbot.bootstrap import DEMO_DATA
    from chatbot.store.migrations import upgrade

    settings = load_settings(
        home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'demo.db'}"
    )
    upgrade(settings.resolved_database_url)
    summary = import_paths(settings.paths, [DEMO_DATA], ingest=settings.ingest)
    expected = [
        json.loads(line)
        for line in DEMO_DATA.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert summary.ok and summary.conversations == len(expected)
    merged_turns = sum(
        1 + sum(1 for a, b in zip(r["turns"], r["turns"][1:]) if a["role"] != b["role"])
        for r in expected
    )
    assert summary.messages == merged_turns
    assert summary.pairs > 0 and not summary.problems
    assert (
        import_paths(settings.paths, [DEMO_DATA], ingest=settings.ingest).files[0].status
        == "already_imported"
    )
