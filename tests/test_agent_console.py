"""The agent console's handlers over the real store, dialogue manager (tiny models,
real index) and accounts: the page builds with its stable element ids; the queue with
its counts and filter; an opened conversation (escaped text, the suggestion with its
confidence, the cited past answers opened in full, the trace); the actions and the line
that says what happened or why not; who owns it; live updates on the timer that leave
the agent's half-typed edit alone; and the page's own event functions, called the way
Gradio calls them, with the login's username."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chatbot.errors import AccessDenied
from chatbot.store.conversations import add_message, conversation_messages
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.support import customer
from chatbot.ui import agent as console
from chatbot.ui import agent_actions, agent_conversation, agent_queue, agent_text
from chatbot.ui.views import components
from chatbot.web.services import Services
from tests.test_dialogue_support import SHOP, build_retriever, make_manager, seed_shop

# The key the tests' conversation tokens are issued with (Services get the same one).
KEY = customer.token_key("test session secret, not used anywhere else")

ORDER_Q = SHOP[0][0]
PAYLOAD = '<img src=x onerror="alert(1)"> <script>alert(2)</script> **not bold** $$x$$'
ELEM_IDS = {
    "queue",
    "queue-counts",
    "reason-filter",
    "refresh-queue",
    "conversation-view",
    "suggestion",
    "confidence",
    "evidence",
    "trace",
    "owner-note",
    "take-over",
    "approve",
    "send-edit",
    "reject-reason",
    "reject",
    "free-reply",
    "send-reply",
    "hand-back",
    "action-status",
}
SKIP = {"__type__": "update"}


@pytest.fixture
def services(tiny_settings, sqlite_database):
    """The console's logic does not depend on the database kind (test_agent_review runs both)."""
    from chatbot.accounts.users import add_user

    seed_shop(sqlite_database)
    retriever = build_retriever(tiny_settings, sqlite_database)
    manager = make_manager(
        tiny_settings,
        sqlite_database,
        retriever,
        max_rounds=1,
        answer_threshold=0.99,
        handoff_threshold=0.05,
        review_mode="hold",
    )
    for name in ("alice", "bob"):
        add_user(sqlite_database, name, "a long enough password 1", "agent")
    return Services(tiny_settings, sqlite_database, manager, conversation_key=KEY)


def login(services, username):
    from chatbot.web.auth import current_user

    return current_user(services, SimpleNamespace(username=username))


def request(username):
    return SimpleNamespace(username=username)


def act(services, agent, action, conversation_id, reply_id, text=""):
    """The console's line for an action, checked against whether it says it was done."""
    outcome = agent_actions.run_action(services, agent, action, conversation_id, reply_id, text)
    refusal = outcome.line.startswith(
        ("Refused:", "Not done:", "Failed:", "Open a", "There is", "Unknown")
    )
    assert outcome.done is not refusal
    return outcome.line


def built(services):
    page = console.build_agent_console(services)
    components = {b.elem_id: b for b in page.blocks.values() if getattr(b, "elem_id", None)}
    functions = {f.name: f for f in page.fns.values()}
    return page, components, functions


def built_named(services):
    """The page's panels by name, and its event functions by name."""
    ui = console.agent_console(services)
    return ui, {f.name: f for f in ui.page.fns.values()}


def test_the_page_builds_with_its_element_ids(services):
    page, components, functions = built(services)
    assert ELEM_IDS <= set(components)
    # Customer and model text is never read as Markdown or HTML in the conversation view.
    view = components["conversation-view"]
    assert (
        view.render_markdown is False and view.sanitize_html is True and view.latex_delimiters == []
    )
    assert components["queue"].interactive is False
    assert {
        "on_load",
        "on_tick",
        "on_select",
        "do_take_over",
        "do_approve",
        "do_edit",
        "do_reject",
        "do_reply",
        "do_hand_back",
    } <= set(functions)
    timers = [b for b in page.blocks.values() if type(b).__name__ == "Timer"]
    assert [t.value for t in timers] == [services.settings.web.poll_seconds]
    # Every event is private: nothing of the console is offered as a public API.
    assert all(f.api_visibility == "private" for f in page.fns.values())


