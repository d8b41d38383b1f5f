"""The admin console's Versions tab: the reply-model versions and the rankers, newest
first, with their evaluations; promote any version by its name, roll back the reply
model or the ranker; the line saying what serves now.

Where its job ends: the promotion rules are `chatbot.models.versions`'; serving
processes follow a promotion by themselves (`chatbot.models`, `chatbot.ranking`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatbot.errors import AccessDenied, ChatbotError
from chatbot.store.enums import PairOrigin
from chatbot.ui.admin_common import PRIVATE, admin_name, loss_text, md_text, refused, utc_text
from chatbot.ui.handlers import fills
from chatbot.ui.views import Outputs

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

    from chatbot.web.services import Services

log = logging.getLogger(__name__)

AGENT_ORIGINS = (PairOrigin.AGENT_APPROVED, PairOrigin.AGENT_EDITED)
VERSION_COLUMNS = [
    "version",
    "status",
    "created (UTC)",
    "mode",
    "steps",
    "val loss before",
    "val loss",
    "compared with",
    "its val loss",
    "val pairs",
    "train pairs",
    "from agents",
    "reply evaluation",
]

RANKER_COLUMNS = [
    "ranker",
    "status",
    "created (UTC)",
    "steps",
    "gain over retrieval (ROUGE-L)",
    "val pairs",
    "train pairs",
    "verdict",
]

VERSION_WIDTHS: list[str | int] = [
    "190px",
    "110px",
    "140px",
    "70px",
    "70px",
    "90px",
    "90px",
    "170px",
    "90px",
    "70px",
    "70px",
    "80px",
    "360px",
]


def agent_pairs(snapshot: dict[str, Any]) -> int | None:
    """How many of a version's training pairs came from agents' approvals and edits."""
    by_origin = snapshot.get("train_by_origin")
    if not isinstance(by_origin, dict):
        return None
    return sum(int(by_origin.get(origin, 0)) for origin in AGENT_ORIGINS)


def _empty_versions() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([], columns=VERSION_COLUMNS)


def _empty_rankers() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([], columns=RANKER_COLUMNS)


def versions_frame(services: Services) -> pd.DataFrame:
    import pandas as pd

    from chatbot.evaluation.record import evaluation_line
    from chatbot.models.versions import list_versions

    rows = []
    for v in list_versions(services.database):
        m, e, snap = v.metrics, v.evaluation, v.data_snapshot
        agents = agent_pairs(snap)
        rows.append(
            [
                v.name,
                "serving" if v.status == "promoted" else v.status,
                utc_text(v.created_at)[:16],
                str(v.settings.get("mode") or m.get("mode") or "-"),
                str(m.get("steps", "-")),
                loss_text(m.get("val_loss_before")),
                loss_text(e.get("val_loss", m.get("val_loss"))),
                str(e.get("compared_with") or "-"),
                loss_text(e.get("compared_val_loss")),
                str(e.get("val_pairs", "-")),
                str(snap.get("train_pairs", "-")),
                "-" if agents is None else str(agents),
                evaluation_line(e) or "-",
            ]
        )
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


def rankers_frame(services: Services) -> pd.DataFrame:
    """The ranker versions (`chatbot ranker list`), newest first: whether each one's picks
    beat retrieval's on its validation questions, and by how much."""
    import pandas as pd

    from chatbot.models.versions import list_versions, metric_number

    rows = []
    for v in list_versions(services.database, kind="ranker"):
        e, snap = v.evaluation, v.data_snapshot
        gain, stderr = metric_number(e.get("gain")), metric_number(e.get("gain_stderr"))
        rows.append(
            [
                v.name,
                "serving" if v.status == "promoted" else v.status,
                utc_text(v.created_at)[:16],
                str(v.metrics.get("steps", "-")),
                "-"
                if gain is None
                else f"{gain:+.3f}" + ("" if stderr is None else f" ± {stderr:.3f}"),
                str(e.get("val_pairs", "-")),
                str(snap.get("train_pairs", "-")),
                str(e.get("why") or "-"),
            ]
        )
    return pd.DataFrame(rows, columns=RANKER_COLUMNS)


def serving_line(services: Services) -> str:
    from chatbot.models.versions import promoted_version

    current = promoted_version(services.database)
    ranker = promoted_version(services.database, kind="ranker")
    reply = (
        f"Serving: **{md_text(current.name)}**"
        if current
        else "Serving: **the base model** (no version promoted)"
    )
    return reply + (
        f"; ranker **{md_text(ranker.name)}**"
        if ranker
        else "; no ranker (retrieval and the critique choose)"
    )


