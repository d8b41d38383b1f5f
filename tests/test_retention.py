"""Retention on SQLite and PostgreSQL: live conversations with no activity for N days
are deleted or anonymised with their messages, reply records, feedback and agents'
actions, in batches; recent ones and imported history stay; a dry run changes nothing;
`chatbot retention run` drives it from the settings or its flags."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from chatbot.cli import main
from chatbot.errors import InputError
from chatbot.retention import REMOVED, apply_retention
from chatbot.store.conversations import add_message
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Base, Conversation, Message, TrainingPair, utcnow
from chatbot.store.support_schema import AgentAction, Feedback, PrivateAnswer
from chatbot.support import sharing


def dump(database) -> str:
    """Every row of every table, as one string (to look for text that must be gone)."""
    with database.engine.connect() as connection:
        return "\n".join(
            repr(connection.execute(select(t)).all()) for t in Base.metadata.sorted_tables
        )


def seed(
    database,
    name: str,
    *,
    age_days: float,
    channel: str = "live",
    message_age_days: float | None = None,
) -> int:
    """A conversation with a customer message, a bot reply and its record, a thumbs
    down with a comment, an agent's edit and the pair it made, and an agent's answer
    held back for personal data; every text holds `name`."""
    with database.session() as session:
        conversation = Conversation(
            source="widget",
            channel=channel,
            meta={"note": f"{name} meta"},
            access_token_hash=f"{name:0<64}"[:64] if channel == "live" else None,
            external_id=f"{name}-ext",
        )
        session.add(conversation)
        session.flush()
        cid = conversation.id
        if channel == "live":
            asked = add_message(
                session=session, conversation_id=cid, role="customer", text=f"{name} asks"
            )
            answered = add_message(
                session=session, conversation_id=cid, role="bot", text=f"{name} bot answer"
            )
        else:
            asked = Message(conversation_id=cid, turn_index=0, role="customer", text=f"{name} asks")
            answered = Message(
                conversation_id=cid, turn_index=1, role="agent", text=f"{name} agent answer"
            )
            session.add_all([asked, answered])
            session.flush()
        reply = DialogueReply(
            conversation_id=cid,
            message_id=asked.id,
            reply_message_id=answered.id,
            decision="answer",
            reason="confident",
            text=f"{name} bot answer",
            shown_text=f"{name} bot answer",
            candidates=[{"origin": "draft", "text": f"{name} draft"}],
            trace=[{"round": 0, "text": f"{name} draft"}],
            confidence=0.9,
        )
        session.add(reply)
        session.flush()
        pair = TrainingPair(
            conversation_id=cid,
            turn_index=1,
            source="agent",
            origin="agent_edited",
            split="train",
            context=[{"role": "customer", "text": f"{name} asks"}],
            target=f"{name} edited",
            content_hash=f"pair-{name}",
        )
        session.add(pair)
        session.flush()
        session.add_all(
            [
                Feedback(
                    conversation_id=cid,
                    message_id=answered.id,
                    rating=-1,
                    comment=f"{name} comment",
                ),
                AgentAction(
                    conversation_id=cid,
                    reply_id=reply.id,
                    username="ann",
                    action="edit",
                    text=f"{name} edited",
                    original_text=f"{name} bot answer",
                    pair_id=pair.id,
                ),
                PrivateAnswer(
                    conversation_id=cid,
                    reply_id=reply.id,
                    message_id=answered.id,
                    turn_index=1,
                    origin="agent_edited",
                    agent="ann",
                    context=[{"role": "customer", "text": f"{name} asks"}],
                    text=f"{name} held answer",
                    labels={"original_suggestion": f"{name} bot answer", "decision": "answer"},
                    held_kinds=["iban"],
                ),
            ]
        )
    old = utcnow() - timedelta(days=age_days)
    message_time = utcnow() - timedelta(
        days=age_days if message_age_days is None else message_age_days
    )
    with database.session() as session:
        session.execute(
            update(Conversation.__table__)
            .where(Conversation.__table__.c.id == cid)
            .values(created_at=old, updated_at=old)
        )
        session.execute(
            update(Message).where(Message.conversation_id == cid).values(created_at=message_time)
        )
    return cid


def count(database, model, cid) -> int:
    with database.session() as session:
        return session.scalar(
            select(func.count()).select_from(model).where(model.conversation_id == cid)
        )


def test_delete_removes_old_live_conversations_and_everything_they_hold(migrated_database):
    db = migrated_database
    old = [seed(db, f"oldcustomer{i}", age_days=40) for i in range(5)]
    recent = seed(db, "recentcustomer", age_days=5)
    still_writing = seed(
        db, "stillwriting", age_days=40, message_age_days=1
    )  # an old chat with a new message
    imported = seed(db, "importedhistory", age_days=400, channel="import")
    before = dump(db)

    dry = apply_retention(db, days=30, dry_run=True, batch_size=2)
    assert dump(db) == before  # a dry run changes nothing
    assert (
        dry.conversations,
        dry.messages,
        dry.replies,
        dry.feedback,
        dry.agent_actions,
        dry.pairs_kept,
    ) == (5, 10, 5, 5, 5, 5)

    report = apply_retention(db, days=30, batch_size=2)
    assert sorted(report.conversation_ids) == sorted(old)
    assert (
        report.conversations,
        report.messages,
        report.replies,
        report.feedback,
        report.agent_actions,
    ) == (5, 10, 5, 5, 5)
    assert report.batches == 3 and report.pairs_kept == 5 and report.pairs_deleted == 0
    assert "5 live conversations" in report.describe() and "deleted" in report.describe()
    after = dump(db)
    for cid in old:
        for model in (Message, DialogueReply, Feedback, AgentAction, TrainingPair, PrivateAnswer):
            assert count(db, model, cid) == 0
    with db.session() as session:
        assert session.get(Conversation, old[0]) is None
        # The agents' corrections stay as answers, no longer linked to the deleted chats.
        kept = session.scalars(
            select(TrainingPair).where(TrainingPair.content_hash.like("pair-oldcustomer%"))
        ).all()
        assert len(kept) == 5 and all(p.conversation_id is None for p in kept)
    for cid in (recent, still_writing, imported):
        assert count(db, Message, cid) == 2 and count(db, Feedback, cid) == 1
    for text in (
        "oldcustomer0 comment",
        "oldcustomer0 bot answer",
        "oldcustomer0 meta",
        "oldcustomer0-ext",
    ):
        assert text not in after
    assert apply_retention(db, days=30).conversations == 0  # nothing left to do


def test_delete_pairs_and_imported_history_only_when_asked(migrated_database):
    db = migrated_database
    live = seed(db, "oldlive", age_days=40)
    imported = seed(db, "oldimport", age_days=40, channel="import")
    report = apply_retention(db, days=30, include_imported=True, delete_pairs=True)
    assert sorted(report.conversation_ids) == sorted([live, imported]) and report.pairs_deleted == 2
    text = dump(db)
    assert "oldlive" not in text and "oldimport" not in text


def test_anonymise_blanks_every_text_and_keeps_the_rows(migrated_database):
    db = migrated_database
    old = seed(db, "secretcustomer", age_days=40)
    seed(db, "recentcustomer", age_days=1)
    report = apply_retention(db, days=30, mode="anonymise")
    assert (
        report.conversation_ids == [old]
        and report.messages == 2
        and "anonymised" in report.describe()
    )
    text = dump(db)
    # Every text of the old chat is gone; only the pair an agent made is kept (by default) ...
    for gone in (
        "secretcustomer bot answer",
        "secretcustomer held answer",
        "secretcustomer comment",
        "secretcustomer draft",
        "secretcustomer meta",
        "secretcustomer-ext",
    ):
        assert gone not in text
    assert (
        text.count("secretcustomer asks") == 1 and text.count("secretcustomer edited") == 1
    )  # the pair's
    assert "recentcustomer asks" in text
    with db.session() as session:
        conversation = session.get(Conversation, old)
        assert (
            conversation.state == "closed"
            and conversation.access_token_hash is None
            and conversation.external_id is None
        )
        messages = session.scalars(select(Message).where(Message.conversation_id == old)).all()
        assert [m.text for m in messages] == [REMOVED, REMOVED] and all(
            m.original_text is None for m in messages
        )
        reply = session.scalars(
            select(DialogueReply).where(DialogueReply.conversation_id == old)
        ).one()
        assert (
            reply.text,
            reply.shown_text,
            reply.candidates,
            reply.trace,
            reply.decision,
            reply.confidence,
        ) == ("", "", [], [], "answer", 0.9)
        feedback = session.scalars(select(Feedback).where(Feedback.conversation_id == old)).one()
        assert (feedback.rating, feedback.comment) == (-1, None)
        action = session.scalars(
            select(AgentAction).where(AgentAction.conversation_id == old)
        ).one()
        assert (action.action, action.text, action.original_text) == ("edit", None, None)
        held = session.scalars(
            select(PrivateAnswer).where(PrivateAnswer.conversation_id == old)
        ).one()
        assert (held.text, held.context, held.labels, held.held_kinds) == (
            None,
            [],
            {"decision": "answer"},
            ["iban"],
        )
    # A held answer whose text is gone can no longer be shared.
    with pytest.raises(InputError, match="no text"):
        sharing.approve(db, held.id, "root")
    assert text.count("secretcustomer") == dump(db).count("secretcustomer")
    assert apply_retention(db, days=30, mode="anonymise").conversations == 0  # already anonymised
    # ... and with delete_pairs, those go too.
    seed(db, "othercustomer", age_days=40)
    apply_retention(db, days=30, mode="anonymise", delete_pairs=True)
    assert "othercustomer" not in dump(db)


def test_bad_arguments_are_refused(migrated_database):
    for bad in (dict(days=0), dict(days=30, mode="shred"), dict(days=30, batch_size=0)):
        with pytest.raises(InputError):
            apply_retention(migrated_database, **bad)


def test_the_command(migrated_database, tmp_path):
    db = migrated_database
    old = seed(db, "oldcli", age_days=40)
    runner = CliRunner()
    env = {"CHATBOT_HOME": str(tmp_path / "home"), "CHATBOT_DATABASE_URL": db.url}
    result = runner.invoke(main, ["retention", "run"], env=env)
    assert (
        result.exit_code == 1
        and "--days" in result.output
        and "CHATBOT_RETENTION__DAYS" in result.output
    )

    result = runner.invoke(
        main, ["retention", "run", "--days", "30", "--dry-run", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert (
        payload["conversations"] == 1
        and payload["dry_run"] is True
        and count(db, Message, old) == 2
    )

    result = runner.invoke(
        main, ["retention", "run", "--anonymise"], env={**env, "CHATBOT_RETENTION__DAYS": "30"}
    )
    assert result.exit_code == 0, result.output
    assert "1 live conversations" in result.output and "anonymised" in result.output
    assert "oldcli bot answer" not in dump(db)

    result = runner.invoke(main, ["retention", "run", "--days", "30", "--delete"], env=env)
    assert (
        result.exit_code == 0
        and "1 live conversations" in result.output
        and "deleted" in result.output
    )
    with db.session() as session:
        assert session.get(Conversation, old) is None
