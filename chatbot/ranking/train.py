"""Training a ranker version: `train_ranker(settings, database, retriever)`.

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

Loading and applying a version is `chatbot.ranking.model`'s job; choosing what to send
is the dialogue manager's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatbot.meta_file import META_FILE
from chatbot.ranking import RankerError
from chatbot.ranking.model import KIND, Ranker, query_text

if TYPE_CHECKING:
    from sentence_transformers.cross_encoder import CrossEncoder

    from chatbot.config import Settings
    from chatbot.ranking.settings import RankerSettings
    from chatbot.retrieval.types import Hit, Retriever
    from chatbot.store.database import Database
    from chatbot.training.data import TrainingData

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
PICK_QUANTILES = (0.05, 0.1, 0.25, 0.5)
RETRIEVAL = "retrieval"


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


@dataclass(frozen=True)
class Example:
    """One training pair for the cross-encoder."""

    query: str
    reply: str
    label: float
    kind: str  # "positive" | "hard" | "random" | "rejected"


# -- pairs and examples ------------------------------------------------------------------


class _Pair(Protocol):
    """What a ranker example needs of a training pair."""

    @property
    def id(self) -> int: ...
    @property
    def context(self) -> list[dict[str, str]]: ...
    @property
    def target(self) -> str: ...


def load_pairs(settings: Settings, database: Database) -> TrainingData:
    """The train pairs and the validation subset (`TrainingData`), or RankerError."""
    from chatbot.training import TrainingError
    from chatbot.training.data import load_training_data

    rs = settings.ranker
    cfg = settings.training.model_copy(
        update={
            "min_train_pairs": 1,
            "min_val_pairs": 1,
            "val_max_pairs": rs.val_max_pairs,
            "seed": rs.seed,
        }
    )
    try:
        data = load_training_data(database, cfg)
    except TrainingError:
        data = None
    if data is None or len(data.train) < rs.min_pairs or len(data.val) < rs.min_val_pairs:
        counts = (
            f"{len(data.train)} train pairs (need {rs.min_pairs}) and {len(data.val)} validation pairs (need {rs.min_val_pairs})"
            if data is not None
            else "no train or no validation pairs"
        )
        raise RankerError(
            f"too few pairs to train a ranker: {counts}; import more transcripts first (chatbot import FILE) "
            "or lower CHATBOT_RANKER__MIN_PAIRS / MIN_VAL_PAIRS"
        )
    return data


def near_copy(candidate: str, target: str, threshold: float) -> bool:
    """A reply that says what the true one says (identical words, or content-word F1 at
    least `threshold`): not a wrong answer, so never a negative."""
    from chatbot.dialogue.text import normalise, token_f1

    return normalise(candidate) == normalise(target) or token_f1(candidate, target) >= threshold


def candidates_for(
    retriever: Retriever, context: Sequence[dict[str, str]], k: int, exclude: Sequence[int] = ()
) -> list[Hit]:
    """The retriever's hits for a conversation: its last message as the query, the
    earlier turns as history."""
    if not context or k <= 0:
        return []
    query = str(context[-1].get("text") or "")
    history = [str(t.get("text") or "") for t in context[:-1]]
    return list(retriever.search(query, history=history, k=k, exclude_pair_ids=list(exclude)).hits)


def rejected_replies(database: Database) -> list[tuple[list[dict[str, str]], str]]:
    """(conversation, rejected suggestion in slotted form) for every suggestion an agent
    rejected in the console (`chatbot.support.review.rejected_examples`)."""
    from chatbot.dialogue.specifics import SpecificsGuard
    from chatbot.support.review import rejected_examples

    with database.session() as session:
        rows = rejected_examples(session)
    if not rows:
        return []
    guard = SpecificsGuard(database)
    known = guard.known()
    return [
        (list(r.context), guard.slot(r.text, known)) for r in rows if r.context and r.text.strip()
    ]


def build_examples(
    train: Sequence[_Pair],
    retriever: Retriever,
    rs: RankerSettings,
    *,
    rejections: Sequence[tuple[list[dict[str, str]], str]] = (),
    seed: int = 0,
) -> tuple[list[Example], dict[str, Any]]:
    """The labelled examples of a run (see the module docstring) and their counts."""
    rng = random.Random(seed)
    replies = [p.target for p in train]
    examples: list[Example] = []
    short = 0
    for pair in train:
        query = query_text(pair.context, rs.history_turns)
        examples.append(Example(query, pair.target, 1.0, "positive"))
        chosen: list[str] = []
        for hit in candidates_for(retriever, pair.context, rs.retrieve_k, exclude=[pair.id]):
            if len(chosen) >= rs.negatives:
                break
            text = hit.reply_text
            if (
                hit.pair_id == pair.id
                or text in chosen
                or near_copy(text, pair.target, rs.near_copy_f1)
            ):
                continue
            chosen.append(text)
        hard = len(chosen)
        if hard < rs.negatives:
            short += 1
            for _ in range(
                4 * rs.negatives
            ):  # top up with random replies; give up on a tiny, repetitive set
                if len(chosen) >= rs.negatives:
                    break
                text = rng.choice(replies)
                if text not in chosen and not near_copy(text, pair.target, rs.near_copy_f1):
                    chosen.append(text)
        examples += [
            Example(query, text, 0.0, "hard" if i < hard else "random")
            for i, text in enumerate(chosen)
        ]
    for context, text in rejections:
        examples.append(Example(query_text(context, rs.history_turns), text, 0.0, "rejected"))
    counts = Counter(e.kind for e in examples)
    stats = {
        "examples": len(examples),
        "positives": counts["positive"],
        "hard_negatives": counts["hard"],
        "random_negatives": counts["random"],
        "rejected_negatives": counts["rejected"],
        "pairs_short_of_hard_negatives": short,
    }
    return examples, stats


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


def base_model(settings: Settings, device: str) -> tuple[CrossEncoder, Path]:
    """A fresh cross-encoder from the configured sentence embedder's weights: its BERT
    with a new one-logit classification head (sigmoid at prediction time)."""
    from chatbot.models.embedder import embedder_path
    from chatbot.models.offline import force_offline

    path = embedder_path(settings)
    force_offline()
    from sentence_transformers.cross_encoder import CrossEncoder
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated in transformers
    set_seed(settings.ranker.seed)  # the new head's initial weights
    try:
        with _quiet_loading():
            model = CrossEncoder(
                str(path),
                num_labels=1,
                max_length=settings.ranker.max_length,
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


# -- validation and the acceptance rule --------------------------------------------------


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    if not len(values):
        return {}
    return {str(q): float(np.quantile(np.asarray(values, dtype=float), q)) for q in PICK_QUANTILES}


def validate(
    ranker: Ranker,
    val: Sequence[_Pair],
    retriever: Retriever,
    rs: RankerSettings,
    *,
    promoted: Ranker | None = None,
) -> dict[str, Any]:
    """The figures of `ranker` on the validation pairs (see the module docstring) and
    whether it is kept: {"kept", "why", "figures", "val_pick_probability", ...}."""
    import numpy as np

    from chatbot.evaluation.metrics import rouge_l

    items = []  # (pair, candidate texts)
    for pair in val:
        hits = candidates_for(retriever, pair.context, rs.retrieve_k, exclude=[pair.id])
        texts = [h.reply_text for h in hits if h.pair_id != pair.id]
        if texts:
            items.append((pair, texts))
    n = len(items)
    figures: dict[str, Any] = {
        "val_pairs": len(val),
        "val_pairs_scored": n,
        "candidates": rs.retrieve_k,
        "val_pairs_without_candidates": len(val) - n,
    }
    if n == 0:
        return {
            "kept": False,
            "why": "no validation pair has retrieved candidates to choose among",
            "figures": figures,
            "val_pick_probability": {},
            "val_true_probability": {},
        }

    def scores_of(model: Ranker) -> list[list[float]]:
        flat = []
        for pair, texts in items:
            q = query_text(pair.context, model.history_turns)
            flat += [(q, t) for t in [*texts, pair.target]]
        scores, out, at = model.score_texts(flat), [], 0
        for _, texts in items:
            out.append(scores[at : at + len(texts) + 1])
            at += len(texts) + 1
        return out

    new_scores = scores_of(ranker)
    rouge = [[rouge_l(t, pair.target) for t in texts] for pair, texts in items]
    retrieval = np.array([r[0] for r in rouge])
    picks = [int(np.argmax(s[:-1])) for s in new_scores]
    new = np.array([r[i] for r, i in zip(rouge, picks)])
    pick_probability = [s[i] for s, i in zip(new_scores, picks)]
    true_probability = [s[-1] for s in new_scores]
    ranks = []
    for (pair, texts), s in zip(items, new_scores):
        others = [
            p for t, p in zip(texts, s[:-1]) if not near_copy(t, pair.target, rs.near_copy_f1)
        ]
        ranks.append(1 + sum(1 for p in others if p >= s[-1]))  # ties count against the true reply
    ranks_a = np.array(ranks)
    figures.update(
        {
            "rouge_l_retrieval": float(retrieval.mean()),
            "rouge_l_ranker": float(new.mean()),
            "rouge_l_oracle": float(np.mean([max(r) for r in rouge])),
            "ranker_agrees_with_retrieval": float(np.mean([i == 0 for i in picks])),
            "true_reply_mrr": float(np.mean(1.0 / ranks_a)),
            "true_reply_accuracy_at_1": float(np.mean(ranks_a == 1)),
            "true_reply_candidates": float(np.mean([len(t) for _, t in items])) + 1,
        }
    )
    baseline_name, baseline = RETRIEVAL, retrieval
    if promoted is not None:
        promoted_scores = scores_of(promoted)
        served = np.array([r[int(np.argmax(s[:-1]))] for r, s in zip(rouge, promoted_scores)])
        figures["rouge_l_promoted"] = float(served.mean())
        figures["promoted"] = promoted.name
        if served.mean() > retrieval.mean():
            baseline_name, baseline = promoted.name, served
    diffs = new - baseline
    gain = float(diffs.mean())
    stderr = float(diffs.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    kept = n > 1 and gain > 0 and gain > rs.min_gain_stderrs * stderr
    figures.update(
        {
            "compared_with": baseline_name,
            "rouge_l_baseline": float(baseline.mean()),
            "gain": gain,
            "gain_stderr": stderr,
            "gain_stderrs": (gain / stderr) if stderr and stderr > 0 else None,
            "min_gain_stderrs": rs.min_gain_stderrs,
        }
    )
    said = (
        f"ROUGE-L of its pick {new.mean():.4f} vs {baseline_name} {baseline.mean():.4f} on {n} validation pairs: "
        f"gain {gain:+.4f}, standard error {stderr:.4f}"
    )
    if kept:
        why = f"kept: {said} (more than {rs.min_gain_stderrs:g} standard errors)"
    elif n < 2:
        why = f"not kept: {said}; one validation pair cannot show a gain"
    else:
        why = f"not kept: {said} (needs a positive gain above {rs.min_gain_stderrs:g} standard errors)"
    return {
        "kept": kept,
        "why": why,
        "figures": figures,
        "val_pick_probability": _quantiles(pick_probability),
        "val_true_probability": _quantiles(true_probability),
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
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return final


def _promoted(
    settings: Settings, database: Database, device: str
) -> tuple[Ranker | None, str | None]:
    """The promoted ranker to compare against (None when none), and why it was left out
    when it cannot be loaded."""
    from chatbot.errors import ModelUnavailableError
    from chatbot.models.versions import promoted_version

    version = promoted_version(database, KIND)
    if version is None:
        return None, None
    try:
        return Ranker.load(
            version.path, device=device, batch_size=settings.ranker.score_batch_size
        ), None
    except ModelUnavailableError as exc:
        log.warning(
            "ranker: the promoted %s cannot be loaded, comparing with retrieval only: %s",
            version.name,
            exc,
        )
        return None, f"the promoted {version.name} cannot be loaded: {exc}"


def train_ranker(
    settings: Settings,
    database: Database,
    retriever: Retriever,
    *,
    progress: Progress | None = None,
    reply_version: str | None = None,
) -> RankerResult:
    """Train, validate, write and register one ranker version (see the module docstring)."""
    import torch

    from chatbot import __version__
    from chatbot.models.versions import promote, register_version

    rs = settings.ranker
    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = load_pairs(settings, database)
    rejections = rejected_replies(database) if rs.use_rejections else []
    examples, counts = build_examples(
        data.train, retriever, rs, rejections=rejections, seed=rs.seed
    )
    model, embedder_dir = base_model(settings, device)
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

    name = _version_name(settings.versions_dir, database)
    ranker = Ranker(
        model=model, name=name, history_turns=rs.history_turns, batch_size=rs.score_batch_size
    )
    promoted, promoted_problem = _promoted(settings, database, device)
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
    settings_dump = rs.model_dump(mode="json")
    meta = {
        "kind": KIND,
        "name": name,
        "created_at": datetime.now().astimezone().isoformat(),
        "made_by": f"chatbot {__version__} (chatbot.ranking.train.train_ranker, sentence-transformers CrossEncoderTrainer)",
        "base_embedder": str(embedder_dir),
        "reply_version": reply_version,
        "query": {
            "history_turns": rs.history_turns,
            "max_length": rs.max_length,
            "reply_form": "slotted",
        },
        "data": snapshot,
        "settings": settings_dump,
        "metrics": metrics,
        "kept": verdict["kept"],
        "why": verdict["why"],
        "val_pick_probability": verdict["val_pick_probability"],
        "val_true_probability": verdict["val_true_probability"],
    }
    ranker.meta = meta
    path = write_version(model, meta, settings.versions_dir, name)
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
            settings=settings_dump,
            data_snapshot=snapshot,
            metrics=metrics,
            evaluation=evaluation,
            kind=KIND,
        )
    except BaseException:
        shutil.rmtree(
            path, ignore_errors=True
        )  # a directory no version points at would only confuse
        raise
    promoted_now = False
    why = verdict["why"]
    if verdict["kept"] and rs.auto_promote:
        promote(database, name)
        promoted_now = True
    elif verdict["kept"]:
        why += "; registered as a candidate (auto-promotion is off): chatbot ranker promote " + name
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
