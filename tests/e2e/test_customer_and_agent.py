"""A customer and the agents, as they see it in a real Chromium: a streamed reply with
its sources; asking for a person, an agent taking the conversation and replying, and
the customer seeing it without reloading; an agent's edit becoming the cached answer
for the next customer; a second agent seeing who owns a conversation; an HTML payload
shown as text everywhere."""

from __future__ import annotations

import re
import time
import uuid

from playwright.sync_api import expect

from tests.e2e.conftest import AGENT, SECOND_AGENT, login

BOT = "#chat [data-testid='bot']"
USER = "#chat [data-testid='user']"


def open_widget(page):
    page.goto("/")
    page.wait_for_selector("#message textarea")


def send(page, text: str) -> None:
    page.fill("#message textarea", text)
    page.click("#send")


def settled(page, timeout: float = 60.0) -> str:
    """The last bot reply once it has stopped changing (streaming and the final redraw done)."""
    reply = page.locator(BOT).last
    expect(reply).not_to_contain_text("…", timeout=timeout * 1000)
    last, since, deadline = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() - since < 1.5 and time.monotonic() < deadline:
        text = reply.inner_text()
        if text != last:
            last, since = text, time.monotonic()
        time.sleep(0.1)
    return last or ""


def unique(question: str) -> str:
    """A question no other test asks, so that the cache and the queue stay per test."""
    return f"{question} (ref {uuid.uuid4().hex[:6]})"


def open_in_console(page, needle: str) -> None:
    """Open the queue entry whose customer's last message contains `needle`."""
    cell = page.locator("#queue [role=gridcell]", has_text=needle).first
    expect(cell).to_be_visible(timeout=30_000)
    cell.click()
    expect(page.locator("#conversation-view")).to_contain_text(needle, timeout=30_000)


# Counts the updates the server streams for each event, as the browser receives them
# (Gradio reads its event stream with fetch): unlike what the page draws, this does not
# depend on how fast a loaded machine repaints.
COUNT_STREAMED_UPDATES = """() => {
    window.__generating = 0;
    const original = window.fetch;
    window.fetch = async (...args) => {
        const response = await original(...args);
        const url = String(args[0] && args[0].url ? args[0].url : args[0]);
        if (!url.includes("/queue/data") || !response.body) return response;
        const [mine, theirs] = response.body.tee();
        (async () => {
            const reader = mine.pipeThrough(new TextDecoderStream()).getReader();
            let rest = "";
            for (;;) {
                const {value, done} = await reader.read();
                if (done) break;
                const lines = (rest + value).split("\\n");
                rest = lines.pop();
                for (const line of lines) {
                    if (line.startsWith("data:") && line.includes('"process_generating"')) window.__generating++;
                }
            }
        })();
        return new Response(theirs, {status: response.status, statusText: response.statusText, headers: response.headers});
    };
}"""


def test_customer_gets_a_streamed_reply_with_its_sources(new_page, screenshots):
    page = new_page()
    page.add_init_script(f"({COUNT_STREAMED_UPDATES})()")
    open_widget(page)
    send(page, "How long does a refund take?")
    expect(page.locator(USER).last).to_contain_text("How long does a refund take?")
    expect(page.locator("#chat details").last).to_be_visible(timeout=60_000)
    settled(page)
    # The reply streamed: besides the first update (the message shown, "…") and the final
    # one, the server sent it piece by piece; a reply sent whole is two or three updates.
    streamed = page.evaluate("window.__generating")
    assert streamed >= 5, f"the reply did not stream: {streamed} updates"
    sources = page.locator("#chat details").last
    sources.locator("summary").click()
    expect(sources).to_contain_text(re.compile(r"conversation \d+", re.I))
    page.screenshot(path=str(screenshots / "widget.png"))

    # The browser keeps the conversation's token, never its text (no Gradio run history).
    stored = page.evaluate(
        "Object.values(localStorage).join(' ') + Object.values(sessionStorage).join(' ')"
    )
    assert "refund" not in stored.lower()

    # The conversation survives a reload (its token is in the browser, not in the URL).
    before = page.locator(BOT).last.inner_text()
    page.reload()
    page.wait_for_selector("#message textarea")
    expect(page.locator(USER).first).to_contain_text("How long does a refund take?")
    expect(page.locator(BOT).last).to_contain_text(before.split("\n")[0][:30])


