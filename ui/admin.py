"""The admin console at `/admin`: import transcripts (files or a folder) and rebuild the
index, start / watch / cancel a training run, compare model versions and promote or roll
back, approve or discard agents' answers held back for personal data, and the analytics tab.

Long work never runs in the web process: training and index rebuilds are background jobs
(`chatbot.jobs`) in their own processes, which this page starts, cancels and polls (a
`gr.Timer` runs while a job does; reopening the page shows the job that runs). Imports
run in the request, with progress, since they are one transaction per file.

This module lays the page out, polls the jobs and shows the serving notice; each tab is
its own module (`ui.admin_import`, `ui.admin_training`, `ui.admin_versions`,
`ui.admin_held`, `ui.admin_analytics`, `ui.admin_logins`), their handler logic plain
functions over `Services` (tested without a browser). Where the job ends: importing is
`chatbot.ingest`'s, jobs `chatbot.jobs`', promotion rules `chatbot.models.versions`', and
the login in front of the page `chatbot.app`'s. Everything from files, the store or
a user is escaped before it is shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatbot.ui.admin_common import PRIVATE, admin_name, md_text
from chatbot.ui.admin_held import held_tab
from chatbot.ui.admin_import import import_tab, index_status
from chatbot.ui.admin_training import training_tab, training_view
from chatbot.ui.admin_versions import versions_tab
from chatbot.ui.views import Outputs

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.ui.admin_analytics import AnalyticsTab
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

TITLE = "Support assistant — admin"


def serving_notice(services: Services) -> str:
    """Markdown at the top of the console while the app serves in a degraded state (an
    older index standing in for a damaged one, no usable reply model, a read-only
    database); empty while everything serves as configured."""
    from chatbot.web.readiness import readiness

    problems = [
        f"**{name}:** {md_text(check.detail)}"
        for name, check in readiness(services).items()
        if check.degraded or not check.ok
    ]
    if not problems:
        return ""
    return "### Serving in a degraded state\n" + "  \n".join(problems)


def _analytics_tab() -> Callable[[Services], AnalyticsTab] | None:
    try:
        from chatbot.ui.admin_analytics import analytics_tab
    except ImportError as exc:  # the tab is optional: the rest of the console works without it
        log.warning("admin console: no Analytics tab (%s)", exc)
        return None
    return analytics_tab


def build_admin_console(services: Services) -> gr.Blocks:
    import gradio as gr

    from chatbot.web.auth import LOGOUT_FORM

    console = gr.Blocks(title=TITLE, analytics_enabled=False)
    with console:
        with gr.Row():
            gr.Markdown("## Admin console")
            gr.HTML(LOGOUT_FORM, elem_id="logout-form", elem_classes=["logout-form"])
        health_notice = gr.Markdown(elem_id="serving-health")
        timer = gr.Timer(services.settings.web.poll_seconds, active=False)
        index_progress = import_tab(services, timer)
        training = training_tab(services, timer)
        versions_tab(services, console)
        held_tab(services)
        with gr.Tab("Analytics", id="analytics-tab"):
            tab = _analytics_tab()
            if tab is None:
                gr.Markdown("Analytics are not available in this installation.")
            else:
                tab(services)
        with gr.Tab("Logins", id="logins-tab") as logins:
            from chatbot.ui.admin_logins import failed_logins_frame, logins_tab

            logins_table = logins_tab(services, lambda request: admin_name(services, request))

        def refresh_jobs() -> Outputs:
            """The training run's and the index rebuild's progress; the poll runs while either does."""
            view = training_view(services)
            index_text, index_active = index_status(services)
            return {
                **view.updates(training),
                index_progress: index_text,
                timer: gr.Timer(active=view.running or index_active),
            }

        jobs_outputs = [training.progress, training.curve, index_progress, timer]
        timer.tick(refresh_jobs, None, jobs_outputs, show_progress="hidden", **PRIVATE)
        console.load(refresh_jobs, None, jobs_outputs, **PRIVATE)
        logins.select(lambda: failed_logins_frame(services), None, [logins_table], **PRIVATE)
        console.load(lambda: serving_notice(services), None, health_notice, **PRIVATE)
    return console
