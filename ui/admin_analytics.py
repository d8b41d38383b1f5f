"""The Analytics tab of the admin console: a period chooser, the figures of
`chatbot.analytics` as a Markdown table with their counts and definitions, and two
plots (per-day conversations / hand-offs / automated, and hand-offs by reason).

Only builds components and formats figures; computing them is `chatbot.analytics`'
job, and the console around the tab (login, other tabs) is `ui.admin`'s. Every string
from the store (reasons, usernames) is escaped before it goes into Markdown.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chatbot import analytics as an
from chatbot.errors import AccessDenied, ChatbotError, InputError
from chatbot.ui.handlers import fills

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

    from chatbot.web.services import Services

LAST_24_HOURS = "Last 24 hours"
LAST_7_DAYS = "Last 7 days"
LAST_30_DAYS = "Last 30 days"
ALL_TIME = "All time"
BETWEEN_DATES = "Between dates"
PERIOD_CHOICES = (LAST_24_HOURS, LAST_7_DAYS, LAST_30_DAYS, ALL_TIME, BETWEEN_DATES)
DEFAULT_PERIOD = LAST_7_DAYS
SERIES_COLORS = {"conversations": "#2563eb", "hand-offs": "#ea580c", "automated": "#16a34a"}

DEFINITIONS = """\
**What the figures mean.** Only live chats count (imported history never does); times are UTC.
*Conversations*, *automated resolution* and *hand-offs* are about the conversations **started** in the period;
the other figures about what **happened** in it (decisions, ratings, messages, hand-offs begun).

- *Automated resolution*: the assistant sent at least one answer, no human was ever involved
  (no hand-off or take-over, no agent message) and the customer gave none of its replies a thumbs-down;
  an agent approving an answer the customer already had is only a review. A greeting answered, a polite
  decline or a clarifying question is no answer.
- *Hand-off rate*: conversations handed to a human ÷ conversations; by the reason of their first hand-off,
  grouped by prefix ("loop: asked 3 times" counts as "loop").
- *Agents' decisions*: approve / edit / reject of suggested replies; each rate is over all three.
- *Thumbs-up ratio*: ups ÷ (ups + downs).
- *Assistant's first reply*: from a customer message to the assistant's reply to it (answer, greeting,
  decline, clarifying question, hold or hand-off notice).
- *Humans' first reply*: from the start of a hand-off (the customer message that triggered it) to the first message
  an agent sent after it; hand-offs handed back or still waiting without one are counted as unanswered.
