"""The agent console (`/agent`): the queue of conversations that need a human, with
live counts and a filter by reason; one conversation opened in full with the suggested
reply, its confidence, the past answers it cites (each openable in full) and the
refinement trace; and the actions — take over, approve and send, edit then send,
reject with a reason, reply freely, release, hand back to the assistant.

The page polls (`settings.web.poll_seconds`): the queue and the opened conversation
update by themselves (a new customer message appears without a reload), while the
suggestion box keeps what the agent is typing until another suggestion comes up.
Everything a customer, an agent or a model wrote is shown as text: escaped before it
reaches the chat, and in plain-text cells and boxes elsewhere.

Who is asking comes from the login (`chatbot.web.auth.current_user`); what an action
does, and who may do it, is `chatbot.support.review`'s; what the queue and a
conversation hold is `chatbot.support.queue`'s. The handlers below are plain functions
of (services, agent, values) so they can be tested without a browser.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeAlias

from chatbot.errors import AccessDenied, ChatbotError, InputError
from chatbot.store.enums import AgentActionKind
from chatbot.support import review
from chatbot.support.queue import (
    CUSTOMER_SAID_WRONG,
    REASON_GROUPS,
    CitedAnswer,
    ConversationDetail,
    CustomerFeedback,
    conversation_detail,
    load_queue,
)
from chatbot.ui.handlers import ChatMessage, EventOptions, QuietEventOptions, Update, fills

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.accounts.users import UserInfo
    from chatbot.web.auth import SignedRequest
    from chatbot.web.services import Services

    # What the handlers send to the queue's outputs: the table, its conversation ids
    # and the counts line.
    QueueOutputs: TypeAlias = tuple[Update, list[int], str]
    # What they send to an opened conversation's outputs (see `conversation_outputs`).
    PanelOutputs: TypeAlias = tuple[
        list[ChatMessage],
        str | Update,
        int | None,
        str,
        Update,
        Update,
        str | Update,
        list[CitedAnswer],
        Update,
        Update,
        str,
        str,
        int | None,
        int | None,
    ]
    # As many skips as there are outputs: nothing changes.
    Skipped: TypeAlias = tuple[Update, ...]
    # What an action button sends: the status line, the box it clears (or a skip), the
    # queue and the panel; only the status line when the agent is not let in.
    ActionOutputs: TypeAlias = (
        tuple[str, str | Update, *QueueOutputs, *PanelOutputs]
        | tuple[str, str | Update, *QueueOutputs, *Skipped]
        | tuple[str, *Skipped]
    )

log = logging.getLogger(__name__)

TITLE = "Agent console"
QUEUE_HEADERS = ["conversation", "reason", "waiting", "owner", "pending", "customer's last message"]
EVIDENCE_HEADERS = ["#", "pair", "score", "from", "past answer"]
TRACE_HEADERS = ["round", "kind", "score", "kept", "issues", "text"]
CANDIDATE_HEADERS = ["origin", "score", "round", "pair", "text"]
FILTER_CHOICES = [("all reasons", "all")] + [(label, key) for key, label in REASON_GROUPS.items()]
ACTIONS = tuple(AgentActionKind)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>&$])")
_ROLE_LABEL = {"customer": "customer", "bot": "assistant", "system": "system"}


# -- showing text safely ------------------------------------------------------------------


def chat_text(text: str) -> str:
    """Text for the conversation view (a Chatbot that renders no Markdown): escaped, so
    markup reads as written, with its line breaks kept."""
    return html.escape(text or "", quote=True).replace("\r\n", "\n").replace("\n", "<br>")


def md_text(text: str) -> str:
    """Text inside our own Markdown lines: every character Markdown or HTML would read
    as syntax is backslash-escaped, so it shows literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text or "").split()))


def _ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _score(value: object) -> str:
    return (
        f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"
    )


def _flat(text: object, limit: int = 400) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- the queue ----------------------------------------------------------------------------