def test_the_queue_shows_reasons_counts_and_filters(services):
    manager = services.manager
    asked = manager.respond("I want to talk to a human")
    held = manager.respond(ORDER_Q)
    panel = agent_queue.queue_panel(services, "all")
    assert panel.ids == [asked.conversation_id, held.conversation_id]
    assert (
        panel.rows[0][:2] == [str(asked.conversation_id), "customer asked"]
        and panel.rows[0][3] == "—"
    )
    assert (
        panel.rows[1][1] == "held for review"
        and panel.rows[1][4] == "1"
        and panel.rows[1][5] == ORDER_Q
    )
    assert "**2** in the queue" in panel.counts and "customer asked: **1**" in panel.counts
    assert "held for review: **1**" in panel.counts
    only_held = agent_queue.queue_panel(services, "held")
    assert only_held.ids == [held.conversation_id] and "**2** in the queue" in only_held.counts
    assert agent_queue.queue_panel(services, "flagged").rows == []
    assert (
        agent_queue.selected_conversation(panel.ids, [1, 3], [str(held.conversation_id), "x"])
        == held.conversation_id
    )
    assert agent_queue.selected_conversation(panel.ids, [0, 0]) == asked.conversation_id
    assert agent_queue.selected_conversation(panel.ids, [7, 0]) is None


def test_an_opened_conversation_shows_text_as_text_with_its_evidence_and_trace(services):
    manager = services.manager
    first = manager.respond(ORDER_Q)
    with services.database.session() as session:  # what a customer typed, stored as typed
        add_message(
            session=session, conversation_id=first.conversation_id, role="customer", text=PAYLOAD
        )
    held = manager.respond(SHOP[3][0], first.conversation_id)
    alice = login(services, "alice")
    panel = agent_conversation.conversation_panel(services, held.conversation_id, alice)
    # Escaped: the payload reads as written and nothing of it is markup.
    customer_turns = [m["content"] for m in panel.chat if m["role"] == "user"]
    assert customer_turns[1] == agent_text.chat_text(PAYLOAD)
    assert (
        "<img" not in customer_turns[1]
        and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in customer_turns[1]
    )
    assert "<script" not in "".join(m["content"] for m in panel.chat)
    # Two replies wait: the oldest is under review first.
    assert first.review_status == held.review_status == "pending"
    assert panel.reply_id == first.id and panel.suggestion == first.text
    assert (
        f"confidence **{first.confidence:.2f}**" in panel.confidence and "held" in panel.confidence
    )
    assert "2 suggestions wait for review, oldest first" in panel.confidence
    assert panel.evidence_rows and panel.evidence_rows[0][1] == str(panel.evidence[0].pair_id)
    full = agent_conversation.evidence_text(panel.evidence, panel.evidence_choices[0][1])
    cited = panel.evidence[0]
    assert cited.answer and cited.answer in full and f"Customer asked:\n{cited.question}" in full
    assert panel.trace_rows and panel.trace_rows[0][1] == "draft"
    assert panel.candidate_rows and panel.candidate_rows[0][1] == f"{first.confidence:.2f}"
    assert (
        panel.owner_note
        == "The assistant is answering this conversation; 2 suggested replies wait for review."
    )
    assert (
        agent_conversation.conversation_panel(services, None).owner_note
        == "Choose a conversation in the queue."
    )


def test_a_reply_the_customer_said_was_wrong_shows_the_reason_and_comment(services):
    database = services.database
    token = customer.new_token(KEY)
    cid = customer.open_conversation(database, token, KEY)
    with database.session() as session:
        asked = add_message(session=session, conversation_id=cid, role="customer", text=ORDER_Q)
        shown = add_message(session=session, conversation_id=cid, role="bot", text="Tomorrow.")
        session.add(
            DialogueReply(
                conversation_id=cid,
                message_id=asked.id,
                reply_message_id=shown.id,
                decision="answer",
                reason="confident: retrieved won",
                text="Tomorrow.",
                shown_text="Tomorrow.",
                sent=True,
            )
        )
        shown_id = shown.id
    alice = login(services, "alice")
    before = agent_conversation.conversation_panel(services, cid, alice)
    customer.give_feedback(database, token, shown_id, -1, "It was <b>not</b> *tomorrow*")

    rows = agent_queue.queue_panel(services, "customer_said_wrong").rows
    assert [r[:2] for r in rows] == [[str(cid), "customer said wrong"]]
    assert "customer said wrong: **1**" in agent_queue.queue_panel(services).counts
    panel = agent_conversation.conversation_panel(services, cid, alice)
    assert panel.signature != before.signature  # an open console redraws it
    assert r"**customer said wrong: “It was \<b\>not\</b\> \*tomorrow\*”**" in panel.confidence
    assert panel.chat[-1]["content"].endswith(
        "<br><i>customer said wrong: “It was &lt;b&gt;not&lt;/b&gt; *tomorrow*”</i>"
    )
    customer.withdraw_feedback(database, token, shown_id)
    assert agent_queue.queue_panel(services).ids == []
    assert (
        "customer said wrong"
        not in agent_conversation.conversation_panel(services, cid, alice).confidence
    )


