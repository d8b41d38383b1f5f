"""The evaluation's throw-away store: the train files imported into their own SQLite
database under a temporary directory (never the live store), its index built with
calibration as `chatbot index` does, and the test turns read, from the test files'
own database or from the held-out split of the train files. Answering and scoring the
turns are `replies`' job; removing the directory is its caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import InputError
from chatbot.evaluation.items import EvalItem, load_items
from chatbot.evaluation.settings import EvaluationSettings

if TYPE_CHECKING:
    from chatbot.indexing.builder import IndexReport
    from chatbot.ingest.settings import IngestSettings
    from chatbot.store.database import Database

ProgressFactory = Callable[..., Any]  # tqdm-like: factory(iterable=None, total=None, desc=...)


@dataclass
class ScratchStore:
    """The imported train files, their index and the test turns on offer."""

    settings: EvaluationSettings  # the run's sections, with the temporary data paths
    database: Database
    index: IndexReport
    imported: dict[str, Any]
    test_imported: dict[str, Any] | None
    candidates: list[EvalItem]


def build_scratch_store(
    settings: EvaluationSettings,
    ingest: IngestSettings,
    train: list[Path],
    test: list[Path],
    tmp: Path,
    databases: list[Database],
    bar: ProgressFactory,
    *,
    show_progress: bool,
) -> ScratchStore:
    """Import, index and read the test turns under `tmp` (see the module docstring);
    every database opened is appended to `databases` for the caller to dispose of."""
    from chatbot.config import ensure_home
    from chatbot.indexing.builder import update_index
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.store.schema import SPLITS

    home = tmp / "home"
    eval_settings = replace(
        settings,
        paths=replace(settings.paths, home=home, database_url=f"sqlite:///{home / 'chatbot.db'}"),
        ingest=ingest,
    )
    ensure_home(eval_settings.paths)
    url = eval_settings.paths.database_url
    upgrade(url)
    database = Database(url)
    databases.append(database)
    imported = import_files(database, train, ingest, bar, "train")
    if imported["pairs"] == 0:
        raise InputError(
            "the train files hold no usable conversation turns (no training pairs were built)"
        )
    index = update_index(
        eval_settings.paths,
        eval_settings.retrieval,
        eval_settings.dialogue,
        database,
        progress=show_progress,
    )

    if test:
        test_url = f"sqlite:///{tmp / 'test.db'}"
        upgrade(test_url)
        test_db = Database(test_url)
        databases.append(test_db)
        test_ingest = ingest.model_copy(update={"val_fraction": 0.0, "test_fraction": 0.0})
        test_imported = import_files(test_db, test, test_ingest, bar, "test")
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
    return ScratchStore(eval_settings, database, index, imported, test_imported, candidates)


def import_files(
    database: Database,
    files: Sequence[Path],
    ingest: IngestSettings,
    bar: ProgressFactory,
    what: str,
) -> dict[str, Any]:
    """Import `files` into `database`; what was imported, or InputError for a file that failed."""
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
