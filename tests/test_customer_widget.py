"""The customer side: a conversation belongs to whoever holds its random token (access
rules on SQLite and PostgreSQL), and the widget's handlers over the real dialogue manager
(tiny models, real index): replies stream, the chat is rebuilt from the store after a
reload, bad input is refused with the text kept, a failing model or store never loses
the message, an agent's message arrives by polling, ratings are stored per reply, and
everything a customer or a model wrote is shown as escaped text. The Blocks builds and
serves its page."""

from __future__ import annotations

import html
import re
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from chatbot.dialogue.manager import MAX_MESSAGE_CHARS
from chatbot.errors import AccessDenied, InputError, StoreError
from chatbot.store.conversations import add_message, conversation_messages
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation
from chatbot.store.support_schema import Feedback, User
from chatbot.support import customer, review
from chatbot.support.queue import REASON_GROUPS, conversation_detail, load_queue
from chatbot.ui import widget, widget_chat
from chatbot.web.services import Services
from tests.test_dialogue_support import (
    SHOP,
    FailingReplySource,
    build_retriever,
    make_manager,
    seed_shop,
)

# The key the tests' conversation tokens are issued with (Services get the same one).
KEY = customer.token_key("test session secret, not used anywhere else")

REPO = Path(__file__).resolve().parent.parent
PAYLOAD = '<img src=x onerror=alert(1)> <script>alert("x")</script> & "quotes"'
RESET_Q = SHOP[3][0]


# -- access rules (both database kinds) --------------------------------------------------


def _messages(database, conversation_id):
    with database.session() as session:
        return [
            (m.role, m.text)
            for m in conversation_messages(session=session, conversation_id=conversation_id)
        ]


def _add(database, conversation_id, role, text):
    with database.session() as session:
        return add_message(
            session=session, conversation_id=conversation_id, role=role, text=text
        ).id


def test_tokens_are_random_and_only_their_hash_is_stored(migrated_database):
    tokens = {customer.new_token(KEY) for _ in range(50)}
    assert len(tokens) == 50 and all(customer.is_well_formed(t) for t in tokens)
    token = tokens.pop()
    conversation_id = customer.open_conversation(migrated_database, token, KEY)
    assert (
        customer.open_conversation(migrated_database, token, KEY) == conversation_id
    )  # the same one again
    with migrated_database.session() as session:
        conversation = session.get(Conversation, conversation_id)
        assert (conversation.channel, conversation.source, conversation.state) == (
            "live",
            "widget",
            "open",
        )
        assert conversation.access_token_hash == customer.token_hash(token) != token
        assert re.fullmatch(r"[0-9a-f]{64}", conversation.access_token_hash)
        assert customer.conversation_of(session, token).id == conversation_id


@pytest.mark.parametrize(
    "token", [None, "", 42, "short", "x" * 42 + "!", "x" * 44, "x" * 42 + " ", "x" * 42 + "\u00e9"]
)
def test_malformed_tokens_are_refused_everywhere(migrated_database, token):
    with pytest.raises(AccessDenied):
        customer.open_conversation(migrated_database, token, KEY)
    with pytest.raises(AccessDenied):
        customer.messages_after(migrated_database, token, -1)
    with pytest.raises(AccessDenied):
        customer.human_in_charge(migrated_database, token)
    with pytest.raises(AccessDenied):
        customer.give_feedback(migrated_database, token, 1, 1)
    with migrated_database.session() as session:
        assert session.scalars(select(Conversation)).all() == []  # nothing was started


def test_an_unknown_token_reads_nothing(migrated_database):
    stranger = customer.new_token(KEY)
    with pytest.raises(AccessDenied):
        customer.messages_after(migrated_database, stranger, -1)
    with migrated_database.session() as session, pytest.raises(AccessDenied):
        customer.conversation_of(session, stranger)
    assert (
        customer.human_in_charge(migrated_database, stranger) is False
    )  # no conversation, no person


def test_one_customer_cannot_read_or_rate_anothers_conversation(migrated_database):
    alice, bob = customer.new_token(KEY), customer.new_token(KEY)
    a = customer.open_conversation(migrated_database, alice, KEY)
    b = customer.open_conversation(migrated_database, bob, KEY)
    assert a != b
    _add(migrated_database, a, "customer", "my order 123 is late")
    alice_reply = _add(migrated_database, a, "bot", "Sorry to hear that, Alice.")
    bob_question = _add(migrated_database, b, "customer", "hello")
    assert [m.text for m in customer.messages_after(migrated_database, bob, -1)] == ["hello"]
    with pytest.raises(AccessDenied):
        customer.give_feedback(migrated_database, bob, alice_reply, -1)
    with pytest.raises(AccessDenied):
        customer.withdraw_feedback(migrated_database, bob, alice_reply)
    with pytest.raises(AccessDenied):  # one's own message is no reply to rate
        customer.give_feedback(migrated_database, bob, bob_question, 1)
    with pytest.raises(AccessDenied):
        customer.give_feedback(migrated_database, alice, 10_000, 1)
    with migrated_database.session() as session:
        assert session.scalars(select(Feedback)).all() == []


