"""The agent console's queue panel: the conversations that need a human, their live
counts and the filter by reason; which conversation a clicked row means; and the
column that lays it out.

Where its job ends: what the queue holds is `chatbot.support.queue`'s; opening a
conversation is `ui.agent_conversation`'s; wiring events is `ui.agent`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chatbot.errors import ChatbotError
from chatbot.support.queue import REASON_GROUPS, load_queue
from chatbot.ui.agent_text import ago, md_text
from chatbot.ui.views import skip, table

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.web.services import Services

QUEUE_HEADERS = ["conversation", "reason", "waiting", "owner", "pending", "customer's last message"]
FILTER_CHOICES = [("all reasons", "all")] + [(label, key) for key, label in REASON_GROUPS.items()]


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
            ago(i.waiting_since, now),
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


# -- what the page shows of it -------------------------------------------------------------


@dataclass
class QueueWidgets:
    """The queue's outputs: the table, its conversation ids and the counts line."""

    table: gr.Dataframe
    ids: gr.State
    counts: gr.Markdown


@dataclass
class QueueView:
    """New values for `QueueWidgets`, field by field (an update or a skip each)."""

    table: dict[str, Any]
    ids: list[int]
    counts: str


def queue_view(services: Services, reason: str | None) -> QueueView:
    """The queue as it is now; the table stays as shown when the store cannot be read."""
    try:
        panel = queue_panel(services, reason)
    except ChatbotError as exc:
        return QueueView(skip(), [], f"The queue cannot be read now: {md_text(str(exc))}")
    return QueueView(table(panel.rows, QUEUE_HEADERS), panel.ids, panel.counts)


@dataclass
class QueueColumn:
    widgets: QueueWidgets
    reason: gr.Dropdown
    refresh: gr.Button
    number: gr.Number  # open a conversation by its number
    open_button: gr.Button


def queue_column() -> QueueColumn:
    """Lay out the queue column (inside the page's Blocks)."""
    import gradio as gr

    gr.Markdown("### Queue")
    counts = gr.Markdown(elem_id="queue-counts", latex_delimiters=[])
    with gr.Row():
        reason = gr.Dropdown(
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
        number = gr.Number(
            None,
            label="Open conversation number",
            precision=0,
            elem_id="open-id",
            scale=3,
        )
        open_button = gr.Button("Open", elem_id="open-conversation", size="sm", scale=1)
    widgets = QueueWidgets(table=queue, ids=gr.State([]), counts=counts)
    return QueueColumn(widgets, reason, refresh, number, open_button)
