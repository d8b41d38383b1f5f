"""A job's progress record: what the worker writes into `jobs.progress` for the console
to show. `ProgressWriter` throttles the database writes; `TrainingProgress` turns the
training loop's events (baseline, step, validation, finishing) into the current step,
total steps, elapsed time, an ETA and the loss curve. Drawing it is the console's job."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chatbot.jobs import repository as repo

if TYPE_CHECKING:
    from chatbot.store.database import Database

log = logging.getLogger(__name__)

MAX_CURVE_POINTS = 1000


class ProgressWriter:
    """Writes a job's progress at most every `interval` seconds (or at once when forced)."""

    def __init__(self, database: Database, job_id: int, *, interval: float = 1.0) -> None:
        self.database = database
        self.job_id = job_id
        self.interval = interval
        self._last = float("-inf")
        self._pending: dict[str, Any] | None = None

    def __call__(self, progress: dict[str, Any], *, force: bool = False) -> None:
        self._pending = progress
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self._pending is None:
            return
        record = {**self._pending, "updated_at": datetime.now(UTC).isoformat()}
        with self.database.session() as session:
            repo.update_if(
                session=session, job_id=self.job_id, states=("running",), progress=record
            )
        self._last = time.monotonic()
        self._pending = None


def _thin(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every other point once the curve is long (the last one always kept)."""
    if len(points) <= MAX_CURVE_POINTS:
        return points
    return points[:-1:2] + points[-1:]


class TrainingProgress:
    """The `progress` callback of `run_training` for a job: keeps the state and hands
    it to `write` (a ProgressWriter) after each event."""

    def __init__(self, write: ProgressWriter) -> None:
        self.write = write
        self.started = time.monotonic()
        self.state: dict[str, Any] = {
            "phase": "starting",
            "message": "loading the model and the training pairs",
            "step": 0,
            "total_steps": None,
            "elapsed_s": 0.0,
            "eta_s": None,
            "train_loss": None,
            "best_val_loss": None,
            "baseline_val_loss": None,
            "train_curve": [],
            "val_curve": [],
        }
        self._first: tuple[int, float] | None = None  # (step, loop seconds) of the first step seen

    def set(self, *, force: bool = True, **values: object) -> None:
        self.state.update(values)
        self.state["elapsed_s"] = round(time.monotonic() - self.started, 1)
        self.write(dict(self.state), force=force)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        s = self.state
        if kind == "baseline":
            s["val_curve"] = [{"step": 0, "val_loss": event["val_loss"]}]
            self.set(
                phase="training",
                message="training",
                total_steps=event["total_steps"],
                baseline_val_loss=event["val_loss"],
                best_val_loss=event["val_loss"],
            )
        elif kind == "step":
            step, loop_s = event["step"], float(event["elapsed_s"])
            if self._first is None:
                self._first = (step, loop_s)  # a resumed run's first step is not step 1
            first_step, first_s = self._first
            per_step = (
                (loop_s - first_s) / (step - first_step)
                if step > first_step
                else loop_s / max(step, 1)
            )
            eta = (event["total_steps"] - step) * per_step
            if event.get("budget_s"):
                eta = min(eta, max(0.0, event["budget_s"] - loop_s))
            s["train_curve"] = _thin(
                [*s["train_curve"], {"step": step, "train_loss": event["train_loss"]}]
            )
            self.set(
                force=False,
                phase="training",
                message="training",
                step=step,
                total_steps=event["total_steps"],
                train_loss=event["train_loss"],
                lr=event.get("lr"),
                eta_s=round(max(eta, 0.0), 1),
            )
        elif kind == "validation":
            s["val_curve"] = [
                *s["val_curve"],
                {"step": event["step"], "val_loss": event["val_loss"]},
            ]
            self.set(best_val_loss=event["best_val_loss"])
        elif kind == "finishing":
            self.set(
                phase="finishing",
                message=event.get("message", "writing the model version"),
                eta_s=None,
            )
        else:
            log.debug("training event %r not shown", kind)