def test_markdown_lines_escape_what_they_quote():
    assert agent_text.md_text("**bold** <b>x</b> [a](http://x) $$y$$") == (
        r"\*\*bold\*\* \<b\>x\<\/b\> \[a\]\(http://x\) \$\$y\$\$".replace(r"\/", "/")
    )
    assert agent_text.chat_text("a\nb <i>") == "a<br>b &lt;i&gt;"


def test_actions_say_what_happened_and_who_has_it(services):
    manager = services.manager
    cid = manager.respond("can i speak to a person").conversation_id
    alice, bob = login(services, "alice"), login(services, "bob")
    note = agent_conversation.conversation_panel(services, cid, alice).owner_note
    assert note == "Waiting in the queue (customer\\_asked\\_for\\_human); nobody has taken it yet."

    assert act(services, alice, "take_over", cid, None) == f"You took conversation {cid}."
    assert act(services, bob, "take_over", cid, None) == (
        f"Refused: conversation {cid} is being handled by alice."
    )
    assert agent_conversation.conversation_panel(services, cid, alice).owner_note.startswith(
        "You are handling this conversation"
    )
    assert agent_conversation.conversation_panel(services, cid, bob).owner_note == (
        "**alice** is handling this conversation; you can read it but not answer."
    )
    assert act(services, bob, "reply", cid, None, "hi") == (
        f"Refused: conversation {cid} is being handled by alice."
    )
    assert act(services, alice, "reply", cid, None, "   ") == "Not done: the reply is empty."
    assert act(services, alice, "reply", cid, None, PAYLOAD) == "Your reply was sent."
    panel = agent_conversation.conversation_panel(services, cid, alice)
    assert panel.chat[-1]["content"] == "<b>alice (agent):</b> " + agent_text.chat_text(PAYLOAD)
    assert act(services, alice, "approve", cid, panel.reply_id).startswith("Not done: reply")
    assert (
        act(services, alice, "approve", None, None) == "Open a conversation from the queue first."
    )
    assert act(services, alice, "hand_back", cid, None) == (
        f"Conversation {cid} is back with the assistant; it answers the next message."
    )
    assert (
        agent_conversation.conversation_panel(services, cid, alice).owner_note
        == "The assistant is answering this conversation."
    )


def test_approve_edit_and_reject_from_the_console(services):
    manager = services.manager
    alice = login(services, "alice")
    one = manager.respond(ORDER_Q)
    two = manager.respond(SHOP[3][0])
    three = manager.respond(SHOP[4][0])
    assert act(services, alice, "approve", one.conversation_id, one.id) == (
        f"Suggestion {one.id} approved and sent."
    )
    assert act(services, alice, "edit", two.conversation_id, two.id, "Use 'Forgot password?'.") == (
        f"Suggestion {two.id} edited and sent."
    )
    assert act(services, alice, "reject", three.conversation_id, three.id, "") == (
        "Not done: the reason for rejecting is empty."
    )
    assert act(services, alice, "reject", three.conversation_id, three.id, "wrong") == (
        f"Suggestion {three.id} rejected; nothing was sent."
    )
    with services.database.session() as session:
        sent = [
            (m.role, m.text)
            for m in conversation_messages(session=session, conversation_id=two.conversation_id)
        ]
    assert sent[-1] == ("agent", "Use 'Forgot password?'.")
    assert agent_queue.queue_panel(services).ids == []


