"""What the admin console's tabs share: inert Markdown text, clock and UTC times, losses,
a job's heading line, who is asking (a logged-in admin, re-checked against the store)
and the line a refused action shows.

Only these small pieces live here; each tab's work is its own module's
(`ui.admin_import`, `ui.admin_training`, `ui.admin_versions`, `ui.admin_held`), and
the page is `ui.admin`'s.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chatbot.ui.handlers import EventOptions

if TYPE_CHECKING:
    from chatbot.jobs.records import JobInfo
    from chatbot.web.auth import SignedRequest
    from chatbot.web.services import Services

PRIVATE: EventOptions = {"api_visibility": "private"}
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md_text(value: object) -> str:
    """`value` as inert Markdown text: no HTML, no formatting, no table breaks."""
    text = html.escape(str(value), quote=False).replace("\r", " ").replace("\n", " ")
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def utc_text(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def loss_text(value: object) -> str:
    from chatbot.models.versions import metric_number

    number = metric_number(value)
    return "-" if number is None else f"{number:.4f}"


# -- who is asking --------------------------------------------------------------------------


def admin_name(services: Services, request: SignedRequest | None) -> str:
    """The logged-in admin's username, re-checked against the store (AccessDenied if not)."""
    from chatbot.web.auth import ADMIN_ROLES, current_user

    return current_user(services, request, ADMIN_ROLES).username


def job_head(job: JobInfo) -> str:
    who = f" by {md_text(job.created_by)}" if job.created_by else ""
    return f"Job {job.id} · **{job.status}** · started{who} at {utc_text(job.created_at)} UTC"


def refused(exc: Exception) -> str:
    """The line an action shows when the asker is not a logged-in admin."""
    return f"**Refused:** {md_text(exc)}"
