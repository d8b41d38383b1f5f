"""`evaluate_replies`: the whole reply evaluation in one call. The train files are
imported into a throw-away store (its own SQLite database and index in a temporary
directory, never the live ones: `scratch`), the test turns are read (`items`), every
variant is built (`assemble`) and answers every turn (`variants`), what each sent is
scored (`scoring`, `metrics`) and summed up with 95% bootstrap intervals and paired
comparisons (`figures`), and when the `trained` variant ran, the figures become the
promoted version's latest evaluation in the LIVE store (the only thing written there).
Files and plots are `report`'s job; printing the CLI's.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import InputError
from chatbot.evaluation import scoring
from chatbot.evaluation.assemble import ReplyModels, build_variant, train_ranker_for
from chatbot.evaluation.intervals import LEVEL, Resampler
from chatbot.evaluation.items import EvalItem, sample
from chatbot.evaluation.live_version import live_promoted_version
from chatbot.evaluation.provenance import run_meta
from chatbot.evaluation.scratch import ProgressFactory as ProgressFactory
from chatbot.evaluation.scratch import ScratchStore, build_scratch_store
from chatbot.evaluation.settings import EvaluationSettings
from chatbot.evaluation.variants import (
    VARIANTS,
    Prediction,
    check_variant,
    variant_base,
)

if TYPE_CHECKING:
    from chatbot.ingest.settings import IngestSettings
    from chatbot.models.versions import VersionInfo
    from chatbot.retrieval.retriever import PairRetriever
    from chatbot.store.database import Database

log = logging.getLogger(__name__)


@dataclass
class ReplyEvaluation:
    meta: dict[str, Any]
    data: dict[str, Any]
    variants: dict[str, dict[str, Any]]  # name -> summary figures
    skipped: dict[str, str]  # name -> why it did not run
    turns: list[dict[str, Any]]
    recorded_version: str | None = None
    notes: list[str] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(
        default_factory=list
    )  # paired differences of every two variants

    def to_dict(self, *, turns: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not turns:
            out.pop("turns")
        return out


def _check_files(paths: Sequence[Path | str], what: str) -> list[Path]:
    files = [Path(p) for p in paths]
    for path in files:
        if not path.is_file():
            raise InputError(f"{what} file not found", path=str(path))
    return files


class _NullBar:
    """A progress bar that shows nothing (tqdm's interface, as far as it is used here)."""

    def __init__(self, iterable: Iterable[object] = (), **_kwargs: object):
        self.iterable = iterable

    def __iter__(self) -> Iterator[object]:
        return iter(self.iterable)

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


_null_progress: ProgressFactory = _NullBar


@dataclass
class _Run:
    """One evaluation's checked arguments, and what it notes on the way."""

    settings: EvaluationSettings
    train: list[Path]
    test: list[Path]
    variants: list[str]
    limit: int | None
    seed: int
    resamples: int
    val_fraction: float
    test_fraction: float
    bar: ProgressFactory
    trained_version: VersionInfo | None = None
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why it did not run


def evaluate_replies(
    settings: EvaluationSettings,
    train_files: Sequence[Path | str],
    test_files: Sequence[Path | str] = (),
    *,
    variants: Sequence[str] = VARIANTS,
    limit: int | None = None,
    seed: int = 0,
    resamples: int = 1000,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    work_dir: Path | None = None,
    record: bool = True,
    progress: ProgressFactory | None = None,
    trained_version_name: str | None = None,
) -> ReplyEvaluation:
    """Evaluate the variants on the test turns (see the module docstring).

    Without `test_files`, the test turns are the conversations of the train files that
    the importer's deterministic split puts in `test` (`test_fraction`, default the
    configured ingest.test_fraction); they are never indexed. `val_fraction` (default
    ingest.val_fraction) is held out of the index to calibrate out-of-scope; 0 indexes
    every train conversation (no calibration). Every test turn is evaluated unless
    `limit` caps their number (a quick run); `resamples` bootstrap resamples (seeded
    with `seed`) give the 95% intervals. `trained_version_name` evaluates that reply-model
    version of the live store as `trained` (and `refined`'s drafter) instead of the promoted one. Raises InputError for bad arguments or files,
    ModelUnavailableError when a model is missing."""
    chosen, train, test = _checked_arguments(variants, limit, resamples, train_files, test_files)
    val_fraction, test_fraction = _fractions(settings.ingest, test, val_fraction, test_fraction)
    run = _Run(
        settings,
        train,
        test,
        chosen,
        limit,
        seed,
        resamples,
        val_fraction,
        test_fraction,
        bar=progress or _null_progress,
    )
    started = time.perf_counter()
    if "trained" in run.variants or trained_version_name is not None:
        run.trained_version, why = live_promoted_version(
            settings.paths.database_url, trained_version_name
        )
        if run.trained_version is None:
            if trained_version_name is not None:
                raise InputError(why)
            run.skipped["trained"] = why
            run.variants = [v for v in run.variants if v != "trained"]
    tmp = Path(tempfile.mkdtemp(prefix="chatbot-eval-", dir=str(work_dir) if work_dir else None))
    databases: list[Database] = []
    try:
        result = _run(run, tmp, databases)
    finally:
        for database in databases:
            database.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    result.meta["seconds"] = round(time.perf_counter() - started, 2)
    if record and run.trained_version is not None and "trained" in result.variants:
        _record(settings.paths.database_url, run.trained_version.name, result)
    return result


def _checked_arguments(
    variants: Sequence[str],
    limit: int | None,
    resamples: int,
    train_files: Sequence[Path | str],
    test_files: Sequence[Path | str],
) -> tuple[list[str], list[Path], list[Path]]:
    """(the variants in their report order, the train files, the test files), or InputError."""
    problems = [why for v in variants if (why := check_variant(v)) is not None]
    if problems or not variants:
        raise InputError(
            f"{'; '.join(problems) or 'no variant given'}; expected some of {', '.join(VARIANTS)} "
            "(refined@N: N refinement rounds)"
        )
    chosen = sorted(dict.fromkeys(variants), key=lambda v: (VARIANTS.index(variant_base(v)), v))
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if resamples < 100:
        raise InputError(f"--resamples must be at least 100 for a 95% interval, got {resamples}")
    train = _check_files(train_files, "train")
    test = _check_files(test_files, "test")
    if not train:
        raise InputError("give at least one --train file")
    return chosen, train, test


def _fractions(
    ingest: IngestSettings,
    test: list[Path],
    val_fraction: float | None,
    test_fraction: float | None,
) -> tuple[float, float]:
    """(val fraction, test fraction) of the train files, defaults from `ingest`, or InputError."""
    val_fraction = ingest.val_fraction if val_fraction is None else val_fraction
    test_fraction = (
        (0.0 if test else ingest.test_fraction) if test_fraction is None else test_fraction
    )
    if test and test_fraction:
        raise InputError(
            "--test-fraction holds test turns out of the train files; it cannot be combined with --test"
        )
    if not test and test_fraction <= 0:
        raise InputError(
            "without --test files, a --test-fraction above 0 is needed to hold test turns out of the train files"
        )
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(
            f"val fraction {val_fraction} and test fraction {test_fraction} must be in [0, 1) and sum below 1"
        )
    return val_fraction, test_fraction


def _record(database_url: str, version_name: str, result: ReplyEvaluation) -> None:
    """Keep the figures as the version's latest evaluation in the live store."""
    from chatbot.evaluation.record import record_evaluation
    from chatbot.store.database import Database

    live = Database(database_url)
    try:
        record_evaluation(live, version_name, stored_summary(result))
    finally:
        live.dispose()
    result.recorded_version = version_name


def stored_summary(result: ReplyEvaluation) -> dict[str, Any]:
    """What a model version keeps of an evaluation: the figures of every variant, not the turns."""
    return {
        "evaluated_at": result.meta["evaluated_at"],
        "train": [Path(p).name for p in result.data["train_files"]],
        "test": [Path(p).name for p in result.data["test_files"]]
        or [
            f"held-out {result.data['test_fraction']:.0%} of "
            + ", ".join(Path(p).name for p in result.data["train_files"])
        ],
        "turns": result.data["turns_evaluated"],
        "turns_available": result.data["turns_available"],
        "limit": result.data["limit"],
        "seed": result.data["seed"],
        "intervals": result.data["intervals"],
        "variants": result.variants,
        "comparisons": result.comparisons,
        "skipped": result.skipped,
    }


def _run(run: _Run, tmp: Path, databases: list[Database]) -> ReplyEvaluation:
    from chatbot.retrieval.retriever import open_retriever

    settings = run.settings
    ingest = settings.ingest.model_copy(
        update={"val_fraction": run.val_fraction, "test_fraction": run.test_fraction}
    )
    scratch = build_scratch_store(
        settings,
        ingest,
        run.train,
        run.test,
        tmp,
        databases,
        run.bar,
        show_progress=run.bar is not _null_progress,
    )
    items = sample(scratch.candidates, run.limit, seed=run.seed)
    database = scratch.database
    retriever = open_retriever(scratch.settings.paths, scratch.settings.retrieval, database)
    doc_meta = scoring.doc_meta(database) if any(i.doc_id or i.doc_url for i in items) else {}
    models = ReplyModels(settings, run.trained_version)
    predictions = _predict(run, scratch, retriever, items, models)
    resampler = Resampler.by_group(
        [(i.source, i.conversation) for i in items], resamples=run.resamples, seed=run.seed
    )
    summaries, comparisons, turns = scoring.score(
        items, predictions, retriever, doc_meta, settings.retrieval.batch_size, resampler
    )
    data = _data(run, scratch, items, resampler)
    meta = run_meta(settings, run.variants, run.trained_version, models.loaded)
    return ReplyEvaluation(
        meta=meta,
        data=data,
        variants=summaries,
        skipped=run.skipped,
        turns=turns,
        notes=run.notes,
        comparisons=comparisons,
    )


def _predict(
    run: _Run,
    scratch: ScratchStore,
    retriever: PairRetriever,
    items: list[EvalItem],
    models: ReplyModels,
) -> dict[str, list[Prediction]]:
    """Every variant's answer to every turn (the `ranker` variant dropped when no ranker
    could be trained)."""
    ranker = None
    if any(variant_base(v) in ("ranker", "refined") for v in run.variants):
        ranker = train_ranker_for(
            scratch.settings, scratch.database, retriever, run.variants, run.notes, run.skipped
        )
        if ranker is None:
            run.variants = [v for v in run.variants if v != "ranker"]
    predictions: dict[str, list[Prediction]] = {}
    for name in run.variants:
        variant = build_variant(
            name,
            run.settings,
            scratch.database,
            retriever,
            models,
            run.trained_version,
            run.notes,
            ranker,
        )
        results: list[Prediction] = []
        for item in run.bar(items, desc=name, unit="turn"):
            results.append(variant.predict(item))
        predictions[name] = results
        if name == "base" and "refined" in run.variants and run.trained_version is not None:
            models.loaded.pop("base", None)  # refined uses the trained model: free the base one
    return predictions


def _data(
    run: _Run, scratch: ScratchStore, items: list[EvalItem], resampler: Resampler
) -> dict[str, Any]:
    """What the run was given and what it evaluated (the report's `data`)."""
    index = scratch.index
    return {
        "train_files": [str(p) for p in run.train],
        "test_files": [str(p) for p in run.test],
        "test_from": "files" if run.test else "held-out split of the train files",
        "val_fraction": run.val_fraction,
        "test_fraction": run.test_fraction,
        "imported": scratch.imported,
        "test_imported": scratch.test_imported,
        "index": {
            "version": index.version,
            "pairs": index.pair_count,
            "kind": index.kind,
            "calibrated": bool(index.calibration),
            "oos_raw_threshold": (index.calibration or {}).get("raw_threshold"),
            "lexical_weight": (index.fusion or {}).get("lexical_weight"),
            "lexical_weight_by_validation": (index.fusion or {}).get("reply_similarity_by_weight"),
            "consensus": (index.fusion or {}).get("consensus"),
        },
        "turns_available": len(scratch.candidates),
        "turns_evaluated": len(items),
        "limit": run.limit,
        "seed": run.seed,
        "conversations_evaluated": resampler.groups,
        "turns_with_document": sum(1 for i in items if scoring.doc_applies(i)),
        "intervals": {
            "level": LEVEL,
            "method": "percentile bootstrap, resampling conversations",
            "resamples": run.resamples,
            "seed": run.seed,
        },
    }