def test_the_chat_is_rebuilt_from_the_store_and_polled_by_turn(migrated_database):
    token = customer.new_token(KEY)
    conversation_id = customer.open_conversation(migrated_database, token, KEY)
    for role, text in [
        ("customer", "Where is my parcel?"),
        ("bot", "Passing you to a colleague."),
        ("system", "internal note"),
        ("agent", "It left the depot today."),
    ]:
        _add(migrated_database, conversation_id, role, text)
    shown = customer.messages_after(migrated_database, token, -1)
    assert [(m.turn_index, m.role, m.text) for m in shown] == [
        (0, "customer", "Where is my parcel?"),
        (1, "bot", "Passing you to a colleague."),
        (3, "agent", "It left the depot today."),
    ]  # system notes are not the customer's to see
    assert all(m.sources == [] and m.message_id for m in shown)
    assert [m.text for m in customer.messages_after(migrated_database, token, 1)] == [
        "It left the depot today."
    ]
    assert customer.messages_after(migrated_database, token, 3) == []


def test_feedback_is_one_row_per_reply_and_the_last_click_wins(migrated_database):
    token = customer.new_token(KEY)
    conversation_id = customer.open_conversation(migrated_database, token, KEY)
    _add(migrated_database, conversation_id, "customer", "hi")
    reply = _add(migrated_database, conversation_id, "bot", "Hello! How can I help?")
    agent = _add(migrated_database, conversation_id, "agent", "Hi, Sam here.")
    customer.give_feedback(migrated_database, token, reply, 1)
    customer.give_feedback(migrated_database, token, reply, -1, "  Not what I asked.  ")
    customer.give_feedback(migrated_database, token, agent, 1)

    def rows():
        with migrated_database.session() as session:
            return [
                (f.conversation_id, f.message_id, f.rating, f.comment)
                for f in session.scalars(select(Feedback).order_by(Feedback.message_id))
            ]

    assert rows() == [
        (conversation_id, reply, -1, "Not what I asked."),
        (conversation_id, agent, 1, None),
    ]
    with pytest.raises(InputError, match="2000"):
        customer.give_feedback(migrated_database, token, reply, -1, "x" * 2001)
    for rating in (0, 2, True, "1"):
        with pytest.raises(InputError):
            customer.give_feedback(migrated_database, token, reply, rating)
    assert rows()[0][2:] == (-1, "Not what I asked.")  # refused input changed nothing
    customer.withdraw_feedback(migrated_database, token, agent)
    assert [r[1] for r in rows()] == [reply]


# -- a thumbs-down reaches the agents (both database kinds) --------------------------------


def _answered(database, conversation_id, question, answer, decision="answer", **columns):
    """A customer message, the assistant's message shown in reply and its reply record,
    as the dialogue manager stores them: (reply record id, bot message id)."""
    asked = _add(database, conversation_id, "customer", question)
    shown = _add(database, conversation_id, "bot", answer)
    with database.session() as session:
        row = DialogueReply(
            conversation_id=conversation_id,
            message_id=asked,
            reply_message_id=shown,
            decision=decision,
            reason=columns.pop("reason", "confident: retrieved won"),
            text=answer,
            shown_text=answer,
            sent=decision != "held",
            **columns,
        )
        session.add(row)
        session.flush()
        return row.id, shown


def _status(database, reply_id):
    with database.session() as session:
        return session.get(DialogueReply, reply_id).review_status


def _queue(database, reason=None):
    with database.session() as session:
        view = load_queue(session, reason=reason)
    return [(i.conversation_id, i.reason, i.group, i.pending_replies) for i in view.items]


def _agent(database, name="alice"):
    with database.session() as session:
        user = User(username=name, password_hash="not-a-real-hash", role="agent")
        session.add(user)
        session.flush()
        return SimpleNamespace(id=user.id, username=user.username)


def test_a_thumbs_down_flags_the_reply_for_the_agents_with_the_comment(migrated_database):
    database = migrated_database
    token = customer.new_token(KEY)
    cid = customer.open_conversation(database, token, KEY)
    reply, shown = _answered(database, cid, "Where is my parcel?", "It arrives tomorrow.")
    assert _queue(database) == [] and _status(database, reply) is None

    customer.give_feedback(database, token, shown, -1, "  It never arrived.  ")
    assert _status(database, reply) == "pending"
    assert REASON_GROUPS["customer_said_wrong"] == "customer said wrong"
    assert _queue(database) == [(cid, "customer said wrong", "customer_said_wrong", 1)]
    assert [i[0] for i in _queue(database, "customer_said_wrong")] == [cid]
    assert _queue(database, "flagged") == []
    with database.session() as session:
        assert load_queue(session).counts["customer_said_wrong"] == 1
        detail = conversation_detail(session, cid)
    suggestion = detail.suggestion
    assert suggestion.reply_id == reply and detail.pending_reply_ids == [reply]
    assert suggestion.customer_said_wrong and suggestion.feedback.comment == "It never arrived."
    assert suggestion.cached_pair_id is None  # not from the answer cache
    assert [(m.role, m.feedback.rating if m.feedback else None) for m in detail.messages] == [
        ("customer", None),
        ("bot", -1),
    ]

    # A thumbs-up takes it out of the queue; a thumbs-down without a comment flags it again.
    customer.give_feedback(database, token, shown, 1)
    assert _status(database, reply) is None and _queue(database) == []
    customer.give_feedback(database, token, shown, -1)
    assert _queue(database) == [(cid, "customer said wrong", "customer_said_wrong", 1)]
    with database.session() as session:
        assert conversation_detail(session, cid).suggestion.feedback.comment is None
    # Taken back: out of the queue again.
    customer.withdraw_feedback(database, token, shown)
    assert _status(database, reply) is None and _queue(database) == []


