"""The Logins tab of the admin console: the failed logins of the last day (by name:
how many, from how many addresses, the last one, how long the name waits now) and a
button that lifts the delays on one account ("unlock"), so that an admin never needs the
command line for it.

Only shows and wires; the throttle itself is `chatbot.accounts.throttle`'s and the
console around the tab (login, other tabs) is `ui.admin`'s. A failed name is whatever a
visitor typed: shown as a table cell, never as markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatbot.errors import AccessDenied, ChatbotError
from chatbot.ui.handlers import fills

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

    from chatbot.web.services import Services

COLUMNS = ["name typed", "failures (24 h)", "addresses", "last failure (UTC)", "waits now (s)"]


def failed_logins_frame(services: Services) -> pd.DataFrame:
    """The last day's failed logins, one row per name typed, most recent first."""
    import pandas as pd

    from chatbot.accounts.throttle import recent_failures
    from chatbot.web.auth import throttle_policy

    rows = [
        [
            f.username,
            f.failures,
            f.addresses,
            f"{f.last_at:%Y-%m-%d %H:%M:%S}",
            round(f.wait_seconds),
        ]
        for f in recent_failures(services.database, throttle_policy(services))
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def lift_delays(services: Services, username: str, admin: str) -> str:
    """Forget every failed login of the account `username`: its next login is checked at
    once, from anywhere. Its sessions are untouched."""
    from chatbot.accounts.users import unlock_user

    name = (username or "").strip()
    if not name:
        return "Type the username whose login delays to lift."
    try:
        user = unlock_user(services.database, name)
    except ChatbotError as exc:
        return f"Not lifted: {exc}."
    return f"Login delays lifted for {user.username} (by {admin})."


def logins_tab(services: Services, who: Callable[[gr.Request], str]) -> gr.Dataframe:
    """Build the tab's components inside the current `gr.Tab` and wire them; returns the
    table (the console refreshes it when the tab is opened)."""
    import gradio as gr

    gr.Markdown(
        "Wrong passwords never lock an account: after a few, each new try from the same "
        "address waits longer (1, 2, 4 … seconds). Names nobody has are listed too."
    )
    table = gr.Dataframe(
        headers=COLUMNS, interactive=False, elem_id="failed-logins", label="Failed logins"
    )
    with gr.Row():
        name = gr.Textbox(label="Username", elem_id="unlock-name", scale=3)
        lift = gr.Button("Lift login delays", elem_id="unlock", scale=1)
    status = gr.Textbox(label="", show_label=False, interactive=False, elem_id="unlock-status")
    refresh = gr.Button("Refresh", elem_id="refresh-logins", size="sm")

    @fills(request=gr.Request)
    def on_lift(username: str, request: gr.Request) -> tuple[str, pd.DataFrame]:
        try:
            admin = who(request)
        except AccessDenied as exc:
            return f"Refused: {exc}.", failed_logins_frame(services)
        return lift_delays(services, username, admin), failed_logins_frame(services)

    @fills(request=gr.Request)
    def on_refresh(request: gr.Request) -> pd.DataFrame:
        who(request)
        return failed_logins_frame(services)

    lift.click(on_lift, [name], [status, table], api_visibility="private")
    refresh.click(on_refresh, None, [table], api_visibility="private")
    return table
