"""The admin console's Held answers tab: agents' answers held back for personal data
that slotting cannot hide; approve one to share it (as a training pair, and with the
answer cache), or discard it.

Where its job ends: holding, sharing and discarding are `chatbot.support.sharing`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatbot.errors import AccessDenied, ChatbotError
from chatbot.ui.admin_common import PRIVATE, admin_name, md_text, refused, utc_text
from chatbot.ui.handlers import Update, fills

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

    from chatbot.store.database import Database
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

HELD_COLUMNS = ["id", "conversation", "agent", "personal data", "question", "answer", "held at"]
# The answer (what holds the personal data) gets the most room; every column fits the page.
HELD_WIDTHS: list[str | int] = ["5%", "11%", "8%", "9%", "25%", "30%", "12%"]


def _empty_held() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([], columns=HELD_COLUMNS)


def held_frame(database: Database) -> pd.DataFrame:
    """The agents' answers held back for personal data (`chatbot.support.sharing`), oldest first."""
    import pandas as pd

    from chatbot.support.sharing import held_answers

    rows = [
        [
            h.id,
            h.conversation_id,
            h.agent,
            ", ".join(h.kinds),
            h.question,
            h.text,
            utc_text(h.created_at),
        ]
        for h in held_answers(database)
    ]
    return pd.DataFrame(rows, columns=HELD_COLUMNS)


def decide_held(database: Database, held_id: object, approve: bool, username: str) -> str:
    """Approve (share as a training pair) or discard one held answer; the outcome in words."""
    from chatbot.support import sharing

    try:
        number = int(str(held_id).strip())
    except ValueError:
        return "Type the id of a held answer (the first column)."
    try:
        if approve:
            pair_id = sharing.approve(database, number, username)
        else:
            sharing.discard(database, number, username)
    except ChatbotError as exc:
        return f"**Refused:** {md_text(exc)}"
    log.info("admin %s %s held answer %d", username, "approved" if approve else "discarded", number)
    if approve:
        return (
            f"Held answer {number} approved: it is shared now (training pair {pair_id}), "
            "served by the answer cache and used by the next index build and training run."
        )
    return f"Held answer {number} discarded: it will never be shared, and its text was cleared."


# -- the tab -------------------------------------------------------------------------------


def held_tab(services: Services) -> None:
    """Lay out and wire the Held answers tab (inside the page's Blocks); the table is
    drawn whenever the tab is chosen."""
    import gradio as gr

    with gr.Tab("Held answers", id="held-tab") as tab:
        gr.Markdown(
            "Answers held back for personal data: agents' answers that hold something "
            "slotting cannot hide (an IBAN, a passport or card number, a street address). "
            "Their customers got them; no other customer will until you approve one "
            "(approve only when the flagged value is the company's own, or harmless). "
            "Discarding clears the text."
        )
        held = gr.Dataframe(
            _empty_held(),
            interactive=False,
            wrap=True,
            column_widths=HELD_WIDTHS,
            elem_id="held",
        )
        with gr.Row():
            held_id = gr.Textbox(label="Held answer id", elem_id="held-id", scale=2)
            approve = gr.Button("Approve and share", elem_id="held-approve", scale=1)
            discard = gr.Button("Discard", variant="stop", elem_id="held-discard", scale=1)
        status = gr.Markdown(elem_id="held-status")

    def held_handler(
        approving: bool,
    ) -> Callable[[str, gr.Request], tuple[str, pd.DataFrame | Update]]:
        @fills(request=gr.Request)
        def do_held(number: str, request: gr.Request) -> tuple[str, pd.DataFrame | Update]:
            try:
                text = decide_held(
                    services.database, number, approving, admin_name(services, request)
                )
            except AccessDenied as exc:
                return refused(exc), gr.skip()
            return text, held_frame(services.database)

        return do_held

    def refresh_held() -> pd.DataFrame:
        return held_frame(services.database)

    approve.click(held_handler(True), [held_id], [status, held], **PRIVATE)
    discard.click(held_handler(False), [held_id], [status, held], **PRIVATE)
    tab.select(refresh_held, None, [held], **PRIVATE)
