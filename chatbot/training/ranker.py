"""Training a ranker version: `train_ranker(paths, ranker, training, database, retriever)`.

1. Pairs: the train pairs and the fixed validation subset from the store
   (`chatbot.training.data.load_training_data`, so the same pairs, origins and quality
   filter as the reply model). Replies are used in their slotted form
   ("Hi {customer_name}, ..."), the form retrieval indexes them in, so positives and
   negatives read alike.
2. Examples: each train pair's context with the agent's real reply (label 1); hard
   negatives, the replies retrieval finds for the same context in other conversations
   (the pair itself excluded, near-copies of the true reply skipped: they are not
   wrong), topped up with random replies of the train set when retrieval has too few;
   and suggestions agents rejected in the console, with the conversation they answered
   (label 0).
3. Training: a cross-encoder initialised from the configured sentence embedder's BERT
   (all-MiniLM-L6-v2 by default; sentence-transformers turns the embedder directory into
   a `BertForSequenceClassification` with a new one-logit head), trained with
   sentence-transformers' `CrossEncoderTrainer` and `BinaryCrossEntropyLoss`, within a
   wall-clock budget (`chatbot.models.training_budget.WallClockBudget`). No checkpoints are written.
4. Validation: on each validation pair, the retriever's top `retrieve_k` replies are
   the candidates; retrieval's own pick (its first hit), the promoted ranker's pick and
   the new ranker's pick are scored by ROUGE-L against the agent's real reply. The new
   ranker is kept only when its mean paired gain over the better of the other two is
   positive and above `min_gain_stderrs` standard errors.
5. The version: written to `<versions>/ranker-YYYYmmdd-HHMMSS` through a temporary
   directory and a rename, with meta.json; registered (kind "ranker") and promoted when
   kept and auto-promotion is on, registered as a candidate otherwise.

Steps 1 and 2 are `chatbot.training.ranker_data`'s, step 4 `chatbot.training.ranker_validation`'s.
Loading and applying a version is `chatbot.ranking.model`'s job; choosing what to send
is the dialogue manager's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.files import replace_directory
from chatbot.meta_file import META_FILE
from chatbot.ranking import RankerError
from chatbot.ranking.model import KIND, Ranker
from chatbot.training.ranker_data import Example, build_examples, load_pairs, rejected_replies
from chatbot.training.ranker_validation import validate

if TYPE_CHECKING:
    from sentence_transformers.cross_encoder import CrossEncoder

    from chatbot.config import DataPaths
    from chatbot.ranking.settings import RankerSettings
    from chatbot.retrieval.types import Retriever
    from chatbot.store.database import Database
    from chatbot.training.settings import TrainingSettings

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclass
class RankerResult:
    name: str
    path: str
    kept: bool  # won on validation by the acceptance rule
    promoted: bool
    why: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "kept": self.kept,
            "promoted": self.promoted,
            "why": self.why,
            "metrics": self.metrics,
        }


# -- training ----------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """sentence-transformers announces that it converts the embedder, and transformers
    that the new head is untrained: both expected here, so not shown."""
    from transformers.utils import logging as hf_logging

    st_logger = logging.getLogger("sentence_transformers")
    level, verbosity = st_logger.level, hf_logging.get_verbosity()
    st_logger.setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # unannotated in transformers
    try:
        yield
    finally:
        st_logger.setLevel(level)
        hf_logging.set_verbosity(verbosity)


def base_model(paths: DataPaths, rs: RankerSettings, device: str) -> tuple[CrossEncoder, Path]:
    """A fresh cross-encoder from the configured sentence embedder's weights: its BERT
    with a new one-logit classification head (sigmoid at prediction time)."""
    from chatbot.models.embedder import embedder_path
    from chatbot.models.offline import force_offline

    path = embedder_path(paths)
    force_offline()
    from sentence_transformers.cross_encoder import CrossEncoder
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated in transformers
    set_seed(rs.seed)  # the new head's initial weights
    try:
        with _quiet_loading():
            model = CrossEncoder(
                str(path),
                num_labels=1,
                max_length=rs.max_length,
                device=device,
                local_files_only=True,
            )
    except (OSError, ValueError) as exc:
        from chatbot.errors import ModelUnavailableError

        raise ModelUnavailableError(
            f"cannot build a ranker from the embedder at {path}: {exc}"
        ) from None
    return model, path


def fit(
    model: CrossEncoder,
    examples: Sequence[Example],
    rs: RankerSettings,
    *,
    device: str,
    started: float,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train `model` in place with `CrossEncoderTrainer`; returns what happened."""
    import datasets
    import torch
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import PrinterCallback, ProgressCallback

    datasets.disable_progress_bars()
    positives = sum(1 for e in examples if e.label > 0.5)
    negatives = len(examples) - positives
    pos_weight = (
        rs.pos_weight if rs.pos_weight is not None else max(1.0, negatives / max(1, positives))
    )
    dataset = datasets.Dataset.from_dict(
        {
            "query": [e.query for e in examples],
            "reply": [e.reply for e in examples],
            "label": [float(e.label) for e in examples],
        }
    )
    from chatbot.models.training_budget import WallClockBudget

    deadline = started + rs.max_minutes * 60 if rs.max_minutes is not None else None

    def report(step: int, total_steps: int, loss: float | None, elapsed: float) -> None:
        if progress is not None:
            progress(
                {
                    "event": "step",
                    "step": step,
                    "total_steps": total_steps,
                    "loss": loss,
                    "elapsed_s": elapsed,
                    "budget_s": None if deadline is None else deadline - started,
                }
            )

    budget = WallClockBudget(deadline, started=started, on_step=report)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(
        prefix="chatbot-ranker-"
    ) as scratch:  # nothing is saved there (save_strategy "no")
        args = CrossEncoderTrainingArguments(
            output_dir=scratch,
            num_train_epochs=rs.epochs,
            max_steps=rs.max_steps or -1,
            per_device_train_batch_size=rs.batch_size,
            learning_rate=rs.learning_rate,
            warmup_steps=rs.warmup_fraction,
            weight_decay=rs.weight_decay,
            seed=rs.seed,
            data_seed=rs.seed,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="steps",
            logging_steps=1,
            report_to="none",
            use_cpu=device == "cpu",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(pos_weight)))
        trainer = CrossEncoderTrainer(
            model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[budget]
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log line on stdout
        trainer.remove_callback(ProgressCallback)
        output = trainer.train()
    model.eval()
    steps = int(output.global_step)
    if budget.stopped_by_clock:
        why = "max_minutes"
    elif rs.max_steps is not None and steps >= rs.max_steps:
        why = "max_steps"
    else:
        why = "epochs"
    return {
        "steps": steps,
        "train_seconds": round(time.monotonic() - t0, 2),
        "train_loss": float(output.training_loss),
        "last_loss": budget.last_loss,
        "stopped_because": why,
        "pos_weight": float(pos_weight),
        "device": device,
    }


# -- the version -------------------------------------------------------------------------


def _version_name(versions_dir: Path, database: Database) -> str:
    from chatbot.models.versions import VersionError, get_version

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1, 1000):
        name = f"ranker-{stamp}" if i == 1 else f"ranker-{stamp}-{i}"
        if (versions_dir / name).exists() or (versions_dir / f".{name}.tmp").exists():
            continue
        try:
            get_version(database, name)
        except VersionError:
            return name
    raise RankerError(f"cannot find a free ranker version name in {versions_dir}")