def test_an_html_payload_is_shown_as_text_in_the_widget_and_the_console(new_page, server):
    payload = unique(
        '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>'
    )
    customer = new_page()
    open_widget(customer)
    send(customer, payload)
    expect(customer.locator(USER).last).to_contain_text('<img src=x onerror="window.__xss=1">')
    expect(customer.locator(BOT).last).not_to_contain_text("…", timeout=60_000)
    assert customer.locator("#chat img[src='x'], #chat script, #chat b").count() == 0
    assert customer.evaluate("window.__xss") is None

    agent = new_page()
    login(agent, *AGENT, "/agent")
    open_in_console(agent, "<script>window.__xss=2</script>")
    expect(agent.locator("#conversation-view")).to_contain_text("<b>bold</b>")
    assert (
        agent.locator(
            "#conversation-view img[src='x'], #conversation-view script, #queue b"
        ).count()
        == 0
    )
    assert agent.evaluate("window.__xss") is None


def test_customer_asks_for_a_person_and_sees_the_agents_reply_without_reloading(
    new_page, screenshots
):
    question = unique("My parcel arrived damaged, what now?")
    customer = new_page()
    open_widget(customer)
    send(customer, question)
    settled(customer)
    customer.click("#talk-to-human")
    expect(customer.locator("#status-banner")).to_be_visible(timeout=15_000)
    expect(customer.locator("#status-banner")).to_contain_text("team")

    agent = new_page()
    login(agent, *AGENT, "/agent")
    open_in_console(agent, question[-10:])
    agent.click("#take-over")
    expect(agent.locator("#owner-note")).to_contain_text("You are handling")

    # A second agent sees who has it and cannot answer it.
    other = new_page()
    login(other, *SECOND_AGENT, "/agent")
    open_in_console(other, question[-10:])
    expect(other.locator("#owner-note")).to_contain_text(AGENT[0])
    other.fill("#free-reply textarea", "I'll take this one!")
    other.click("#send-reply")
    expect(other.locator("#action-status")).to_contain_text(
        re.compile(f"handled by {AGENT[0]}|{AGENT[0]}")
    )

    answer = "So sorry about that! I have sent you a return label by e-mail; the replacement ships today."
    agent.fill("#free-reply textarea", answer)
    agent.click("#send-reply")
    expect(agent.locator("#conversation-view")).to_contain_text("replacement ships today")
    # The customer's page shows it by itself: no reload, no click.
    expect(customer.locator("#chat")).to_contain_text("replacement ships today", timeout=15_000)
    assert "I'll take this one!" not in customer.locator("#chat").inner_text()
    agent.screenshot(path=str(screenshots / "agent.png"), full_page=True)
    customer.screenshot(path=str(screenshots / "widget-human.png"))

    # Handed back: the banner goes, and the assistant answers the next message.
    agent.click("#hand-back")
    expect(customer.locator("#status-banner")).to_be_hidden(timeout=15_000)
    bots = customer.locator(BOT).count()
    send(customer, "And how long does the refund take?")
    expect(customer.locator(BOT)).to_have_count(bots + 1, timeout=60_000)


def test_an_agents_edit_is_the_cached_answer_for_the_next_customer(new_page):
    question = unique("Can I pay with a gift card?")
    first = new_page()
    open_widget(first)
    send(first, question)
    expect(first.locator(BOT).last).not_to_contain_text("…", timeout=60_000)

    agent = new_page()
    login(agent, *AGENT, "/agent")
    open_in_console(agent, question[-10:])
    edited = "Yes: gift cards work at checkout, and you can combine one with a card payment."
    agent.fill("#suggestion textarea", edited)
    agent.click("#send-edit")
    expect(agent.locator("#action-status")).to_contain_text(re.compile("sent|edit", re.I))
    expect(first.locator("#chat")).to_contain_text("gift cards work at checkout", timeout=15_000)

    # Another customer asks the same thing and gets the agent's words at once.
    second = new_page()
    open_widget(second)
    send(second, question)
    expect(second.locator(BOT).last).to_contain_text(edited, timeout=60_000)


# -- a clarifying question (its own served app: `clarifying_server`) --------------------

OPTION = "#chat button.option"


