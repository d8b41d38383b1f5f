"""A wall-clock budget for a transformers `Trainer` (sentence-transformers' trainers
included): `WallClockBudget` stops training at the first step boundary after its
deadline, remembers whether it did and the last loss logged, and can report each step.
The step and epoch budgets are the trainer's own (`max_steps`, `num_train_epochs`);
what a run does with its result is its caller's.

Importing this module imports transformers: import it inside the training code.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

__all__ = ["StepReport", "WallClockBudget"]

# (global step, total steps, last logged loss, seconds since the start): one call a step.
StepReport = Callable[[int, int, "float | None", float], None]


class WallClockBudget(TrainerCallback):
    """Stops training once `time.monotonic()` reaches `deadline` (None: never), checked
    at the end of each step, so the step under way always finishes. `started` is when
    the budget began (a monotonic time); `on_step`, when given, is called after every
    step. Afterwards `stopped_by_clock` says whether the clock ended training and
    `last_loss` is the last training loss the trainer logged."""

    def __init__(
        self, deadline: float | None, *, started: float, on_step: StepReport | None = None
    ) -> None:
        self.deadline = deadline
        self.started = started
        self.on_step = on_step
        self.stopped_by_clock = False
        self.last_loss: float | None = None

    @classmethod
    def seconds(
        cls, limit: float | None, *, started: float | None = None, on_step: StepReport | None = None
    ) -> WallClockBudget:
        """A budget of `limit` seconds (None: no limit) from `started` (default: now)."""
        start = time.monotonic() if started is None else started
        return cls(None if limit is None else start + limit, started=start, on_step=on_step)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: object,
    ) -> None:
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: object,
    ) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            control.should_training_stop = True
            self.stopped_by_clock = True
        if self.on_step is not None:
            self.on_step(state.global_step, state.max_steps, self.last_loss, now - self.started)
