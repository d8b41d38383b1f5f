"""How the agent console shows text safely and compactly: chat text escaped for the
conversation view, our own Markdown lines with every special character escaped, waiting
times, scores and flattened table cells.

Only formatting lives here; what is shown where is the panels' job (`ui.agent_queue`,
`ui.agent_conversation`).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>&$])")


def chat_text(text: str) -> str:
    """Text for the conversation view (a Chatbot that renders no Markdown): escaped, so
    markup reads as written, with its line breaks kept."""
    return html.escape(text or "", quote=True).replace("\r\n", "\n").replace("\n", "<br>")


def md_text(text: str) -> str:
    """Text inside our own Markdown lines: every character Markdown or HTML would read
    as syntax is backslash-escaped, so it shows literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text or "").split()))


def ago(moment: datetime | None, now: datetime | None = None) -> str:
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


def score(value: object) -> str:
    return (
        f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"
    )


def flat(text: object, limit: int = 400) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