@dataclass
class QueuePanel:
    rows: list[list[str]]
    ids: list[int]  # conversation id of each row
    counts: str  # the live counts line (Markdown, our own words and numbers only)


def queue_panel(services: Services, reason: str | None = "all") -> QueuePanel:
    with services.database.session() as session:
        view = load_queue(session, reason=reason)
    now = datetime.now(UTC)
    rows = [
        [
            str(i.conversation_id),
            i.group_label,
            _ago(i.waiting_since, now),
            i.owner or "—",
            str(i.pending_replies),
            i.preview,
        ]
        for i in view.items
    ]
    waiting = sum(1 for i in view.items if i.owner is None)
    parts = [f"**{view.total}** in the queue"]
    parts += [f"{md_text(REASON_GROUPS[key])}: **{n}**" for key, n in view.counts.items() if n]
    if reason not in (None, "", "all"):
        parts.append(
            f"showing {md_text(REASON_GROUPS.get(reason, reason))}: **{len(view.items)}**, {waiting} not taken"
        )
    return QueuePanel(
        rows=rows, ids=[i.conversation_id for i in view.items], counts=" · ".join(parts)
    )


def selected_conversation(
    ids: list[int], index: int | Sequence[int] | None, row_value: Sequence[object] | None = None
) -> int | None:
    """The conversation of a clicked queue row: the row's first cell, else its index."""
    if isinstance(row_value, (list, tuple)) and row_value:
        try:
            return int(str(row_value[0]).lstrip("#"))
        except ValueError:
            pass
    row = index[0] if isinstance(index, (list, tuple)) and index else index
    if isinstance(row, int) and 0 <= row < len(ids):
        return ids[row]
    return None


# -- one conversation -----------------------------------------------------------------------


@dataclass
class ConversationPanel:
    conversation_id: int | None
    chat: list[ChatMessage] = field(default_factory=list)
    suggestion: str = ""
    reply_id: int | None = None
    confidence: str = ""
    evidence_rows: list[list[str]] = field(default_factory=list)
    evidence: list[CitedAnswer] = field(default_factory=list)
    trace_rows: list[list[str]] = field(default_factory=list)
    candidate_rows: list[list[str]] = field(default_factory=list)
    owner_note: str = ""
    signature: str = ""  # changes whenever anything shown here changes

    @property
    def evidence_choices(self) -> list[tuple[str, int]]:
        return [
            (f"{n}. past answer {c.pair_id} (score {_score(c.score)})", c.pair_id)
            for n, c in enumerate(self.evidence, 1)
        ]


def _chat(detail: ConversationDetail) -> list[ChatMessage]:
    shown: list[ChatMessage] = []
    for m in detail.messages:
        if m.role == "customer":
            shown.append({"role": "user", "content": chat_text(m.text)})
            continue
        who = (
            f"{m.agent} (agent)"
            if m.role == "agent" and m.agent
            else _ROLE_LABEL.get(m.role, m.role)
        )
        content = f"<b>{html.escape(who)}:</b> {chat_text(m.text)}"
        if m.feedback is not None:
            content += f"<br><i>{chat_text(_verdict(m.feedback))}</i>"
        shown.append({"role": "assistant", "content": content})
    return shown


def _verdict(feedback: CustomerFeedback) -> str:
    """The customer's thumbs on a reply, in words: "customer said wrong: <comment>"."""
    said = CUSTOMER_SAID_WRONG if feedback.said_wrong else "customer gave a thumbs-up"
    return f"{said}: “{feedback.comment}”" if feedback.comment else said


def _owner_note(detail: ConversationDetail, viewer: UserInfo | None) -> str:
    viewer_id = viewer.id if viewer is not None else None
    if detail.state != "handed_off":
        pending = len(detail.pending_reply_ids)
        if pending:
            return (
                f"The assistant is answering this conversation; {pending} suggested "
                f"repl{'y waits' if pending == 1 else 'ies wait'} for review."
            )
        return "The assistant is answering this conversation."
    reason = md_text(detail.handoff_reason or "handed off")
    if detail.owner_id is None:
        return f"Waiting in the queue ({reason}); nobody has taken it yet."
    if detail.owner_id == viewer_id:
        return f"You are handling this conversation ({reason})."
    return f"**{md_text(detail.owner or 'another agent')}** is handling this conversation; you can read it but not answer."