def test_the_page_functions_as_gradio_calls_them(services):
    """The event functions the page registered, with a login's request: the tick
    updates the opened conversation when a customer writes and leaves the agent's
    half-typed edit alone; selecting a row opens it; a button acts and refreshes."""
    ui, functions = built_named(services)
    queue, opened_panel, status = (
        ui.queue.widgets,
        ui.conversation.widgets,
        ui.conversation.actions.status,
    )
    manager = services.manager
    held = manager.respond(ORDER_Q)
    cid = held.conversation_id

    loaded = functions["on_load"].fn("all", request("alice"))
    assert len(loaded) == len(functions["on_load"].outputs)
    assert loaded[queue.ids] == [cid] and "Logged in as **alice**" in loaded[ui.whoami]

    row = agent_queue.queue_panel(services).rows[0]
    opened = functions["on_select"].fn(
        [cid], SimpleNamespace(index=[0, 2], row_value=row), request("alice")
    )
    assert len(opened) == len(functions["on_select"].outputs)
    reply_id, signature = opened[opened_panel.reply_id], opened[opened_panel.signature]
    assert (
        opened[opened_panel.opened] == opened[opened_panel.number] == cid
        and reply_id == held.id
        and opened[opened_panel.suggestion] == held.text
        and opened[status] == ""
    )
    assert opened[opened_panel.chat][0]["content"] == agent_text.chat_text(ORDER_Q)

    # Nothing new: the tick changes nothing of the conversation.
    ticked = functions["on_tick"].fn("all", cid, reply_id, signature, request("alice"))
    assert len(ticked) == len(functions["on_tick"].outputs) and all(
        ticked[c] == SKIP for c in components(opened_panel)
    )
    # The customer writes again: the chat updates, the suggestion box (maybe being edited) does not.
    manager.respond("hello? is anyone there?", cid)
    ticked = functions["on_tick"].fn("all", cid, reply_id, signature, request("alice"))
    new_chat, new_suggestion = ticked[opened_panel.chat], ticked[opened_panel.suggestion]
    assert new_chat != SKIP and "hello? is anyone there?" in new_chat[-2]["content"]
    assert new_suggestion == SKIP

    # A button, with the text box it reads: take over, then a free reply; the box is cleared.
    take = functions["do_take_over"].fn(cid, reply_id, "", "all", request("alice"))
    assert len(take) == len(functions["do_take_over"].outputs)
    assert take[status] == agent_text.md_text(f"You took conversation {cid}.")
    refused = functions["do_reply"].fn(cid, reply_id, "me too", "all", request("bob"))
    assert refused[status] == agent_text.md_text(
        f"Refused: conversation {cid} is being handled by alice."
    )
    assert refused[ui.conversation.actions.free_reply] == SKIP  # bob's text stays in his box
    sent = functions["do_reply"].fn(cid, reply_id, "On its way!", "all", request("alice"))
    free_reply = ui.conversation.actions.free_reply
    assert sent[free_reply] == "" and "On its way!" in sent[opened_panel.chat][-1]["content"]
    nobody = functions["do_reply"].fn(cid, reply_id, "x", "all", request(None))
    assert nobody[status].startswith("Refused: you are not logged in")

    # The evidence picker opens a past answer in full.
    evidence = opened[opened_panel.evidence]
    assert functions["on_evidence"].fn(evidence, evidence[0].pair_id).startswith("Customer asked:")


def test_the_gradio_components_accept_what_the_handlers_return(services):
    page, components, _ = built(services)
    manager = services.manager
    held = manager.respond(PAYLOAD)
    panel = agent_conversation.conversation_panel(
        services, held.conversation_id, login(services, "alice")
    )
    shown = components["conversation-view"].postprocess(panel.chat)
    assert shown.root[0].content[0].text == agent_text.chat_text(PAYLOAD)
    table = components["queue"].postprocess(
        {"data": agent_queue.queue_panel(services).rows, "headers": agent_queue.QUEUE_HEADERS}
    )
    assert table.data[0][5] == " ".join(PAYLOAD.split())  # plain-text cells: shown as written
    empty = components["trace"].postprocess(
        {"data": [], "headers": agent_conversation.TRACE_HEADERS}
    )
    assert empty.headers == agent_conversation.TRACE_HEADERS


def test_the_agent_comes_from_the_login(services):
    from chatbot.accounts.users import remove_user

    assert agent_actions.agent_of(services, request("alice")).username == "alice"
    with pytest.raises(AccessDenied):
        agent_actions.agent_of(services, request(None))
    remove_user(services.database, "bob")
    with pytest.raises(AccessDenied):
        agent_actions.agent_of(services, request("bob"))