def write_version(model: CrossEncoder, meta: dict[str, Any], versions_dir: Path, name: str) -> Path:
    """Save the model and its meta.json in a temporary directory, then rename it into
    place: an interrupted save never leaves a version that looks whole."""
    versions_dir.mkdir(parents=True, exist_ok=True)
    final = versions_dir / name
    stage = versions_dir / f".{name}.tmp"
    if stage.exists():
        shutil.rmtree(stage)
    try:
        model.save(str(stage))
        (stage / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        replace_directory(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return final


def _promoted(
    rs: RankerSettings, database: Database, device: str
) -> tuple[Ranker | None, str | None]:
    """The promoted ranker to compare against (None when none), and why it was left out
    when it cannot be loaded."""
    from chatbot.errors import ModelUnavailableError
    from chatbot.models.versions import promoted_version

    version = promoted_version(database, KIND)
    if version is None:
        return None, None
    try:
        return Ranker.load(version.path, device=device, batch_size=rs.score_batch_size), None
    except ModelUnavailableError as exc:
        log.warning(
            "ranker: the promoted %s cannot be loaded, comparing with retrieval only: %s",
            version.name,
            exc,
        )
        return None, f"the promoted {version.name} cannot be loaded: {exc}"


def train_ranker(
    paths: DataPaths,
    rs: RankerSettings,
    training: TrainingSettings,
    database: Database,
    retriever: Retriever,
    *,
    progress: Progress | None = None,
    reply_version: str | None = None,
) -> RankerResult:
    """Train, validate, write and register one ranker version (see the module docstring);
    `training`: the reply model's data settings, which pick the same pairs."""
    import torch

    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = load_pairs(rs, training, database)
    rejections = rejected_replies(database) if rs.use_rejections else []
    examples, counts = build_examples(
        data.train, retriever, rs, rejections=rejections, seed=rs.seed
    )
    model, embedder_dir = base_model(paths, rs, device)
    planned = rs.max_steps or math.ceil(math.ceil(len(examples) / rs.batch_size) * rs.epochs)
    if progress is not None:
        progress(
            {
                "event": "start",
                "train_pairs": len(data.train),
                "val_pairs": len(data.val),
                **counts,
                "total_steps": planned,
                "device": device,
                "budget_s": rs.max_minutes * 60 if rs.max_minutes else None,
            }
        )
    trained = fit(model, examples, rs, device=device, started=started, progress=progress)

    name = _version_name(paths.versions_dir, database)
    ranker = Ranker(
        model=model, name=name, history_turns=rs.history_turns, batch_size=rs.score_batch_size
    )
    promoted, promoted_problem = _promoted(rs, database, device)
    t0 = time.monotonic()
    verdict = validate(ranker, data.val, retriever, rs, promoted=promoted)
    figures = verdict["figures"]
    if promoted_problem:
        figures["promoted_not_compared"] = promoted_problem
    metrics = {
        **figures,
        **trained,
        **counts,
        "validation_seconds": round(time.monotonic() - t0, 2),
        "kept": verdict["kept"],
    }
    if progress is not None:
        progress({"event": "validation", **figures, "kept": verdict["kept"], "why": verdict["why"]})

    snapshot = {
        **data.snapshot,
        "rejections": len(rejections),
        "retrieval_index": getattr(retriever, "version", None),
    }
    meta = _version_meta(rs, name, embedder_dir, reply_version, snapshot, metrics, verdict)
    ranker.meta = meta
    path = write_version(model, meta, paths.versions_dir, name)
    promoted_now, why = _register(database, rs, name, path, meta, verdict, reply_version)
    metrics["total_seconds"] = round(time.monotonic() - started, 2)
    result = RankerResult(
        name=name,
        path=str(path),
        kept=verdict["kept"],
        promoted=promoted_now,
        why=why,
        metrics=metrics,
    )
    if progress is not None:
        progress(
            {
                "event": "finished",
                "name": name,
                "path": str(path),
                "kept": result.kept,
                "promoted": promoted_now,
                "why": why,
            }
        )
    return result


def _version_meta(
    rs: RankerSettings,
    name: str,
    embedder_dir: Path,
    reply_version: str | None,
    snapshot: dict[str, Any],
    metrics: dict[str, Any],
    verdict: dict[str, Any],
) -> dict[str, Any]:
    """The version's meta.json: what it was made from, how it reads a query, its figures."""
    from chatbot import __version__

    return {
        "kind": KIND,
        "name": name,
        "created_at": datetime.now().astimezone().isoformat(),
        "made_by": f"chatbot {__version__} (chatbot.training.ranker.train_ranker, sentence-transformers CrossEncoderTrainer)",
        "base_embedder": str(embedder_dir),
        "reply_version": reply_version,
        "query": {
            "history_turns": rs.history_turns,
            "max_length": rs.max_length,
            "reply_form": "slotted",
        },
        "data": snapshot,
        "settings": rs.model_dump(mode="json"),
        "metrics": metrics,
        "kept": verdict["kept"],
        "why": verdict["why"],
        "val_pick_probability": verdict["val_pick_probability"],
        "val_true_probability": verdict["val_true_probability"],
    }


def _register(
    database: Database,
    rs: RankerSettings,
    name: str,
    path: Path,
    meta: dict[str, Any],
    verdict: dict[str, Any],
    reply_version: str | None,
) -> tuple[bool, str]:
    """Register the written version (kind "ranker") and promote it when it was kept and
    auto-promotion is on; returns (promoted, why)."""
    from chatbot.models.versions import promote, register_version

    figures = verdict["figures"]
    evaluation = {
        "kept": verdict["kept"],
        "why": verdict["why"],
        "compared_with": figures.get("compared_with"),
        "gain": figures.get("gain"),
        "gain_stderr": figures.get("gain_stderr"),
        "val_pairs": figures.get("val_pairs_scored"),
        "reply_version": reply_version,
    }
    try:
        register_version(
            database,
            name=name,
            path=path,
            settings=meta["settings"],
            data_snapshot=meta["data"],
            metrics=meta["metrics"],
            evaluation=evaluation,
            kind=KIND,
        )
    except BaseException:
        shutil.rmtree(
            path, ignore_errors=True
        )  # a directory no version points at would only confuse
        raise
    why = str(verdict["why"])
    if verdict["kept"] and rs.auto_promote:
        promote(database, name)
        return True, why
    if verdict["kept"]:
        why += "; registered as a candidate (auto-promotion is off): chatbot ranker promote " + name
    return False, why