def _confidence(detail: ConversationDetail) -> str:
    s = detail.suggestion
    if s is None:
        return "No suggestion yet."
    parts = [
        f"confidence **{_score(s.confidence)}**",
        f"smoothed {_score(s.smoothed_confidence)}",
        md_text(f"{s.decision.replace('_', ' ')} ({s.reason})"),
    ]
    status = s.review_status or ("not reviewed" if s.text.strip() else "no draft: write the answer")
    parts.append(md_text(status))
    if s.customer_said_wrong and s.feedback is not None:
        parts.append(f"**{md_text(_verdict(s.feedback))}**")
    if s.cached_pair_id is not None:
        parts.append(f"sent from the answer cache: agents' past answer {s.cached_pair_id}")
    if len(detail.pending_reply_ids) > 1:
        parts.append(f"{len(detail.pending_reply_ids)} suggestions wait for review, oldest first")
    return " · ".join(parts)


def conversation_panel(
    services: Services, conversation_id: int | None, viewer: UserInfo | None = None
) -> ConversationPanel:
    """What the console shows of one conversation (an empty panel for None)."""
    if conversation_id is None:
        return ConversationPanel(
            None, owner_note="Choose a conversation in the queue.", signature="none"
        )
    with services.database.session() as session:
        detail = conversation_detail(session, conversation_id)
    s = detail.suggestion
    panel = ConversationPanel(
        conversation_id,
        chat=_chat(detail),
        owner_note=_owner_note(detail, viewer),
        confidence=_confidence(detail),
    )
    if s is not None:
        panel.suggestion, panel.reply_id, panel.evidence = s.text, s.reply_id, list(s.citations)
        panel.evidence_rows = [
            [
                str(n),
                str(c.pair_id),
                _score(c.score),
                f"conversation {c.conversation_id}, turn {c.turn_index} ({c.source})",
                _flat(c.snippet),
            ]
            for n, c in enumerate(s.citations, 1)
        ]
        panel.trace_rows = [
            [
                str(t.get("round", "")),
                str(t.get("kind", "")),
                _score(t.get("score")),
                "yes" if t.get("kept") else "",
                _flat("; ".join(t.get("issues") or []), 200),
                _flat(t.get("text")),
            ]
            for t in s.trace
            if isinstance(t, dict)
        ]
        panel.candidate_rows = [
            [
                str(c.get("origin", "")),
                _score(c.get("score")),
                str(c.get("round") if c.get("round") is not None else ""),
                str(c.get("pair_id") or ""),
                _flat(c.get("text") or c.get("error")),
            ]
            for c in s.candidates
            if isinstance(c, dict)
        ]
    last = detail.messages[-1].id if detail.messages else 0
    panel.signature = "|".join(
        str(x)
        for x in (
            conversation_id,
            last,
            len(detail.messages),
            detail.state,
            detail.owner_id,
            s.reply_id if s else None,
            s.review_status if s else None,
            ",".join(map(str, detail.pending_reply_ids)),
            ",".join(
                f"{m.id}:{m.feedback.rating}:{m.feedback.created_at}"
                for m in detail.messages
                if m.feedback is not None
            ),
        )
    )
    return panel


def evidence_text(evidence: list[CitedAnswer], pair_id: object) -> str:
    """One cited past answer in full, as plain text."""
    for c in evidence:
        if str(c.pair_id) == str(pair_id):
            if not c.found:
                return (
                    f"Past answer {c.pair_id} is no longer stored. What was cited:\n\n{c.snippet}"
                )
            return (
                f"Customer asked:\n{c.question}\n\nAgent answered:\n{c.answer}\n\n"
                f"— past answer {c.pair_id}, conversation {c.conversation_id} turn {c.turn_index}, "
                f"{c.source}, {c.origin}, score {_score(c.score)}"
            )
    return ""