def test_a_flag_taken_back_leaves_what_else_keeps_the_reply_waiting(migrated_database):
    database = migrated_database
    alice = _agent(database)
    token = customer.new_token(KEY)
    cid = customer.open_conversation(database, token, KEY)

    # A flagged answer waits for review anyway: a thumbs-down regroups it, taking it back
    # leaves it flagged.
    flagged, flagged_shown = _answered(
        database,
        cid,
        "Can I pay later?",
        "Yes, within 30 days.",
        "answer_flagged",
        review_status="pending",
    )
    assert _queue(database) == [(cid, "answer_flagged", "flagged", 1)]
    customer.give_feedback(database, token, flagged_shown, -1)
    assert _queue(database) == [(cid, "customer said wrong", "customer_said_wrong", 1)]
    customer.withdraw_feedback(database, token, flagged_shown)
    assert _status(database, flagged) == "pending"
    assert _queue(database) == [(cid, "answer_flagged", "flagged", 1)]
    review.reject(database, flagged, alice, "we have no pay-later option")

    # An agent who reviewed the flagged reply keeps their decision, and approving what the
    # customer already has (here a greeting) sends nothing again.
    act, act_shown = _answered(database, cid, "hello", "Hello! How can I help?", "act")
    customer.give_feedback(database, token, act_shown, -1, "rude")
    assert _queue(database) == [(cid, "customer said wrong", "customer_said_wrong", 1)]
    before = _messages(database, cid)
    review.approve(database, act, alice)
    assert _messages(database, cid) == before and _queue(database) == []
    customer.give_feedback(database, token, act_shown, 1)
    assert _status(database, act) == "approved"
    customer.give_feedback(database, token, act_shown, -1)  # the agent's decision stands
    assert _status(database, act) == "approved" and _queue(database) == []

    # A thumbs on a notice (the hold notice of a held reply) or on a message without a
    # reply record is stored and flags nothing.
    held, hold_notice = _answered(
        database, cid, "Refund?", "An agent will check this.", "held", review_status="pending"
    )
    customer.give_feedback(database, token, hold_notice, -1, "just answer")
    assert _queue(database) == [(cid, "held", "held", 1)]
    customer.withdraw_feedback(database, token, hold_notice)
    assert _status(database, held) == "pending"
    plain = _add(database, cid, "bot", "A note without a reply record.")
    customer.give_feedback(database, token, plain, -1)
    assert _queue(database) == [(cid, "held", "held", 1)]


def test_asking_for_a_person_hands_off_once(migrated_database, tiny_settings):
    manager = make_manager(tiny_settings, migrated_database, retriever=None)
    token = customer.new_token(KEY)
    assert customer.human_in_charge(migrated_database, token) is False
    conversation_id = customer.ask_for_person(
        migrated_database, manager, token, KEY
    )  # starts the conversation
    customer.ask_for_person(migrated_database, manager, token, KEY)  # a second press adds nothing
    assert customer.human_in_charge(migrated_database, token) is True
    with migrated_database.session() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation.state == "handed_off" and conversation.handoff_reason
        assert conversation.handed_off_at is not None and conversation.assigned_user_id is None
    assert _messages(migrated_database, conversation_id) == [
        ("bot", manager.settings.handoff_message)
    ]
    manager.hand_back(conversation_id)
    assert customer.human_in_charge(migrated_database, token) is False


# -- the widget's handlers over the real dialogue manager (SQLite) ---------------------


@pytest.fixture
def database(sqlite_database):
    """The handlers' logic does not depend on the database kind: SQLite is enough here."""
    return sqlite_database


@pytest.fixture
def retriever(tiny_settings, database):
    seed_shop(database)
    return build_retriever(tiny_settings, database)


def services_for(settings, database, retriever, **overrides) -> Services:
    return Services(
        settings,
        database,
        make_manager(settings, database, retriever, **overrides),
        conversation_key=KEY,
    )


@pytest.fixture
def services(tiny_settings, database, retriever):
    return services_for(tiny_settings, database, retriever, cache_enabled=False, max_rounds=1)


OUR_MARKUP = re.compile(r'<details class="sources"><summary>Sources</summary>|</details>|</?div>')


def _reply_text(content):
    """What a person reads in a chat entry, without the folded sources."""
    return html.unescape(content.split('<details class="sources">', 1)[0])


def _shown_texts(view):
    return [(m["role"], _reply_text(m["content"])) for m in view.chat]


