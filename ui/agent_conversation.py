"""The agent console's conversation panel: one conversation opened in full (the chat,
who handles it), the suggested reply with its confidence, the past answers it cites
(each openable in full) and the refinement trace; and the column that lays it out with
the action buttons.

Where its job ends: what a conversation holds is `chatbot.support.queue`'s; what the
action buttons do is `ui.agent_actions`'; wiring events is `ui.agent`'s.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatbot.errors import ChatbotError
from chatbot.support.queue import (
    CUSTOMER_SAID_WRONG,
    CitedAnswer,
    ConversationDetail,
    CustomerFeedback,
    conversation_detail,
)
from chatbot.ui.agent_text import chat_text, flat, md_text, score
from chatbot.ui.handlers import ChatMessage
from chatbot.ui.views import skip, table

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.accounts.users import UserInfo
    from chatbot.web.services import Services

EVIDENCE_HEADERS = ["#", "pair", "score", "from", "past answer"]
TRACE_HEADERS = ["round", "kind", "score", "kept", "issues", "text"]
CANDIDATE_HEADERS = ["origin", "score", "round", "pair", "text"]
_ROLE_LABEL = {"customer": "customer", "bot": "assistant", "system": "system"}


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
            (f"{n}. past answer {c.pair_id} (score {score(c.score)})", c.pair_id)
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
        f"confidence **{score(s.confidence)}**",
        f"smoothed {score(s.smoothed_confidence)}",
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
                score(c.score),
                f"conversation {c.conversation_id}, turn {c.turn_index} ({c.source})",
                flat(c.snippet),
            ]
            for n, c in enumerate(s.citations, 1)
        ]
        panel.trace_rows = [
            [
                str(t.get("round", "")),
                str(t.get("kind", "")),
                score(t.get("score")),
                "yes" if t.get("kept") else "",
                flat("; ".join(t.get("issues") or []), 200),
                flat(t.get("text")),
            ]
            for t in s.trace
            if isinstance(t, dict)
        ]
        panel.candidate_rows = [
            [
                str(c.get("origin", "")),
                score(c.get("score")),
                str(c.get("round") if c.get("round") is not None else ""),
                str(c.get("pair_id") or ""),
                flat(c.get("text") or c.get("error")),
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
                f"{c.source}, {c.origin}, score {score(c.score)}"
            )
    return ""


# -- what the page shows of it -------------------------------------------------------------


@dataclass
class ConversationWidgets:
    """An opened conversation's outputs, from the chat to the number box showing it."""

    chat: gr.Chatbot
    suggestion: gr.Textbox
    reply_id: gr.State
    confidence: gr.Markdown
    evidence_table: gr.Dataframe
    evidence_choice: gr.Dropdown
    evidence_text: gr.Textbox
    evidence: gr.State  # the cited answers, for the evidence picker
    trace: gr.Dataframe
    candidates: gr.Dataframe
    owner_note: gr.Markdown
    signature: gr.State  # what was drawn, to tell whether anything changed
    opened: gr.State  # the opened conversation's id
    number: gr.Number  # the queue column's "open conversation number" box


@dataclass
class ConversationView:
    """New values for `ConversationWidgets`, field by field (a value, an update or a skip)."""

    chat: list[ChatMessage]
    suggestion: str | dict[str, Any]
    reply_id: int | None
    confidence: str
    evidence_table: dict[str, Any]
    evidence_choice: dict[str, Any]
    evidence_text: str | dict[str, Any]
    evidence: list[CitedAnswer]
    trace: dict[str, Any]
    candidates: dict[str, Any]
    owner_note: str
    signature: str
    opened: int | None
    number: int | None


def conversation_view(
    services: Services,
    conversation_id: int,
    viewer: UserInfo | None,
    shown_reply: int | None,
    shown_signature: str | None,
    *,
    redraw: bool = False,
    fresh: bool = False,
) -> ConversationView | None:
    """The opened conversation as it is now; None when nothing changed since
    `shown_signature` (unless `redraw`). The suggestion box, where the agent may be
    typing, changes only for another suggestion (or a `fresh` opening)."""
    try:
        panel = conversation_panel(services, conversation_id, viewer)
    except ChatbotError as exc:
        panel = ConversationPanel(
            None, owner_note=f"Cannot open it: {md_text(str(exc))}", signature="error"
        )
    if not redraw and not fresh and panel.signature == shown_signature:
        return None
    new_suggestion = fresh or panel.reply_id != shown_reply
    first = panel.evidence[0].pair_id if panel.evidence else None
    choice = {"__type__": "update", "choices": panel.evidence_choices, "value": first}
    return ConversationView(
        chat=panel.chat,
        suggestion=panel.suggestion if new_suggestion else skip(),
        reply_id=panel.reply_id,
        confidence=panel.confidence,
        evidence_table=table(panel.evidence_rows, EVIDENCE_HEADERS),
        evidence_choice=choice if new_suggestion else skip(),
        evidence_text=evidence_text(panel.evidence, first) if new_suggestion else skip(),
        evidence=panel.evidence,
        trace=table(panel.trace_rows, TRACE_HEADERS),
        candidates=table(panel.candidate_rows, CANDIDATE_HEADERS),
        owner_note=panel.owner_note,
        signature=panel.signature,
        opened=panel.conversation_id,
        number=panel.conversation_id,
    )