def _last_reply(server, question: str):
    """(decision, reason) of the reply to the customer's last message with this text."""
    from sqlalchemy import select

    from chatbot.store.dialogue_schema import DialogueReply
    from chatbot.store.schema import Message

    database = server.database()
    try:
        with database.session() as session:
            row = session.execute(
                select(DialogueReply.decision, DialogueReply.reason)
                .join(Message, Message.id == DialogueReply.message_id)
                .where(Message.role == "customer", Message.text == question)
                .order_by(DialogueReply.id.desc())
                .limit(1)
            ).one()
        return tuple(row)
    finally:
        database.dispose()


def test_customer_clarifies_with_a_button_and_gets_an_answer(
    clarifying_page, clarifying_server, screenshots
):
    from chatbot.dialogue.settings import DialogueSettings

    settings = DialogueSettings()
    question = "Can I pay with a gift card?"
    page = clarifying_page(viewport=(420, 640))  # the size of the documented embed
    open_widget(page)
    send(page, question)
    buttons = page.locator(OPTION)
    expect(buttons.first).to_be_visible(timeout=60_000)
    asked = settled(page)
    labels = buttons.all_inner_texts()
    assert 2 <= len(labels) <= 4 and all(label.strip() for label in labels)
    assert labels[-1] == settings.clarify_other  # "Something else" last: a way out
    assert _last_reply(clarifying_server, question)[0] == "clarify"
    # The question reads on its own: the buttons stand for the numbered list of its choices.
    assert asked.startswith(settings.clarify_message)
    assert not re.search(r"^\s*\d\.", asked, re.M), asked
    # The buttons sit right under the question, inside the chat.
    question_box = page.locator(BOT).last.bounding_box()
    first_button = buttons.first.bounding_box()
    assert question_box and first_button
    assert 0 <= first_button["y"] - (question_box["y"] + question_box["height"]) < 80
    page.screenshot(path=str(screenshots / "widget_clarify.png"))

    # A reload (the conversation restored from its token) shows them again.
    page.reload()
    page.wait_for_selector("#message textarea")
    expect(buttons).to_have_count(len(labels), timeout=30_000)
    assert buttons.all_inner_texts() == labels

    # A click sends the label as the customer's message; the buttons go at once and the
    # question keeps its choices as a numbered list.
    chosen = next((label for label in labels if label.lower() in question.lower()), labels[0])
    bots = page.locator(BOT).count()
    buttons.filter(has_text=chosen).first.click()
    expect(page.locator(USER).last).to_have_text(chosen, timeout=30_000)
    expect(buttons).to_have_count(0)
    expect(page.locator(BOT).nth(bots - 1)).to_contain_text(f"1. {labels[0]}")
    expect(page.locator(BOT)).to_have_count(bots + 1, timeout=60_000)
    answer = settled(page)
    decision, reason = _last_reply(clarifying_server, chosen)
    assert decision in ("answer", "answer_flagged") and "chosen by the customer" in reason
    assert answer.strip() and settings.handoff_message not in answer
    expect(page.locator("#status-banner")).to_be_hidden()
    expect(buttons).to_have_count(0)
    assert page.locator("#message textarea").input_value() == ""

    # Typing a choice's number works as well, and another question asks again.
    other = "How long does delivery take?"
    send(page, other)
    expect(page.locator(USER).last).to_have_text(other, timeout=30_000)
    expect(buttons.first).to_be_visible(timeout=60_000)
    settled(page)  # the reply is written: the box takes the next message
    send(page, "1")
    expect(buttons).to_have_count(0, timeout=30_000)
    expect(page.locator(USER).last).to_have_text("1")
    settled(page)
    decision, reason = _last_reply(clarifying_server, "1")
    assert decision in ("answer", "answer_flagged") and "chosen by the customer" in reason

    # "Something else": none of the topics is the customer's, and a person takes over.
    send(page, other)
    expect(buttons.first).to_be_visible(timeout=60_000)
    settled(page)
    buttons.filter(has_text=settings.clarify_other).first.click()
    expect(page.locator(USER).last).to_have_text(settings.clarify_other, timeout=30_000)
    settled(page)
    decision, reason = _last_reply(clarifying_server, settings.clarify_other)
    assert decision == "handoff" and reason.startswith("clarification_failed"), reason