def test_a_reply_streams_and_ends_as_stored_with_its_sources(services, database):
    token = customer.new_token(KEY)
    views = list(widget_chat.answer(services, token, f"  {RESET_Q}  "))
    assert all(not v.final for v in views[:-1]) and views[-1].final
    assert views[0].chat[-2:] == [
        {"role": "user", "content": html.escape(RESET_Q)},
        {"role": "assistant", "content": widget_chat.THINKING},
    ]
    last = views[-1]
    conversation_id = customer.open_conversation(database, token, KEY)
    stored = _messages(database, conversation_id)
    assert stored[0] == ("customer", RESET_Q) and stored[-1][0] == "bot"
    sent = stored[-1][1]
    # The text to send arrives word by word before the stored reply replaces it.
    words = re.findall(r"\s*\S+", sent)
    growing = [v.chat[-1]["content"] for v in views[-1 - len(words) : -1]]
    assert growing == [html.escape("".join(words[:n])) for n in range(1, len(words) + 1)]
    assert _shown_texts(last) == [("user", RESET_Q), ("assistant", sent)]
    with database.session() as session:
        reply = session.scalar(
            select(DialogueReply).where(DialogueReply.conversation_id == conversation_id)
        )
    assert reply.decision in ("answer", "answer_flagged") and reply.citations
    folded = last.chat[-1]["content"].split(html.escape(sent), 1)[1]
    assert folded.startswith('<details class="sources"><summary>Sources</summary>')
    assert html.escape(reply.citations[0]["snippet"][:40]) in folded
    assert f"Past conversation {reply.citations[0]['conversation_id']}" in folded
    assert last.message_ids == [None, reply.reply_message_id]  # each entry's stored message
    assert last.last_turn == 1 and last.human is False and last.warning is None


class ScriptedManager:
    """The reply model's draft as it is written, where the tiny model cannot show one (it
    drafts only line breaks): scripted events in the manager's order (the draft's words,
    then a retrieved answer replacing them), with the messages stored as the manager stores
    them. The real manager's events are used everywhere else."""

    def __init__(self, database, final):
        self.database, self.final = database, final

    def respond_stream(self, message, conversation_id):
        from chatbot.dialogue.manager import DialogueEvent

        _add(self.database, conversation_id, "customer", message)
        yield DialogueEvent("stage", "drafting")
        for piece in ["\n", "Your", " parcel", " is <b>on", " its way</b>"]:
            yield DialogueEvent("token", piece)
        yield DialogueEvent("round", "round 1: score 0.40")
        _add(self.database, conversation_id, "bot", self.final)
        yield DialogueEvent("replace", self.final)
        yield DialogueEvent("done")


def test_the_draft_grows_then_the_final_text_replaces_it(tiny_settings, database):
    final = "It left our depot today."
    services = Services(
        tiny_settings, database, ScriptedManager(database, final), conversation_key=KEY
    )
    shown = [
        v.chat[-1]["content"]
        for v in widget_chat.answer(services, customer.new_token(KEY), "Where is my parcel?")
    ]
    assert shown == [
        widget_chat.THINKING,
        "\nYour",
        "\nYour parcel",
        "\nYour parcel is &lt;b&gt;on",
        "\nYour parcel is &lt;b&gt;on its way&lt;/b&gt;",
        "It left our depot today.",
        "It left our depot today.",
    ]  # a draft piece that changes nothing on screen (a first line break) sends no update


def test_a_reload_rebuilds_the_chat_and_a_bad_token_gets_a_new_one(services, database):
    token = customer.new_token(KEY)
    last = list(widget_chat.answer(services, token, RESET_Q))[-1]
    same, view = widget_chat.on_load(database, token, KEY)
    assert same == token and view == last
    for bad in (None, "", "not-a-token", {"token": token}):
        fresh, view = widget_chat.on_load(database, bad, KEY)
        assert customer.is_well_formed(fresh) and fresh != token and view == widget_chat.ChatView()
    unused = customer.new_token(KEY)  # well formed, no conversation yet: kept, empty chat
    assert widget_chat.on_load(database, unused, KEY) == (unused, widget_chat.ChatView())
    with database.session() as session:
        assert (
            len(session.scalars(select(Conversation).where(Conversation.channel == "live")).all())
            == 1
        )
    assert widget_chat.start_over(KEY)[0] != token


@pytest.mark.parametrize(
    "message", ["", "   ", "\u200b\u200b \ufeff", "x" * (MAX_MESSAGE_CHARS + 1)]
)
def test_bad_input_warns_and_keeps_the_text(services, database, message):
    token = customer.new_token(KEY)
    views = list(widget_chat.answer(services, token, message))
    assert len(views) == 1 and views[0].warning and views[0].keep_input and views[0].final
    assert views[0].chat == []
    try:
        assert customer.messages_after(database, token, -1) == []  # nothing was stored
    except AccessDenied:
        pass  # not even a conversation was started


def test_a_message_of_invisible_characters_is_empty_before_any_conversation_starts(
    services, database
):
    token = customer.new_token(KEY)
    views = list(widget_chat.answer(services, token, "\u200b\u200d\u00ad"))
    assert [v.warning for v in views] == [widget_chat.EMPTY]
    with pytest.raises(AccessDenied):  # the token was never used: no conversation
        customer.messages_after(database, token, -1)


def test_a_failing_model_still_stores_the_message(tiny_settings, database, retriever):
    services = services_for(
        tiny_settings, database, retriever, source=FailingReplySource(), cache_enabled=False
    )
    token = customer.new_token(KEY)
    last = list(widget_chat.answer(services, token, "Refund please"))[-1]
    assert last.final and last.warning is None
    conversation_id = customer.open_conversation(database, token, KEY)
    assert _messages(database, conversation_id)[0] == ("customer", "Refund please")
    assert _shown_texts(last)[0] == ("user", "Refund please") and len(last.chat) >= 2


