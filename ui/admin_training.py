"""The admin console's Training tab: start a training run (its minutes and kind),
watch its progress and loss curve, cancel it.

A run is a background job (`chatbot.jobs`) in its own process; this tab starts and
cancels it, and the page's job poll (`ui.admin`) redraws what `training_view` says.
Where its job ends: training is `chatbot.training`'s, the jobs `chatbot.jobs`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.errors import AccessDenied, ChatbotError
from chatbot.ui.admin_common import (
    PRIVATE,
    admin_name,
    clock_text,
    job_head,
    loss_text,
    md_text,
    refused,
)
from chatbot.ui.handlers import fills
from chatbot.ui.views import Outputs

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

    from chatbot.jobs.records import JobInfo
    from chatbot.web.services import Services

MODE_CHOICES = [("LoRA adapters (faster)", "lora"), ("Full fine-tuning", "full")]
# Both series named up front: the plot keeps the series it saw first otherwise.
CURVE_COLORS = {"training": "#2563eb", "validation": "#ea580c"}


def training_markdown(job: JobInfo | None) -> str:
    if job is None:
        return "No training run yet. Choose the minutes and the kind of training, then **Start training**."
    p = job.progress
    lines = [job_head(job)]
    mode = job.params.get("mode")
    minutes = job.params.get("minutes")
    settings_line = []
    if mode:
        settings_line.append("LoRA" if mode == "lora" else "full fine-tuning")
    if minutes:
        settings_line.append(f"at most {minutes:g} minutes")
    if settings_line:
        lines.append(" · ".join(settings_line))
    step, total = p.get("step") or 0, p.get("total_steps")
    if job.status in ("queued", "running"):
        phase = p.get("phase", "starting")
        if phase == "training" and total:
            eta = p.get("eta_s")
            lines.append(
                f"Step {step:,} of {total:,} ({100 * step / total:.0f}%) · elapsed {clock_text(p.get('elapsed_s'))}"
                + (f" · about {clock_text(eta)} left" if eta is not None else "")
            )
        else:
            lines.append(
                f"{md_text(p.get('message', 'starting'))} · elapsed {clock_text(p.get('elapsed_s'))}"
            )
    elif job.status == "succeeded":
        lines.append(md_text(job.result.get("summary", "finished")))
    elif job.status == "failed":
        lines.append(f"Failed: {md_text(job.error or 'unknown error')}")
    elif job.status == "cancelled":
        at = f"Stopped at step {step:,} of {total:,}. " if total else ""
        lines.append(at + md_text(job.result.get("message", "Cancelled.")))
    losses = []
    if p.get("train_loss") is not None:
        losses.append(f"training loss {loss_text(p['train_loss'])}")
    if p.get("best_val_loss") is not None:
        losses.append(f"best validation loss {loss_text(p['best_val_loss'])}")
    if p.get("baseline_val_loss") is not None:
        losses.append(f"before training {loss_text(p['baseline_val_loss'])}")
    if losses and job.status != "succeeded":
        lines.append(" · ".join(losses))
    return "  \n".join(lines)


def loss_frame(job: JobInfo | None) -> pd.DataFrame | None:
    """The loss curve: one row per point, series "training" or "validation"; None when
    there is no point yet (Gradio 6.31's LinePlot draws no line again after it was
    given an empty frame, until the page is reloaded; None leaves it working)."""
    import pandas as pd

    rows = []
    if job is not None:
        for point in job.progress.get("train_curve") or []:
            rows.append({"step": point["step"], "loss": point["train_loss"], "series": "training"})
        for point in job.progress.get("val_curve") or []:
            rows.append({"step": point["step"], "loss": point["val_loss"], "series": "validation"})
    if not rows:
        return None
    # The plot takes its series (the colour scale's domain) from the first frame it
    # draws and never adds one later, and a run's first frame holds only the baseline
    # validation point: every series is named from the start, one without points yet
    # by an empty point (NaN loss, drawn as nothing).
    present = {row["series"] for row in rows}
    first_step = min(row["step"] for row in rows)
    rows += [
        {"step": first_step, "loss": float("nan"), "series": s}
        for s in CURVE_COLORS
        if s not in present
    ]
    frame = pd.DataFrame(rows, columns=["step", "loss", "series"])
    return frame.astype({"step": "int64", "loss": "float64", "series": "object"})


@dataclass
class TrainingView:
    markdown: str
    curve: pd.DataFrame | None
    running: bool
    job_id: int | None = None

    def updates(self, widgets: TrainingWidgets) -> Outputs:
        """What the tab shows of it: the progress lines and the loss curve."""
        return {widgets.progress: self.markdown, widgets.curve: self.curve}


def training_view(services: Services, note: str | None = None) -> TrainingView:
    from chatbot.jobs.control import latest_job

    job = latest_job(services.database, "train")
    text = training_markdown(job)
    if note:
        text = f"{note}  \n{text}"
    return TrainingView(text, loss_frame(job), bool(job and job.active), job.id if job else None)


def start_training(
    services: Services, minutes: float | None, mode: str | None, username: str
) -> TrainingView:
    from chatbot.jobs import start_job

    params: dict[str, object] = {"mode": mode or services.settings.training.mode}
    if minutes is not None:
        params["minutes"] = minutes
    try:
        start_job(services.settings, services.database, "train", params, created_by=username)
    except ChatbotError as exc:
        return training_view(services, f"**Not started:** {md_text(exc)}")
    return training_view(services)


def cancel_training(services: Services, username: str) -> TrainingView:
    from chatbot.jobs import cancel_job
    from chatbot.jobs.control import latest_job

    job = latest_job(services.database, "train")
    if job is None or not job.active:
        return training_view(services, "No training run is running.")
    try:
        cancel_job(services.database, job.id, by=username)
    except ChatbotError as exc:
        return training_view(services, f"**Not cancelled:** {md_text(exc)}")
    if job.progress.get("phase") == "finishing":
        note = "The run is already writing its model version; it finishes in a moment."
    else:
        note = "Cancelling: the run stops at once and keeps its checkpoints."
    return training_view(services, note)


# -- the tab -------------------------------------------------------------------------------


@dataclass
class TrainingWidgets:
    """What the job poll redraws: the progress lines and the loss curve."""

    progress: gr.Markdown
    curve: gr.LinePlot


def training_tab(services: Services, timer: gr.Timer) -> TrainingWidgets:
    """Lay out and wire the Training tab (inside the page's Blocks)."""
    import gradio as gr

    with gr.Tab("Training", id="training-tab"):
        with gr.Row():
            minutes = gr.Number(
                value=services.settings.training.max_minutes or 13,
                minimum=1,
                maximum=7 * 24 * 60,
                label="Minutes (the whole run, at most)",
                elem_id="train-minutes",
            )
            mode = gr.Radio(
                MODE_CHOICES,
                value=services.settings.training.mode,
                label="Training",
                elem_id="train-mode",
            )
        with gr.Row():
            start_button = gr.Button("Start training", variant="primary", elem_id="start-training")
            cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel-training")
        progress = gr.Markdown(elem_id="training-progress")
        curve = gr.LinePlot(
            None,
            x="step",
            y="loss",
            color="series",
            title="Loss",
            color_map=CURVE_COLORS,
            x_title="step",
            y_title="loss (per reply token)",
            elem_id="loss-curve",
        )
    widgets = TrainingWidgets(progress, curve)

    @fills(request=gr.Request)
    def do_start(
        minutes_value: float | None, mode_value: str | None, request: gr.Request
    ) -> Outputs:
        try:
            view = start_training(
                services, minutes_value, mode_value, admin_name(services, request)
            )
        except AccessDenied as exc:
            return {progress: refused(exc), curve: gr.skip(), timer: gr.skip()}
        return {
            **view.updates(widgets),
            timer: gr.Timer(active=True) if view.running else gr.skip(),
        }

    @fills(request=gr.Request)
    def do_cancel(request: gr.Request) -> Outputs:
        try:
            view = cancel_training(services, admin_name(services, request))
        except AccessDenied as exc:
            return {progress: refused(exc), curve: gr.skip()}
        return view.updates(widgets)

    start_button.click(do_start, [minutes, mode], [progress, curve, timer], **PRIVATE)
    cancel_button.click(do_cancel, None, [progress, curve], **PRIVATE)
    return widgets
