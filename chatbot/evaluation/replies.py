"""`evaluate_replies`: the whole reply evaluation in one call. The train files are
imported into a throw-away store (its own SQLite database and index in a temporary
directory, never the live ones), the index is built with calibration as `chatbot index`
does, the test turns are read (`items`), every variant answers every turn
(`variants`), what each sent is scored (`metrics`) and summed up with 95% bootstrap
intervals and paired comparisons (`figures`), and when the `trained` variant ran,
the figures become the promoted version's latest evaluation in the LIVE store (the
only thing written there). Files and plots are `report`'s job; printing the CLI's.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import ChatbotError, InputError
from chatbot.evaluation import metrics as M
from chatbot.evaluation.figures import TurnScores, summarise
from chatbot.evaluation.intervals import LEVEL, Resampler
from chatbot.evaluation.items import EvalItem, load_items, sample
from chatbot.evaluation.variants import (
    VARIANTS,
    Prediction,
    Variant,
    check_variant,
    variant_base,
)
from chatbot.text.rouge import rouge_l

if TYPE_CHECKING:
    from chatbot.dialogue.model_wait import LoadedModel
    from chatbot.ingest.settings import IngestSettings
    from chatbot.models.versions import VersionInfo
    from chatbot.ranking.model import Ranker
    from chatbot.retrieval.retriever import PairRetriever
    from chatbot.settings import Settings
    from chatbot.store.database import Database

log = logging.getLogger(__name__)

ProgressFactory = Callable[..., Any]  # tqdm-like: factory(iterable=None, total=None, desc=...)


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


def live_promoted_version(
    settings: Settings, name: str | None = None
) -> tuple[VersionInfo | None, str]:
    """(the promoted reply version of the live store, or the one called `name`, or None;
    a note saying why not). Never creates the live database: a missing SQLite file means no versions."""
    from sqlalchemy.engine import make_url

    from chatbot.models.versions import promoted_version
    from chatbot.store.database import Database, redact_url, require_schema

    url = settings.resolved_database_url
    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).expanduser().is_file()
    ):
        return (
            None,
            f"the live store {redact_url(url)} does not exist yet, so there is no trained version",
        )
    database = Database(url)
    version: VersionInfo | None
    try:
        require_schema(database.engine)
        if name is not None:
            from chatbot.models.versions import get_version

            version = get_version(database, name)
            if version.kind != "reply":
                return None, f"model version {name!r} is a {version.kind}, not a reply model"
        else:
            version = promoted_version(database, "reply")
    except ChatbotError as exc:
        if name is not None:
            return None, f"model version {name!r}: {exc}"
        return None, f"the live store cannot be read ({exc})"
    finally:
        database.dispose()
    if version is None:
        return None, "no model version is promoted in the live store (train one: chatbot train)"
    what = "the promoted version" if name is None else "version"
    if not (Path(version.path) / "config.json").is_file():
        return None, f"{what} {version.name!r} has no model files at {version.path}"
    return version, f"{what} {version.name}"


def evaluate_replies(
    settings: Settings,
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
    problems = [why for v in variants if (why := check_variant(v)) is not None]
    if problems or not variants:
        raise InputError(
            f"{'; '.join(problems) or 'no variant given'}; expected some of {', '.join(VARIANTS)} "
            "(refined@N: N refinement rounds)"
        )
    variants = sorted(dict.fromkeys(variants), key=lambda v: (VARIANTS.index(variant_base(v)), v))
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if resamples < 100:
        raise InputError(f"--resamples must be at least 100 for a 95% interval, got {resamples}")
    train = _check_files(train_files, "train")
    test = _check_files(test_files, "test")
    if not train:
        raise InputError("give at least one --train file")
    ingest = settings.ingest
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
    bar: ProgressFactory = progress or _null_progress
    started = time.perf_counter()
    notes: list[str] = []
    skipped: dict[str, str] = {}

    trained_version = None
    if "trained" in variants or trained_version_name is not None:
        trained_version, why = live_promoted_version(settings, trained_version_name)
        if trained_version is None:
            if trained_version_name is not None:
                raise InputError(why)
            skipped["trained"] = why
            variants = [v for v in variants if v != "trained"]
    tmp = Path(tempfile.mkdtemp(prefix="chatbot-eval-", dir=str(work_dir) if work_dir else None))
    databases: list[Database] = []
    try:
        result = _run(
            settings,
            train,
            test,
            variants,
            limit,
            seed,
            resamples,
            val_fraction,
            test_fraction,
            trained_version,
            tmp,
            databases,
            bar,
            notes,
            skipped,
        )
    finally:
        for database in databases:
            database.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    result.meta["seconds"] = round(time.perf_counter() - started, 2)
    if record and trained_version is not None and "trained" in result.variants:
        from chatbot.evaluation.record import record_evaluation
        from chatbot.store.database import Database

        live = Database(settings.resolved_database_url)
        try:
            record_evaluation(live, trained_version.name, stored_summary(result))
        finally:
            live.dispose()
        result.recorded_version = trained_version.name
    return result


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


def _import(
    database: Database,
    files: Sequence[Path],
    ingest: IngestSettings,
    bar: ProgressFactory,
    what: str,
) -> dict[str, Any]:
    from chatbot.ingest.importer import ProgressBar, import_paths

    def factory(name: str, total: int) -> ProgressBar:
        shown: ProgressBar = bar(
            total=total, desc=f"import {what} {Path(name).name}", unit="B", unit_scale=True
        )
        return shown

    summary = import_paths(database, files, ingest=ingest, progress=factory)
    for f in summary.files:
        if f.status == "failed":
            raise InputError(f"cannot be imported: {f.error}", path=f.path)
    return {
        "conversations": summary.conversations,
        "pairs": summary.pairs,
        "problems": len(summary.problems),
        "pairs_skipped": dict(summary.pairs_skipped),
    }


def _run(
    settings: Settings,
    train: list[Path],
    test: list[Path],
    variants: list[str],
    limit: int | None,
    seed: int,
    resamples: int,
    val_fraction: float,
    test_fraction: float,
    trained_version: VersionInfo | None,
    tmp: Path,
    databases: list[Database],
    bar: ProgressFactory,
    notes: list[str],
    skipped: dict[str, str],
) -> ReplyEvaluation:
    from chatbot.config import ensure_home
    from chatbot.indexing.builder import update_index
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.store.schema import SPLITS

    ingest = settings.ingest.model_copy(
        update={"val_fraction": val_fraction, "test_fraction": test_fraction}
    )
    eval_settings = settings.model_copy(
        update={
            "home": tmp / "home",
            "database_url": None,
            "model_cache": settings.model_cache_dir,
            "ingest": ingest,
        }
    )
    ensure_home(eval_settings.paths)
    url = eval_settings.resolved_database_url
    upgrade(url)
    database = Database(url)
    databases.append(database)
    imported = _import(database, train, ingest, bar, "train")
    if imported["pairs"] == 0:
        raise InputError(
            "the train files hold no usable conversation turns (no training pairs were built)"
        )
    index = update_index(
        eval_settings.paths,
        eval_settings.retrieval,
        eval_settings.dialogue,
        database,
        progress=bar is not _null_progress,
    )

    if test:
        test_url = f"sqlite:///{tmp / 'test.db'}"
        upgrade(test_url)
        test_db = Database(test_url)
        databases.append(test_db)
        test_ingest = ingest.model_copy(update={"val_fraction": 0.0, "test_fraction": 0.0})
        test_imported = _import(test_db, test, test_ingest, bar, "test")
        candidates = load_items(test_db, SPLITS)
    else:
        test_imported = None
        candidates = load_items(database, ["test"])
    if not candidates:
        raise InputError(
            "no test turns to evaluate: no customer turn of the test conversations has an agent reply"
            if test
            else "the held-out test split of the train files is empty; raise --test-fraction"
        )
    items = sample(candidates, limit, seed=seed)

    retriever = open_retriever(eval_settings.paths, eval_settings.retrieval, database)
    doc_meta = _doc_meta(database) if any(i.doc_id or i.doc_url for i in items) else {}
    predictions: dict[str, list[Prediction]] = {}
    loaded: dict[str, LoadedModel] = {}

    def model_for(name: str) -> LoadedModel:
        if name not in loaded:
            from chatbot.models.reply_model import load_reply_model, reply_model_path

            if name == "trained" and trained_version is not None:
                model, tokenizer = load_reply_model(Path(trained_version.path))
                loaded[name] = (model, tokenizer, trained_version.name)
            else:
                path = reply_model_path(settings.paths)
                model, tokenizer = load_reply_model(path)
                loaded[name] = (model, tokenizer, f"base:{path.name}")
        return loaded[name]

    ranker = None
    if any(variant_base(v) in ("ranker", "refined") for v in variants):
        ranker = _train_ranker(eval_settings, database, retriever, variants, notes, skipped, bar)
        if ranker is None:
            variants = [v for v in variants if v != "ranker"]
    for name in variants:
        variant = _build_variant(
            name, settings, database, retriever, model_for, trained_version, notes, ranker
        )
        results: list[Prediction] = []
        for item in bar(items, desc=name, unit="turn"):
            results.append(variant.predict(item))
        predictions[name] = results
        if name == "base" and "refined" in variants and trained_version is not None:
            loaded.pop("base", None)  # refined uses the trained model: free the base one

    resampler = Resampler.by_group(
        [(i.source, i.conversation) for i in items], resamples=resamples, seed=seed
    )
    summaries, comparisons, turns = _score(
        items, predictions, retriever, doc_meta, settings, resampler
    )
    data = {
        "train_files": [str(p) for p in train],
        "test_files": [str(p) for p in test],
        "test_from": "files" if test else "held-out split of the train files",
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "imported": imported,
        "test_imported": test_imported,
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
        "turns_available": len(candidates),
        "turns_evaluated": len(items),
        "limit": limit,
        "seed": seed,
        "conversations_evaluated": resampler.groups,
        "turns_with_document": sum(1 for i in items if _doc_applies(i)),
        "intervals": {
            "level": LEVEL,
            "method": "percentile bootstrap, resampling conversations",
            "resamples": resamples,
            "seed": seed,
        },
    }
    meta = _meta(settings, variants, trained_version, loaded)
    return ReplyEvaluation(
        meta=meta,
        data=data,
        variants=summaries,
        skipped=skipped,
        turns=turns,
        notes=notes,
        comparisons=comparisons,
    )


def _train_ranker(
    settings: Settings,
    database: Database,
    retriever: PairRetriever,
    variants: list[str],
    notes: list[str],
    skipped: dict[str, str],
    bar: ProgressFactory,
) -> tuple[Ranker, bool] | None:
    """The ranker learned from the train files' pairs (`chatbot.ranking`), as `chatbot
    ranker train` makes it: (the loaded ranker, whether its acceptance rule kept it), or
    None when it cannot be trained here (the `ranker` variant is then skipped)."""
    from chatbot.ranking.model import Ranker
    from chatbot.ranking.train import train_ranker

    if not settings.ranker.enabled:
        if "ranker" in variants:
            skipped["ranker"] = "ranker.enabled is false"
        return None
    try:
        result = train_ranker(
            settings.paths, settings.ranker, settings.training, database, retriever
        )
    except ChatbotError as exc:
        if "ranker" in variants:
            skipped["ranker"] = f"no ranker could be trained: {exc}"
        notes.append(f"ranker: not trained ({exc}); refined scores with the hand-set critique")
        return None
    verdict = (
        "kept: it beat retrieval's own order on the validation pairs"
        if result.kept
        else f"NOT kept by its acceptance rule ({result.why}); the dialogue manager would not use it"
    )
    notes.append(f"ranker: trained on the train files' pairs, {verdict}")
    return Ranker.load(Path(result.path)), bool(result.kept)


def _build_variant(
    name: str,
    settings: Settings,
    database: Database,
    retriever: PairRetriever,
    model_for: Callable[[str], LoadedModel],
    trained_version: VersionInfo | None,
    notes: list[str],
    ranker: tuple[Ranker, bool] | None = None,
) -> Variant:
    from chatbot.evaluation import variants as V

    fill = V.SlotFiller(database)
    if name == "knn":
        return V.KnnVariant(retriever, database, fill, batch_size=settings.retrieval.batch_size)
    if name == "retrieval":
        return V.RetrievalVariant(retriever, fill=fill)
    if name == "ranker" and ranker is not None:
        return V.RankerVariant(retriever, ranker[0], settings.ranker.retrieve_k, fill=fill)
    if name in ("base", "trained"):
        model, tokenizer, version = model_for(name)
        return V.OnePassVariant(name, model, tokenizer, version, retriever, settings)
    from chatbot.dialogue.manager import DialogueManager

    if (
        "@" in name
    ):  # refined@N: N rounds, and a draft on every turn (nothing sent before generating)
        rounds = int(name.split("@", 1)[1])
        settings = settings.model_copy(
            update={
                "dialogue": settings.dialogue.model_copy(
                    update={"max_rounds": rounds, "send_retrieved_at": 1.0}
                )
            }
        )
    source = None
    if settings.dialogue.generate:
        model, tokenizer, version = model_for("trained" if trained_version is not None else "base")
        source = V.FixedReplySource(model, tokenizer, version)
        notes.append(f"refined: the dialogue manager drafts with {version}")
    else:
        notes.append(
            "refined: dialogue.generate is off, so the manager answers from retrieved past answers only"
        )
    from chatbot.text.prompt import PromptFormat

    prompt = PromptFormat.from_settings(settings.prompt)
    manager = DialogueManager(
        settings.dialogue,
        database,
        retriever,
        source,
        prompt,
        ranker=ranker[0] if ranker is not None and ranker[1] else None,
    )
    return V.RefinedVariant(manager, database, name=name)


def _doc_meta(database: Database) -> dict[int, dict[str, str | None]]:
    """conversation id -> the document its agent sent, for the train conversations that record one."""
    from sqlalchemy import select

    from chatbot.evaluation.items import doc_of
    from chatbot.store.schema import Conversation

    out: dict[int, dict[str, str | None]] = {}
    with database.session() as session:
        for cid, meta in session.execute(select(Conversation.id, Conversation.meta)):
            doc_id, doc_url = doc_of(meta)
            if doc_id or doc_url:
                out[cid] = {"doc_id": doc_id, "doc_url": doc_url}
    return out


def _doc_applies(item: EvalItem) -> bool:
    """The document is scored on the turn where the real agent sent it."""
    if item.doc_url:
        return M.text_points_to(item.reference, item.doc_url)
    return item.doc_id is not None


def _score(
    items: list[EvalItem],
    predictions: dict[str, list[Prediction]],
    retriever: PairRetriever,
    doc_meta: dict[int, dict[str, str | None]],
    settings: Settings,
    resampler: Resampler,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Score what each variant sent (answered turns only), then sum up (`figures`)."""
    import numpy as np

    from chatbot.retrieval.embedding import embed_texts

    batch = settings.retrieval.batch_size
    references = [i.reference for i in items]
    ref_vectors = embed_texts(retriever.model, references, batch_size=batch)
    applies = np.asarray([_doc_applies(i) for i in items], dtype=bool)
    turns = [{**item.to_dict(), "variants": {}} for item in items]
    scores: dict[str, TurnScores] = {}
    for name, preds in predictions.items():
        n = len(preds)
        answered = np.asarray([p.answered for p in preds], dtype=bool)
        sims = np.zeros(n)
        sent = [i for i in range(n) if answered[i]]
        if sent:
            vectors = embed_texts(retriever.model, [preds[i].text for i in sent], batch_size=batch)
            sims[sent] = M.cosine_rows(vectors, ref_vectors[sent])
        rouge, bleu = np.zeros(n), np.zeros(n)
        stats = M.bleu_statistics([p.text if p.answered else "" for p in preds], references)
        stats[~answered] = 0
        doc = np.zeros((3, n), dtype=bool)
        for i, (item, pred, turn) in enumerate(zip(items, preds, turns, strict=True)):
            row: dict[str, Any] = {"answered": pred.answered}
            if pred.answered:
                rouge[i] = rouge_l(pred.text, item.reference)
                bleu[i] = M.sentence_bleu(pred.text, item.reference)
                row.update(
                    rouge_l=round(float(rouge[i]), 4),
                    bleu=round(float(bleu[i]), 2),
                    embedding_similarity=round(float(sims[i]), 4),
                )
            else:  # nothing was sent as an answer: nothing to score
                row.update(rouge_l=None, bleu=None, embedding_similarity=None)
            if applies[i]:
                cited = [_cited_doc(doc_meta, c["conversation_id"]) for c in pred.citations]
                match = (
                    M.doc_match(item.doc_id, item.doc_url, pred.text, cited)
                    if pred.answered
                    else {"in_text": False, "cited": False, "any": False}
                )
                doc[:, i] = (match["any"], match["in_text"], match["cited"])
                row["document"] = match
            turn["variants"][name] = {**pred.to_dict(), "seconds": round(pred.seconds, 4), **row}
        scores[name] = TurnScores(
            answered=answered,
            rouge_l=rouge,
            embedding_similarity=sims,
            sentence_bleu=bleu,
            bleu_stats=stats,
            seconds=np.asarray([p.seconds for p in preds], dtype=np.float64),
            doc_applies=applies,
            doc_any=doc[0],
            doc_in_text=doc[1],
            doc_cited=doc[2],
            decisions=[p.decision for p in preds],
            model_version=next((p.model_version for p in preds if p.model_version), None),
        )
    figures, comparisons = summarise(resampler, scores)
    return figures, comparisons, turns


def _cited_doc(
    doc_meta: dict[int, dict[str, str | None]], conversation_id: int | None
) -> dict[str, str | None]:
    """The document the cited past conversation's agent sent ({} when none)."""
    return dict(doc_meta.get(conversation_id, {})) if conversation_id is not None else {}


def _meta(
    settings: Settings,
    variants: list[str],
    trained_version: VersionInfo | None,
    loaded: dict[str, LoadedModel],
) -> dict[str, Any]:
    from chatbot import __version__
    from chatbot.models.embedder import embedder_path

    return {
        "what": "chatbot eval replies",
        "chatbot": __version__,
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "variants_run": variants,
        "trained_version": trained_version.name if trained_version is not None else None,
        "models": {name: version for name, (_m, _t, version) in loaded.items()},
        "embedder": str(embedder_path(settings.paths)),
        "metrics": {
            "answered_turn": "the customer was sent a reply of the assistant's own (decision answer, "
            "answer_flagged, act, decline or clarify); a hand-off, a held draft or silence is not an "
            "answer, and its text is never scored",
            "coverage": "share of turns answered (refined: its decision; retrieval: answered unless the "
            "out-of-scope check hands off; one-pass variants always answer)",
            "answered": "quality of the answered turns only: rouge_l (ROUGE-L F-measure, rouge-score, stemmed, "
            "mean), embedding_similarity (mean cosine of sent reply and agent reply embeddings, the "
            "configured embedder), sentence_bleu (mean sacrebleu sentence BLEU, 0-100), bleu "
            "(sacrebleu corpus BLEU, 0-100), document (turns where the real agent sent a help "
            "document: the sent reply or its citations point to it)",
            "all_turns": "the same quality over every turn, an unanswered turn scoring 0: the figure at equal "
            "footing across variants that answer different turns",
            "latency_s": "p50, p95 and mean seconds per turn (retrieval included)",
            "comparisons": "every two variants a, b: paired differences a - b (coverage, all-turns quality, "
            "quality on the turns both answered); better = the higher one where the interval "
            "excludes 0",
            "intervals": "every figure is {value, low, high}: a 95% percentile bootstrap interval, resampling "
            "conversations with replacement (data.intervals)",
        },
        "settings": {
            "retrieval": settings.retrieval.model_dump(mode="json"),
            "dialogue": {
                k: v
                for k, v in settings.dialogue.model_dump(mode="json").items()
                if k not in ("system_prompt", "handoff_message", "hold_message")
            },
            "prompt": {
                k: getattr(settings.prompt, k)
                for k in ("evidence_k", "evidence_max_chars", "history_turns")
            },
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "argv": sys.argv[1:],
        },
    }