class BrokenRetriever:
    """A search index that fails after the message is stored (a lost index file)."""

    def search(self, *args, **kwargs):
        raise StoreError("the index is unreadable")


def test_a_failure_while_answering_ends_in_a_polite_notice(tiny_settings, database):
    services = services_for(tiny_settings, database, BrokenRetriever())
    token = customer.new_token(KEY)
    last = list(widget_chat.answer(services, token, "Where is my parcel?"))[-1]
    assert last.final
    assert _shown_texts(last) == [
        ("user", "Where is my parcel?"),
        ("assistant", widget_chat.FAILED),
    ]
    assert last.message_ids == [None, None]  # the notice is not a stored reply: nothing to rate
    assert not last.keep_input  # the message is stored: the box is cleared
    assert _messages(database, customer.open_conversation(database, token, KEY)) == [
        ("customer", "Where is my parcel?")
    ]


def test_a_store_that_fails_keeps_the_message_in_the_box(tiny_settings, tmp_path):
    from chatbot.store.database import Database

    unmigrated = Database(f"sqlite:///{tmp_path / 'no-schema.db'}")  # every query fails
    try:
        services = Services(
            tiny_settings,
            unmigrated,
            make_manager(tiny_settings, unmigrated, BrokenRetriever()),
            conversation_key=KEY,
        )
        views = list(widget_chat.answer(services, customer.new_token(KEY), "Where is my parcel?"))
    finally:
        unmigrated.dispose()
    assert len(views) == 1 and views[0].keep_input and views[0].final
    assert views[0].warning == widget_chat.UNAVAILABLE and "sqlite" not in views[0].warning


def test_with_a_person_in_charge_the_assistant_is_silent_and_the_agent_arrives_by_polling(
    services, database
):
    token = customer.new_token(KEY)
    handed = list(widget_chat.answer(services, token, "I want to talk to a real person please"))[-1]
    assert handed.human is True
    assert _shown_texts(handed)[-1] == ("assistant", services.manager.settings.handoff_message)
    assert widget_chat.poll(database, token, handed.last_turn, handed.human) is None  # nothing new

    quiet = list(widget_chat.answer(services, token, "Hello? Anyone there?"))
    assert [t for t in _shown_texts(quiet[-1])][-1] == (
        "user",
        "Hello? Anyone there?",
    )  # no reply shown
    assert widget_chat.poll(database, token, quiet[-1].last_turn, True) is None

    conversation_id = customer.open_conversation(database, token, KEY)
    agent_id = _add(
        database, conversation_id, "agent", "Hi, this is Sam from the team. Let me check."
    )
    polled = widget_chat.poll(database, token, quiet[-1].last_turn, True)
    assert polled is not None and polled.human is True
    assert _shown_texts(polled)[-1] == ("assistant", "Hi, this is Sam from the team. Let me check.")
    assert polled.message_ids[-1] == agent_id
    assert widget_chat.poll(database, token, polled.last_turn, True) is None

    services.manager.hand_back(conversation_id)
    back = widget_chat.poll(database, token, polled.last_turn, True)
    assert back is not None and back.human is False  # the banner goes away


def test_talk_to_a_person_button(services, database):
    token = customer.new_token(KEY)
    view = widget_chat.talk_to_person(services, token)
    assert view.human is True and view.warning is None
    assert _shown_texts(view) == [("assistant", services.manager.settings.handoff_message)]
    assert widget_chat.talk_to_person(
        services, "forged"
    ).warning  # a bad token is refused, not obeyed


def test_html_from_customers_agents_and_models_is_shown_as_text(services, database):
    token = customer.new_token(KEY)
    views = list(widget_chat.answer(services, token, PAYLOAD))
    conversation_id = customer.open_conversation(database, token, KEY)
    _add(database, conversation_id, "agent", "<b>bold?</b> <a href=javascript:alert(1)>click</a>")
    view = widget_chat.current_view(database, token)
    for v in views + [view]:
        for entry in v.chat:
            assert not re.search(
                "[<>]", OUR_MARKUP.sub("", entry["content"])
            )  # no markup but our own
    texts = [text for _, text in _shown_texts(view)]
    assert texts[0] == PAYLOAD  # unescaped by the browser, it reads exactly as typed
    assert texts[-1] == "<b>bold?</b> <a href=javascript:alert(1)>click</a>"
    snippet = customer.Source(1, 2, '<script>alert("s")</script>')
    assert not re.search("[<>]", OUR_MARKUP.sub("", widget_chat.sources_html([snippet])))
    assert widget_chat.as_text("line one\nline two") == "line one\nline two"  # line breaks are kept