- Median and p95 interpolate between the closest ranks; *n* is how many values a figure rests on.
"""

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md_text(value: object) -> str:
    """`value` as inert Markdown text: no HTML, no formatting, no table breaks."""
    text = html.escape(str(value), quote=False).replace("\r", " ").replace("\n", " ")
    # '&' and ';' stay as they are so that the entities just made still work.
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def choose_period(
    choice: str | None,
    first: str | None = None,
    final: str | None = None,
    *,
    now: datetime | None = None,
) -> an.Period:
    """The period the chooser names; dates are YYYY-MM-DD (UTC days, both included)."""
    now = now or datetime.now(UTC)
    if choice == LAST_24_HOURS:
        return an.last(hours=24, now=now)
    if choice == LAST_7_DAYS:
        return an.last(days=7, now=now)
    if choice == LAST_30_DAYS:
        return an.last(days=30, now=now)
    if choice == ALL_TIME:
        return an.all_time()
    if choice == BETWEEN_DATES:
        return an.between(an.parse_day(first, what="start"), an.parse_day(final, what="end"))
    raise InputError(f"unknown period {choice!r}; choose one of: {', '.join(PERIOD_CHOICES)}")


# -- formatting ------------------------------------------------------------------------


def format_rate(rate: an.Rate) -> str:
    if rate.value is None:
        return "no data (n = 0)"
    return f"{rate.value:.1%} ({rate.count} of {rate.total})"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s"
    hours, rest = divmod(round(seconds), 3600)
    if hours < 48:
        return f"{hours} h {rest // 60} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _durations_row(name: str, durations: an.Durations, extra: str = "") -> str:
    if durations.n == 0:
        return f"| {name} | no data | — | 0{extra} |"
    return f"| {name} | {format_seconds(durations.median)} | {format_seconds(durations.p95)} | {durations.n}{extra} |"


def numbers_markdown(result: an.Analytics) -> str:
    """The figures as a Markdown table, then the agents' table, then the definitions."""
    r = result
    ups = r.thumbs_up
    lines = [
        f"### {md_text(r.period.label.capitalize())}",
        "",
        "| figure | value | detail |",
        "|---|---|---|",
        f"| Conversations | {r.conversations} | live chats started in the period |",
        f"| Automated resolution | {format_rate(r.automated)} | without any human |",
        f"| Hand-off rate | {format_rate(r.handed_off)} | handed to a human |",
    ]
    for reason in r.handoff_reasons:
        lines.append(
            f"| · {md_text(reason.reason)} | {format_rate(reason.handoffs)} | hand-off reason |"
        )
    lines += [
        f"| Agents approved | {format_rate(r.approved)} | of {r.decisions} decisions on suggestions |",
        f"| Agents edited | {format_rate(r.edited)} | of {r.decisions} decisions on suggestions |",
        f"| Agents rejected | {format_rate(r.rejected)} | of {r.decisions} decisions on suggestions |",
        f"| Thumbs-up ratio | {format_rate(ups)} | {ups.count} up, {ups.total - ups.count} down |",
        "",
        "| first reply | median | p95 | n |",
        "|---|---|---|---|",
        _durations_row("Assistant", r.assistant_first_reply),
        _durations_row(
            "Humans", r.human_first_reply, f" ({r.human_unanswered} hand-offs unanswered)"
        ),
    ]
    if r.decisions_by_agent:
        lines += [
            "",
            "| agent | approved | edited | rejected | decisions |",
            "|---|---|---|---|---|",
        ]
        for a in r.decisions_by_agent:
            lines.append(
                f"| {md_text(a.username)} | {a.approve} | {a.edit} | {a.reject} | {a.total} |"
            )
    lines += ["", DEFINITIONS]
    return "\n".join(lines)


def daily_frame(days: list[an.DayCounts]) -> pd.DataFrame:
    """Long form for a LinePlot: day, series, count."""
    import pandas as pd

    rows = [
        (day.day, name, value)
        for day in days
        for name, value in zip(
            an.DAILY_SERIES, (day.conversations, day.handoffs, day.automated), strict=True
        )
    ]
    return pd.DataFrame(
        {
            "day": pd.to_datetime(pd.Series([r[0] for r in rows], dtype="object")).astype(
                "datetime64[ms]"
            ),
            "series": pd.Series([r[1] for r in rows], dtype="str"),
            "count": pd.Series([r[2] for r in rows], dtype="int64"),
        }
    )


def reasons_frame(reasons: list[an.ReasonCount]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "reason": pd.Series([r.reason for r in reasons], dtype="str"),
            "hand-offs": pd.Series([r.handoffs.count for r in reasons], dtype="int64"),
        }
    )


# -- the tab ---------------------------------------------------------------------------


def refresh_analytics(
    services: Services,
    choice: str | None,
    first: str | None = None,
    final: str | None = None,
    *,
    now: datetime | None = None,
) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """(numbers Markdown, per-day frame, reasons frame) for the chosen period; a bad
    period or a failing store becomes a message in place of the numbers."""
    try:
        period = choose_period(choice, first, final, now=now)
        with services.database.session() as session:
            result = an.compute_analytics(session=session, period=period)
    except ChatbotError as exc:
        return f"**Cannot show analytics:** {md_text(exc)}", daily_frame([]), reasons_frame([])
    return (
        numbers_markdown(result),
        daily_frame(result.daily),
        reasons_frame(result.handoff_reasons),
    )