# -- actions ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    done: bool
    line: str  # what happened, or why it was not done


def run_action(
    services: Services,
    agent: review.Agent,
    action: str,
    conversation_id: int | None,
    reply_id: int | None,
    text: str = "",
) -> Outcome:
    """Do `action` as `agent`; whether it was done, and the line to show."""
    if action not in ACTIONS:
        return Outcome(False, f"Unknown action {action!r}.")
    if conversation_id is None:
        return Outcome(False, "Open a conversation from the queue first.")
    db = services.database
    try:
        if action in ("approve", "edit", "reject"):
            if reply_id is None:
                return Outcome(False, "There is no suggestion to review in this conversation.")
            if action == "approve":
                result = review.approve(db, reply_id, agent, redactor=services.manager.redactor)
            elif action == "edit":
                result = review.edit(db, reply_id, agent, text, redactor=services.manager.redactor)
            else:
                result = review.reject(db, reply_id, agent, text)
        elif action == "take_over":
            result = review.take_over(db, conversation_id, agent)
        elif action == "reply":
            result = review.reply(
                db, conversation_id, agent, text, redactor=services.manager.redactor
            )
        elif action == "hand_back":
            result = review.hand_back(db, conversation_id, agent)
        else:
            result = review.release(db, conversation_id, agent)
    except AccessDenied as exc:
        return Outcome(False, f"Refused: {exc}.")
    except InputError as exc:
        return Outcome(False, f"Not done: {exc.reason}.")
    except ChatbotError as exc:
        log.warning("agent action %s on conversation %s failed: %s", action, conversation_id, exc)
        return Outcome(False, f"Failed: {exc}.")
    line = result.message[0].upper() + result.message[1:]
    if result.took_over and action != "take_over":
        line += f"; you now handle conversation {conversation_id}"
    return Outcome(True, line + ".")


def agent_of(services: Services, request: SignedRequest | None) -> UserInfo:
    """The logged-in agent behind a console event (AccessDenied if there is none)."""
    from chatbot.web.auth import current_user

    return current_user(services, request)


# -- the page --------------------------------------------------------------------------------