def test_thumbs_and_comments_are_stored_for_the_rated_reply(services, database):
    token = customer.new_token(KEY)
    last = list(widget_chat.answer(services, token, RESET_Q))[-1]
    reply_index = last.message_ids.index(next(i for i in last.message_ids if i))
    reply_id = last.message_ids[reply_index]

    def feedback():
        with database.session() as session:
            return [(f.message_id, f.rating, f.comment) for f in session.scalars(select(Feedback))]

    rated = widget_chat.rate(database, token, last.message_ids, reply_index, False)
    assert rated == widget_chat.Rating(reply_id, -1) and feedback() == [(reply_id, -1, None)]
    widget_chat.comment(database, token, rated, "It did not mention the e-mail.")
    assert feedback() == [(reply_id, -1, "It did not mention the e-mail.")]
    with pytest.raises(InputError):
        widget_chat.comment(database, token, rated, "x" * 2001)
    with pytest.raises(InputError):
        widget_chat.comment(database, token, None, "a comment with nothing rated")
    # A second click replaces the first.
    assert widget_chat.rate(
        database, token, last.message_ids, reply_index, True
    ) == widget_chat.Rating(reply_id, 1)
    assert feedback() == [(reply_id, 1, None)]
    assert (
        widget_chat.rate(database, token, last.message_ids, reply_index, "") is None
    )  # taken back
    assert feedback() == []
    for index in (0, 99, None, "1"):  # the customer's own message, or no such entry
        with pytest.raises(AccessDenied):
            widget_chat.rate(database, token, last.message_ids, index, True)
    other = customer.new_token(KEY)
    with pytest.raises(AccessDenied):  # another browser with the same ids is still refused
        widget_chat.rate(database, other, last.message_ids, reply_index, True)


# -- a clarifying question's choices as buttons ----------------------------------------

# The shop in four wordings, so that its answer classes are fitted (they need 20 pairs).
CLARIFY_SHOP = [
    (f"{question} ({extra})", answer, origin, topic)
    for extra in ("please", "thanks", "quick question", "sorry to bother you")
    for question, answer, origin, topic in SHOP
]
# The tiny embedder puts every reply close to every other: a small class distance keeps
# the shop's topics apart. Its class probabilities are noise: no class is sure enough to
# answer (fit_answer_at), every class is likely enough to offer (fit_clarify_at), so every
# question of the shop's kind gets a clarifying question, however few held-out questions
# the model was sure of (fit_min_coverage).
CLARIFYING = {
    "answer_class_distance": 0.03,
    "fit_answer_at": 0.999,
    "fit_clarify_at": 0.0,
    "fit_min_coverage": 0.0,
}
MONEY_BACK = "How do I get my money back?"


def clarifying_services(settings, database) -> Services:
    """The shop indexed with its answer classes, and a manager that asks which topic is
    meant (shared with the `chatbot chat` test in tests/test_cli.py)."""
    from chatbot.indexing.builder import update_index
    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval.retriever import open_retriever

    settings = settings.model_copy(
        update={"dialogue": settings.dialogue.model_copy(update=CLARIFYING)}
    )
    seed_shop(database, CLARIFY_SHOP)
    model = load_embedder(settings.paths)
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, database, model=model, calibrate=True
    )
    retriever = open_retriever(settings.paths, settings.retrieval, database, model=model)
    assert retriever.answer_classes is not None, "the shop's answer classes were not fitted"
    return services_for(settings, database, retriever, cache_enabled=False, max_rounds=1)


def _last_reply(database, token):
    with database.session() as session:
        return session.scalar(
            select(DialogueReply)
            .where(
                DialogueReply.conversation_id == customer.open_conversation(database, token, KEY)
            )
            .order_by(DialogueReply.id.desc())
            .limit(1)
        )


def _offered(view):
    """The labels of the buttons the chat shows (Gradio shows the last entry's only)."""
    return [o["label"] for o in view.chat[-1].get("options", [])] if view.chat else []


def _with_buttons(view):
    return [i for i, entry in enumerate(view.chat) if "options" in entry]


def test_a_clarifying_question_shows_its_choices_as_buttons_until_one_is_taken(
    tiny_settings, database
):
    services = clarifying_services(tiny_settings, database)
    token = customer.new_token(KEY)
    views = list(widget_chat.answer(services, token, MONEY_BACK))
    asked = _last_reply(database, token)
    assert asked.decision == "clarify" and len(asked.options) >= 2
    options = list(asked.options)
    question = services.manager.settings.clarify_message
    listed = "".join(f"\n{i}. {label}" for i, label in enumerate(options, 1))
    assert asked.shown_text == question + listed

    # No buttons while the reply is being written; then one per choice under the question,
    # which stand for the numbered list at the end of its text.
    assert all(_with_buttons(v) == [] for v in views[:-1])
    last = views[-1]
    assert last.chat[-1] == {
        "role": "assistant",
        "content": html.escape(question),
        "options": [{"value": label, "label": label} for label in options],
    }
    assert _with_buttons(last) == [len(last.chat) - 1]

    # A reload (or a poll that finds nothing new) shows them again.
    assert widget_chat.on_load(database, token, KEY) == (token, last)
    assert widget_chat.current_view(database, token) == last

    # A click sends the label as the customer's next message, through the same handler as
    # typing: the buttons go at once, and the question keeps its list of choices as text.
    chosen = options[1]
    picked = list(widget_chat.answer(services, token, chosen))
    assert all(_with_buttons(v) == [] for v in picked)
    assert _shown_texts(picked[0])[-3:] == [
        ("assistant", question + listed),
        ("user", chosen),
        ("assistant", widget_chat.THINKING),
    ]
    answered = picked[-1]
    reply = _last_reply(database, token)
    assert reply.decision in ("answer", "answer_flagged")  # answered, not handed off
    assert reply.reason.endswith("chosen by the customer")
    assert answered.human is False and answered.final
    assert _shown_texts(answered)[-2:] == [("user", chosen), ("assistant", reply.shown_text)]
    assert (
        _with_buttons(answered) == [] and widget_chat.on_load(database, token, KEY)[1] == answered
    )