def promote_by_name(services: Services, name: str, force: bool, username: str) -> str:
    from chatbot.models.versions import promote

    name = (name or "").strip()
    if not name:
        return "Type the name of a version to promote."
    try:
        version, previous = promote(services.database, name, force=bool(force))
    except ChatbotError as exc:
        text = str(exc).replace(
            "promote it with --force", "tick “Promote even if it evaluated worse” (--force)"
        )
        return f"**Refused:** {md_text(text)}  \n{serving_line(services)}"
    log.info("admin %s promoted %s%s", username, version.name, " (forced)" if force else "")
    was = f" (was {md_text(previous.name)})" if previous else ""
    return f"Promoted **{md_text(version.name)}**{was}; servers pick it up within seconds.  \n{serving_line(services)}"


def rollback_serving(services: Services, username: str, kind: str = "reply") -> str:
    from chatbot.models.versions import rollback

    try:
        retired, restored = rollback(services.database, kind=kind)
    except ChatbotError as exc:
        return f"**Refused:** {md_text(exc)}  \n{serving_line(services)}"
    log.info("admin %s rolled back %s", username, retired.name)
    base = "the base model" if kind == "reply" else "no ranker"
    now = md_text(restored.name) if restored else base
    return (
        f"Rolled back **{md_text(retired.name)}**; now serving {now}.  \n{serving_line(services)}"
    )


# -- the tab -------------------------------------------------------------------------------


def versions_tab(services: Services, page: gr.Blocks) -> None:
    """Lay out and wire the Versions tab (inside the page's Blocks); the tables are
    drawn when the page loads and whenever the tab is chosen."""
    import gradio as gr

    with gr.Tab("Versions", id="versions-tab") as tab:
        gr.Markdown(
            "Promote any version by its name, a reply model or a ranker (below the tables). "
            "Reply-model versions, newest first. Validation losses are on each run's own validation "
            'pairs, beside the version serving when it was trained ("compared with"); "from agents" '
            "counts the training pairs that came from agents' approvals and edits."
        )
        versions = gr.Dataframe(
            _empty_versions(),
            interactive=False,
            wrap=True,
            elem_id="versions",
            column_widths=VERSION_WIDTHS,
        )
        gr.Markdown(
            "Rankers, newest first: the model that chooses among the candidate replies. One "
            "is kept (and can be promoted without forcing) only when its picks beat "
            "retrieval's on its validation questions by more than two standard errors."
        )
        rankers = gr.Dataframe(_empty_rankers(), interactive=False, wrap=True, elem_id="rankers")
        with gr.Row():
            promote_name = gr.Textbox(
                label="Version to promote",
                placeholder="reply-20260101-120000",
                elem_id="promote-name",
                scale=3,
            )
            force = gr.Checkbox(
                label="Promote even if it evaluated worse", elem_id="force-promote", scale=1
            )
        with gr.Row():
            promote_button = gr.Button("Promote", variant="primary", elem_id="promote")
            rollback_button = gr.Button("Roll back the reply model", elem_id="rollback")
            rollback_ranker_button = gr.Button("Roll back the ranker", elem_id="rollback-ranker")
        status = gr.Markdown(elem_id="versions-status")

    def after(text: str) -> Outputs:
        return {status: text, versions: versions_frame(services), rankers: rankers_frame(services)}

    def unchanged(text: str) -> Outputs:
        return {status: text, versions: gr.skip(), rankers: gr.skip()}

    @fills(request=gr.Request)
    def do_promote(name: str, force_value: bool, request: gr.Request) -> Outputs:
        try:
            return after(
                promote_by_name(services, name, force_value, admin_name(services, request))
            )
        except AccessDenied as exc:
            return unchanged(refused(exc))

    def rollback_handler(kind: str) -> Callable[[gr.Request], Outputs]:
        @fills(request=gr.Request)
        def do_rollback(request: gr.Request) -> Outputs:
            try:
                return after(rollback_serving(services, admin_name(services, request), kind=kind))
            except AccessDenied as exc:
                return unchanged(refused(exc))

        return do_rollback

    def refresh_versions() -> Outputs:
        return after(serving_line(services))

    outputs = [status, versions, rankers]
    promote_button.click(do_promote, [promote_name, force], outputs, **PRIVATE)
    rollback_button.click(rollback_handler("reply"), None, outputs, **PRIVATE)
    rollback_ranker_button.click(rollback_handler("ranker"), None, outputs, **PRIVATE)
    tab.select(refresh_versions, None, [versions, rankers, status], **PRIVATE)
    page.load(refresh_versions, None, [versions, rankers, status], **PRIVATE)