@dataclass
class ActionControls:
    """The buttons that act on the opened conversation, the boxes they read, and the
    line that says what happened."""

    take: gr.Button
    release: gr.Button
    back: gr.Button
    status: gr.Markdown
    approve: gr.Button
    send_edit: gr.Button
    reject_reason: gr.Textbox
    reject: gr.Button
    free_reply: gr.Textbox
    send_reply: gr.Button


@dataclass
class ConversationColumn:
    widgets: ConversationWidgets
    actions: ActionControls


def conversation_column(number: gr.Number) -> ConversationColumn:
    """Lay out the conversation column (inside the page's Blocks); `number` is the queue
    column's box that shows the opened conversation's number."""
    import gradio as gr

    gr.Markdown("### Conversation")
    owner_note = gr.Markdown(
        "Choose a conversation in the queue.", elem_id="owner-note", latex_delimiters=[]
    )
    chat = gr.Chatbot(
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
        release = gr.Button("Release to the queue", elem_id="release", size="sm")
        back = gr.Button("Hand back to the assistant", elem_id="hand-back", size="sm")
    status = gr.Markdown(elem_id="action-status", latex_delimiters=[])
    confidence = gr.Markdown(elem_id="confidence", latex_delimiters=[])
    suggestion = gr.Textbox(
        label="Suggested reply (edit it, or write the answer, then send)",
        elem_id="suggestion",
        lines=4,
        max_lines=12,
        interactive=True,
    )
    actions = _review_controls(take, release, back, status)
    evidence_table, evidence_choice, evidence_full = _evidence_section()
    trace, candidates = _trace_section()
    widgets = ConversationWidgets(
        chat=chat,
        suggestion=suggestion,
        reply_id=gr.State(None),
        confidence=confidence,
        evidence_table=evidence_table,
        evidence_choice=evidence_choice,
        evidence_text=evidence_full,
        evidence=gr.State([]),
        trace=trace,
        candidates=candidates,
        owner_note=owner_note,
        signature=gr.State(""),
        opened=gr.State(None),
        number=number,
    )
    return ConversationColumn(widgets, actions)


def _review_controls(
    take: gr.Button, release: gr.Button, back: gr.Button, status: gr.Markdown
) -> ActionControls:
    import gradio as gr

    with gr.Row():
        approve = gr.Button("Approve and send", elem_id="approve", variant="primary", size="sm")
        send_edit = gr.Button("Send my edit", elem_id="send-edit", size="sm")
    with gr.Row():
        reject_reason = gr.Textbox(
            label="Why reject it?", elem_id="reject-reason", lines=1, scale=4
        )
        reject = gr.Button("Reject", elem_id="reject", variant="stop", size="sm", scale=1)
    with gr.Row():
        free_reply = gr.Textbox(
            label="Reply freely", elem_id="free-reply", lines=2, max_lines=8, scale=4
        )
        send_reply = gr.Button("Send reply", elem_id="send-reply", size="sm", scale=1)
    return ActionControls(
        take=take,
        release=release,
        back=back,
        status=status,
        approve=approve,
        send_edit=send_edit,
        reject_reason=reject_reason,
        reject=reject,
        free_reply=free_reply,
        send_reply=send_reply,
    )


def _evidence_section() -> tuple[gr.Dataframe, gr.Dropdown, gr.Textbox]:
    import gradio as gr

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
        choice = gr.Dropdown(
            [], label="Open a past answer", elem_id="evidence-choice", filterable=False
        )
        full = gr.Textbox(
            label="The past answer in full",
            elem_id="evidence-text",
            lines=5,
            max_lines=14,
            interactive=False,
        )
    return evidence_table, choice, full


def _trace_section() -> tuple[gr.Dataframe, gr.Dataframe]:
    import gradio as gr

    with gr.Accordion("How the suggestion was made", open=True, elem_id="trace-section"):
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
    return trace, candidates