def test_a_typed_number_takes_a_choice_and_any_other_message_removes_the_buttons(
    tiny_settings, database
):
    services = clarifying_services(tiny_settings, database)
    token = customer.new_token(KEY)
    first = list(widget_chat.answer(services, token, SHOP[0][0]))[-1]
    options = _offered(first)
    assert len(options) >= 2
    list(widget_chat.answer(services, token, "2"))
    taken = _last_reply(database, token)
    assert taken.decision in ("answer", "answer_flagged") and taken.reason.endswith(
        "chosen by the customer"
    )

    # Asked again, then something else is sent: no choice, no buttons (the assistant does
    # not ask a second time; a person takes over).
    asked = list(widget_chat.answer(services, token, MONEY_BACK))[-1]
    assert _offered(asked)
    moved_on = list(widget_chat.answer(services, token, "Something completely different"))
    assert all(_with_buttons(v) == [] for v in moved_on)
    assert widget_chat.on_load(database, token, KEY)[1] == moved_on[-1]

    # A greeting is plain text; so is every reply in a chat with no clarifying question.
    greeted = list(widget_chat.answer(services, customer.new_token(KEY), "hello"))[-1]
    assert _with_buttons(greeted) == [] and greeted.chat[-1]["content"]


def test_a_refused_message_leaves_the_buttons_and_a_person_in_charge_hides_them(
    tiny_settings, database
):
    services = clarifying_services(tiny_settings, database)
    token = customer.new_token(KEY)
    asked = list(widget_chat.answer(services, token, MONEY_BACK))[-1]
    assert _offered(asked)
    refused = list(widget_chat.answer(services, token, "x" * (MAX_MESSAGE_CHARS + 1)))
    assert len(refused) == 1 and refused[0].warning and refused[0].keep_input
    assert _offered(refused[0]) == _offered(asked)  # still waiting for the answer

    # A person took the conversation without a word yet: the buttons would talk to no one.
    with database.session() as session:
        session.get(
            Conversation, customer.open_conversation(database, token, KEY)
        ).state = "handed_off"
    assert _with_buttons(widget_chat.current_view(database, token)) == []


def test_choices_are_text_and_only_the_last_message_offers_them():
    label = '<b>Refund</b> & "status"'
    question = "Which of these is it about?"
    text = f"{question}\n1. {label}\n2. Return item"

    def shown(role, body, turn, options=()):
        return customer.ShownMessage(turn, role, body, turn + 1, options=list(options))

    chat, _ = widget_chat.render([shown("bot", text, 0, [label, "Return item"])])
    assert chat == [
        {
            "role": "assistant",
            "content": html.escape(question),
            # Gradio sets a label as the button's text, never as HTML: it is kept as written,
            # and a click sends back exactly that.
            "options": [
                {"value": label, "label": label},
                {"value": "Return item", "label": "Return item"},
            ],
        }
    ]
    # Not the last message any more, or rendered without offering: the text as stored.
    for messages, offer in (
        ([shown("bot", text, 0, [label]), shown("customer", "Return item", 1)], True),
        ([shown("bot", text, 0, [label, "Return item"])], False),
    ):
        chat, _ = widget_chat.render(messages, offer=offer)
        assert chat[0] == {"role": "assistant", "content": html.escape(text)}
    # A text that does not end with its list keeps it all; a question for the order number
    # has no choices, so no buttons.
    assert widget_chat.without_choices("Pick one: Refund or Return?", ["Refund"]) == (
        "Pick one: Refund or Return?"
    )
    assert widget_chat.without_choices(text, [label, "Return item"]) == question
    order_number = "Could you give me your order number?"
    assert widget_chat.render([shown("bot", order_number, 0)])[0] == [
        {"role": "assistant", "content": order_number}
    ]


def test_the_choices_come_from_the_message_or_else_its_reply_record(database):
    token = customer.new_token(KEY)
    cid = customer.open_conversation(database, token, KEY)
    with database.session() as session:
        add_message(
            session=session,
            conversation_id=cid,
            role="bot",
            text="Which one?\n1. Refund status\n2. Return item",
            meta={"decision": "clarify", "options": ["Refund status", " Return  item ", "", 3]},
        )
    _answered(database, cid, "money?", "Which one?\n1. Gift card", "clarify", options=["Gift card"])
    _answered(database, cid, "and?", "Sure.", "answer", options=["Not shown"])
    shown = customer.messages_after(database, token, -1)
    assert [(m.role, m.options) for m in shown] == [
        ("bot", ["Refund status", "Return item"]),  # cleaned: text labels, each once
        ("customer", []),
        ("bot", ["Gift card"]),  # a message stored without them: its reply record's
        ("customer", []),
        ("bot", []),  # only a clarifying question has choices
    ]