@dataclass
class AnalyticsTab:
    """The components of the tab, and its refresh handler (for tests and for wiring)."""

    period: gr.Radio
    first: gr.DateTime
    final: gr.DateTime
    refresh_button: gr.Button
    numbers: gr.Markdown
    daily: gr.LinePlot
    reasons: gr.BarPlot
    refresh: Callable[
        [str | None, str | None, str | None, gr.Request], tuple[str, pd.DataFrame, pd.DataFrame]
    ]


def analytics_tab(services: Services) -> AnalyticsTab:
    """Build the tab's components in the current Blocks context (inside a `gr.Tab`);
    they fill on page load, on a period change and on Refresh. The handler re-checks
    on every call that the caller (`gr.Request.username`) is still an active admin."""
    import gradio as gr
    from gradio.context import get_blocks_context

    from chatbot.web.auth import ADMIN_ROLES, current_user

    blocks = get_blocks_context()
    if blocks is None:
        raise RuntimeError("analytics_tab must be called inside a gr.Blocks context")

    with gr.Row():
        period = gr.Radio(
            list(PERIOD_CHOICES),
            value=DEFAULT_PERIOD,
            label="Period",
            elem_id="analytics-period",
            scale=3,
        )
        first = gr.DateTime(
            include_time=False,
            type="string",
            label="From (UTC day)",
            elem_id="analytics-from",
            scale=1,
        )
        final = gr.DateTime(
            include_time=False,
            type="string",
            label="To (UTC day, included)",
            elem_id="analytics-to",
            scale=1,
        )
        refresh_button = gr.Button("Refresh", elem_id="analytics-refresh", scale=0, min_width=100)
    numbers = gr.Markdown("_Loading…_", elem_id="analytics-numbers")
    daily, reasons = _plots()

    @fills(request=gr.Request)
    def refresh(
        choice: str | None, start: str | None, end: str | None, request: gr.Request
    ) -> tuple[str, pd.DataFrame, pd.DataFrame]:
        try:
            current_user(services, request, ADMIN_ROLES)  # a removed or demoted admin sees nothing
        except AccessDenied as exc:
            return f"**Refused:** {md_text(exc)}", daily_frame([]), reasons_frame([])
        return refresh_analytics(services, choice, start, end)

    # Typing a date means "between dates"; the change of period then refreshes.
    for field in (first, final):
        field.change(lambda: BETWEEN_DATES, outputs=period, api_visibility="private", queue=False)
    gr.on(
        [blocks.root_block.load, refresh_button.click, period.change],
        refresh,
        inputs=[period, first, final],
        outputs=[numbers, daily, reasons],
        api_visibility="private",
    )
    return AnalyticsTab(period, first, final, refresh_button, numbers, daily, reasons, refresh)


def _plots() -> tuple[gr.LinePlot, gr.BarPlot]:
    """The per-day lines and the hand-offs by reason, side by side."""
    import gradio as gr

    with gr.Row():
        # The browser fixes a plot's colour domain from its first value and later only
        # swaps the data: start with every series present, or later lines are not drawn.
        placeholder = [an.DayCounts(datetime.now(UTC).date(), 0, 0, 0)]
        daily = gr.LinePlot(
            daily_frame(placeholder),
            x="day",
            y="count",
            color="series",
            color_map=SERIES_COLORS,
            title="Per day (UTC)",
            x_title="day",
            y_title="conversations",
            y_lim=[0, None],
            elem_id="analytics-daily",
        )
        reasons = gr.BarPlot(
            reasons_frame([]),
            x="reason",
            y="hand-offs",
            title="Hand-offs by reason",
            x_title="reason",
            y_title="conversations",
            y_lim=[0, None],
            sort="-y",
            elem_id="analytics-reasons",
        )
    return daily, reasons