def build_agent_console(services: Services) -> gr.Blocks:
    import gradio as gr

    from chatbot.web.auth import LOGOUT_FORM

    PANEL = 14
    private: EventOptions = {"api_visibility": "private"}
    quiet: QuietEventOptions = {"api_visibility": "private", "show_progress": "hidden"}

    def frame(rows: list[list[str]], headers: list[str]) -> Update:
        return gr.update(value={"data": rows or [], "headers": headers})

    def queue_outputs(reason: str | None) -> QueueOutputs:
        try:
            panel = queue_panel(services, reason)
        except ChatbotError as exc:
            return gr.skip(), [], f"The queue cannot be read now: {md_text(str(exc))}"
        return frame(panel.rows, QUEUE_HEADERS), panel.ids, panel.counts

    def conversation_outputs(
        conversation_id: int,
        viewer: UserInfo | None,
        shown_reply: int | None,
        shown_signature: str | None,
        *,
        redraw: bool = False,
        fresh: bool = False,
    ) -> PanelOutputs | Skipped:
        """(chat, suggestion, reply id, confidence, evidence table, evidence choice,
        evidence text, evidence state, trace, candidates, owner note, signature, opened
        id, the number box showing it): PANEL values. Nothing changes unless the
        conversation did (or `redraw`); the suggestion box, where the agent may be
        typing, changes only for another suggestion (or a `fresh` opening)."""
        try:
            panel = conversation_panel(services, conversation_id, viewer)
        except ChatbotError as exc:
            panel = ConversationPanel(
                None, owner_note=f"Cannot open it: {md_text(str(exc))}", signature="error"
            )
        if not redraw and not fresh and panel.signature == shown_signature:
            return (gr.skip(),) * PANEL
        new_suggestion = fresh or panel.reply_id != shown_reply
        first = panel.evidence[0].pair_id if panel.evidence else None
        return (
            panel.chat,
            panel.suggestion if new_suggestion else gr.skip(),
            panel.reply_id,
            panel.confidence,
            frame(panel.evidence_rows, EVIDENCE_HEADERS),
            gr.update(choices=panel.evidence_choices, value=first) if new_suggestion else gr.skip(),
            evidence_text(panel.evidence, first) if new_suggestion else gr.skip(),
            panel.evidence,
            frame(panel.trace_rows, TRACE_HEADERS),
            frame(panel.candidate_rows, CANDIDATE_HEADERS),
            panel.owner_note,
            panel.signature,
            panel.conversation_id,
            panel.conversation_id,
        )

    def viewer_of(request: gr.Request) -> UserInfo | None:
        try:
            return agent_of(services, request)
        except ChatbotError:
            return None

    # -- handlers --

    @fills(request=gr.Request)
    def on_load(reason: str | None, request: gr.Request) -> tuple[*QueueOutputs, str]:
        who = viewer_of(request)
        name = md_text(who.username) if who else "nobody"
        return (*queue_outputs(reason), f"Logged in as **{name}**")

    @fills(request=gr.Request)
    def on_tick(
        reason: str | None,
        conversation_id: int | None,
        shown_reply: int | None,
        shown_signature: str,
        request: gr.Request,
    ) -> tuple[*QueueOutputs, *PanelOutputs] | tuple[*QueueOutputs, *Skipped]:
        viewer = viewer_of(request)
        outputs = (
            conversation_outputs(conversation_id, viewer, shown_reply, shown_signature)
            if conversation_id is not None
            else (gr.skip(),) * PANEL
        )
        return (*queue_outputs(reason), *outputs)

    def on_filter(reason: str | None) -> QueueOutputs:
        return queue_outputs(reason)

    @fills(evt=gr.SelectData, request=gr.Request)
    def on_select(
        ids: list[int], evt: gr.SelectData, request: gr.Request
    ) -> tuple[*PanelOutputs, str] | tuple[*Skipped, str]:
        conversation_id = selected_conversation(ids, evt.index, evt.row_value)
        if conversation_id is None:
            return (gr.skip(),) * PANEL + ("",)
        return (
            *conversation_outputs(conversation_id, viewer_of(request), None, None, fresh=True),
            "",
        )

    @fills(request=gr.Request)
    def on_open(
        number: float | None, request: gr.Request
    ) -> tuple[*PanelOutputs, str] | tuple[*Skipped, str]:
        try:
            conversation_id = int(number) if number is not None else None
        except (TypeError, ValueError):
            conversation_id = None
        if conversation_id is None:
            return (gr.skip(),) * PANEL + ("Type a conversation number to open it.",)
        return (
            *conversation_outputs(conversation_id, viewer_of(request), None, None, fresh=True),
            "",
        )

    @fills(request=gr.Request)
    def on_reload(
        conversation_id: int | None, shown_reply: int | None, request: gr.Request
    ) -> PanelOutputs | Skipped:
        """The chat's own clear button empties only the browser's copy: draw it again."""
        if conversation_id is None:
            return (gr.skip(),) * PANEL
        return conversation_outputs(
            conversation_id, viewer_of(request), shown_reply, None, redraw=True
        )

    def on_evidence(evidence: list[CitedAnswer] | None, pair_id: int | None) -> str:
        return evidence_text(evidence or [], pair_id)

    def acting(
        action: str, clears: bool
    ) -> Callable[[int | None, int | None, str, str | None, gr.Request], ActionOutputs]:
        @fills(request=gr.Request)
        def handler(
            conversation_id: int | None,
            reply_id: int | None,
            text: str,
            reason: str | None,
            request: gr.Request,
        ) -> ActionOutputs:
            try:
                agent = agent_of(services, request)
            except ChatbotError as exc:
                return (
                    md_text(f"Refused: {exc}."),
                    gr.skip(),
                    *(gr.skip(),) * 3,
                    *(gr.skip(),) * PANEL,
                )
            outcome = run_action(services, agent, action, conversation_id, reply_id, text)
            # The suggestion box keeps what the agent typed unless another suggestion is up now.
            outputs = (
                conversation_outputs(conversation_id, agent, reply_id, None, redraw=True)
                if conversation_id is not None
                else (gr.skip(),) * PANEL
            )
            cleared = "" if (clears and outcome.done) else gr.skip()
            return (md_text(outcome.line), cleared, *queue_outputs(reason), *outputs)

        handler.__name__ = handler.__qualname__ = f"do_{action}"
        return handler

    console = gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True)
    with console:
        opened = gr.State(None)
        reply_id = gr.State(None)
        signature = gr.State("")
        evidence_state = gr.State([])
        queue_ids = gr.State([])
        timer = gr.Timer(services.settings.web.poll_seconds)

        with gr.Row():
            gr.Markdown(f"## {TITLE}")
            whoami = gr.Markdown(elem_id="whoami", latex_delimiters=[])
            # A form posted in this tab: the session ends in the store, the page goes.
            gr.HTML(LOGOUT_FORM, elem_id="logout-form", elem_classes=["logout-form"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=380):
                gr.Markdown("### Queue")
                counts = gr.Markdown(elem_id="queue-counts", latex_delimiters=[])
                with gr.Row():
                    reason_filter = gr.Dropdown(
                        FILTER_CHOICES,
                        value="all",
                        label="Reason",
                        elem_id="reason-filter",
                        scale=3,
                        filterable=False,
                    )
                    refresh = gr.Button("Refresh", elem_id="refresh-queue", size="sm", scale=1)
                queue = gr.Dataframe(
                    headers=QUEUE_HEADERS,
                    datatype=["str"] * len(QUEUE_HEADERS),
                    interactive=False,
                    wrap=True,
                    elem_id="queue",
                    label="Conversations that need a human (oldest first; click one to open it)",
                    max_height=520,
                    column_widths=["12%", "16%", "11%", "11%", "10%", "40%"],
                )
                with gr.Row():
                    open_number = gr.Number(
                        None,
                        label="Open conversation number",
                        precision=0,
                        elem_id="open-id",
                        scale=3,
                    )
                    open_button = gr.Button("Open", elem_id="open-conversation", size="sm", scale=1)
            with gr.Column(scale=3, min_width=480):
                gr.Markdown("### Conversation")
                owner_note = gr.Markdown(
                    "Choose a conversation in the queue.", elem_id="owner-note", latex_delimiters=[]
                )
                conversation_view = gr.Chatbot(
                    elem_id="conversation-view",
                    label="Conversation",
                    show_label=False,
                    height=380,
                    render_markdown=False,
                    sanitize_html=True,
                    allow_tags=False,
                    latex_delimiters=[],
                    buttons=[],
                    feedback_options=None,
                    group_consecutive_messages=False,
                )
                with gr.Row():
                    take = gr.Button("Take over", elem_id="take-over", variant="primary", size="sm")
                    release_button = gr.Button("Release to the queue", elem_id="release", size="sm")
                    back = gr.Button("Hand back to the assistant", elem_id="hand-back", size="sm")
                action_status = gr.Markdown(elem_id="action-status", latex_delimiters=[])
                confidence = gr.Markdown(elem_id="confidence", latex_delimiters=[])
                suggestion = gr.Textbox(
                    label="Suggested reply (edit it, or write the answer, then send)",
                    elem_id="suggestion",
                    lines=4,
                    max_lines=12,
                    interactive=True,
                )
                with gr.Row():
                    approve = gr.Button(
                        "Approve and send", elem_id="approve", variant="primary", size="sm"
                    )
                    send_edit = gr.Button("Send my edit", elem_id="send-edit", size="sm")
                with gr.Row():
                    reject_reason = gr.Textbox(
                        label="Why reject it?", elem_id="reject-reason", lines=1, scale=4
                    )
                    reject = gr.Button(
                        "Reject", elem_id="reject", variant="stop", size="sm", scale=1
                    )
                with gr.Row():
                    free_reply = gr.Textbox(
                        label="Reply freely", elem_id="free-reply", lines=2, max_lines=8, scale=4
                    )
                    send_reply = gr.Button("Send reply", elem_id="send-reply", size="sm", scale=1)
                with gr.Column(elem_id="evidence"):
                    gr.Markdown("#### Evidence: the past answers the suggestion cites")
                    evidence_table = gr.Dataframe(
                        headers=EVIDENCE_HEADERS,
                        datatype=["str"] * len(EVIDENCE_HEADERS),
                        interactive=False,
                        wrap=True,
                        elem_id="evidence-table",
                        show_label=False,
                        max_height=260,
                    )
                    evidence_choice = gr.Dropdown(
                        [], label="Open a past answer", elem_id="evidence-choice", filterable=False
                    )
                    evidence_full = gr.Textbox(
                        label="The past answer in full",
                        elem_id="evidence-text",
                        lines=5,
                        max_lines=14,
                        interactive=False,
                    )
                with gr.Accordion(
                    "How the suggestion was made", open=True, elem_id="trace-section"
                ):
                    trace = gr.Dataframe(
                        headers=TRACE_HEADERS,
                        datatype=["str"] * len(TRACE_HEADERS),
                        interactive=False,
                        wrap=True,
                        elem_id="trace",
                        label="Refinement trace (draft, critique, revisions)",
                        max_height=260,
                    )
                    candidates = gr.Dataframe(
                        headers=CANDIDATE_HEADERS,
                        datatype=["str"] * len(CANDIDATE_HEADERS),
                        interactive=False,
                        wrap=True,
                        elem_id="candidates",
                        label="Candidates, best first",
                        max_height=260,
                    )

        queue_out = [queue, queue_ids, counts]
        panel_out = [
            conversation_view,
            suggestion,
            reply_id,
            confidence,
            evidence_table,
            evidence_choice,
            evidence_full,
            evidence_state,
            trace,
            candidates,
            owner_note,
            signature,
            opened,
            open_number,
        ]

        console.load(on_load, [reason_filter], [*queue_out, whoami], **private)
        timer.tick(
            on_tick, [reason_filter, opened, reply_id, signature], [*queue_out, *panel_out], **quiet
        )
        reason_filter.change(on_filter, [reason_filter], queue_out, **private)
        refresh.click(on_filter, [reason_filter], queue_out, **private)
        queue.select(on_select, [queue_ids], [*panel_out, action_status], **private)
        open_button.click(on_open, [open_number], [*panel_out, action_status], **private)
        conversation_view.clear(on_reload, [opened, reply_id], panel_out, **private)
        evidence_choice.change(
            on_evidence, [evidence_state, evidence_choice], [evidence_full], **quiet
        )

        wiring = [
            (take, "take_over", None, None),
            (approve, "approve", None, None),
            (send_edit, "edit", suggestion, None),
            (reject, "reject", reject_reason, reject_reason),
            (send_reply, "reply", free_reply, free_reply),
            (back, "hand_back", None, None),
            (release_button, "release", None, None),
        ]
        for button, action, source, cleared in wiring:
            handler = acting(action, clears=cleared is not None)
            cleared_box = cleared if cleared is not None else gr.State(None)
            text_in = source if source is not None else gr.State("")
            button.click(
                handler,
                [opened, reply_id, text_in, reason_filter],
                [action_status, cleared_box, *queue_out, *panel_out],
                trigger_mode="once",
                **private,
            )
    return console