def test_a_click_on_a_choice_runs_the_send_path(tiny_settings, database):
    from gradio import SelectData

    services = clarifying_services(tiny_settings, database)
    ui = widget.customer_widget(services)
    page = ui.page
    functions = {f.name: f for f in page.fns.values()}
    send, choose = functions["send"], functions["choose"]
    chat = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "chat")
    box = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "message")
    assert (chat._id, "option_select") in [tuple(t) for t in choose.targets]
    assert choose.concurrency_id == send.concurrency_id and choose.trigger_mode == "once"
    assert [o._id for o in choose.outputs] == [o._id for o in send.outputs]
    assert box._id in [o._id for o in choose.outputs]

    request = SimpleNamespace(client=SimpleNamespace(host="127.0.0.1"))
    token = customer.new_token(KEY)
    asked = list(send.fn(token, MONEY_BACK, request))[-1]
    options = [o["label"] for o in asked[ui.shown.chat][-1]["options"]]
    clicked = SelectData(None, {"index": 0, "value": options[0]})
    outputs = list(choose.fn(token, clicked, request))
    assert [o[ui.token] for o in outputs] == [token] * len(outputs)
    assert all("options" not in entry for o in outputs for entry in o[ui.shown.chat])
    assert outputs[-1][ui.shown.chat][-2] == {"role": "user", "content": html.escape(options[0])}
    assert all(o[ui.box] == {"__type__": "update"} for o in outputs)  # the box is left alone
    assert _messages(database, customer.open_conversation(database, token, KEY))[2] == (
        "customer",
        options[0],
    )


# -- the page ------------------------------------------------------------------------


def _config_components(page):
    return page.get_config_file()["components"]


def test_the_page_builds_with_its_element_ids_and_no_upload(services):
    page = widget.build_widget(services)
    components = _config_components(page)
    ids = {c["props"].get("elem_id") for c in components}
    assert {
        "chat",
        "message",
        "send",
        "talk-to-human",
        "status-banner",
        "feedback-comment",
        "send-feedback",
        "new-conversation",
    } <= ids
    types = {c["type"] for c in components}
    assert not types & {"file", "uploadbutton", "multimodaltextbox", "image", "audio", "video"}
    chat = next(c for c in components if c["props"].get("elem_id") == "chat")
    assert chat["props"]["sanitize_html"] is True and chat["props"]["render_markdown"] is False
    state = next(c for c in components if c["type"] == "browserstate")
    assert state["props"]["storage_key"] == widget.STORAGE_KEY  # the same key after a restart


def test_the_browser_key_is_stable_and_not_the_session_secret(tiny_settings):
    from pydantic import SecretStr

    assert widget.browser_secret(tiny_settings.web.session_secret) == widget.browser_secret(
        tiny_settings.web.session_secret
    )
    configured = tiny_settings.model_copy(
        update={
            "web": tiny_settings.web.model_copy(
                update={"session_secret": SecretStr("s3cret-signing-key")}
            )
        }
    )
    key = widget.browser_secret(configured.web.session_secret)
    assert "s3cret" not in key and key != widget.browser_secret(tiny_settings.web.session_secret)


def test_the_page_is_served_and_may_be_framed(services):
    page = widget.build_widget(services)
    page.queue().launch(
        server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True
    )
    try:
        with urllib.request.urlopen(page.local_url, timeout=30) as response:
            assert response.status == 200
            assert "x-frame-options" not in {
                k.lower() for k in response.headers
            }  # embeddable in an iframe
            assert "gradio" in response.read().decode("utf-8", "replace").lower()
    finally:
        page.close()


def test_the_embed_example_uses_the_documented_snippet():
    page = (REPO / "ui" / "embed_example.html").read_text()
    iframe = re.search(r"<iframe\b[^>]*>", page).group(0)
    assert 'src="http://127.0.0.1:7860/"' in iframe and 'title="' in iframe
    assert 'allow="clipboard-write"' in iframe and "width" in iframe and "height" in iframe


def _encodable(view) -> bool:
    """The view can go to the browser: Gradio sends it as UTF-8 JSON, which a lone
    surrogate cannot be written in."""
    try:
        for entry in view.chat:
            str(entry["content"]).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_a_lone_surrogate_is_cleaned_before_it_is_shown_or_stored(services, database):
    """A lone UTF-16 surrogate (a browser can send one as JSON "\\ud83d") used to reach
    the streamed view as it was and break the reply stream; it is shown and stored as
    U+FFFD, and the reply streams to the end. A comment with one is stored too."""
    token = customer.new_token(KEY)
    views = list(widget_chat.answer(services, token, f"{RESET_Q} \ud83d"))
    assert views and all(_encodable(v) for v in views), "a view holds a lone surrogate"
    assert views[-1].final and views[-1].warning is None
    assert views[0].chat[-2]["content"] == html.escape(f"{RESET_Q} \ufffd")
    conversation_id = customer.open_conversation(database, token, KEY)
    stored = _messages(database, conversation_id)
    assert stored[0] == ("customer", f"{RESET_Q} \ufffd") and stored[-1][0] == "bot"
    reply_id = views[-1].message_ids[-1]
    customer.give_feedback(database, token, reply_id, -1, "wrong \udc00 answer")
    with database.session() as session:
        assert session.scalar(select(Feedback.comment)) == "wrong \ufffd answer"
