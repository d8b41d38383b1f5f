"""`models check`: load each model the way serving does and report what works: the
embedder, the base reply model and, when one is promoted, the reply-model version
serving uses. A model that fails is one line naming its path and what to run
(`chatbot models prepare --force`, `chatbot models rollback`).

Reports; never converts or repairs (that is `prepare_reply_model`'s job)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.config import DataPaths
from chatbot.errors import ChatbotError

if TYPE_CHECKING:
    from chatbot.models.versions import VersionInfo

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


def _timed(name: str, probe: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except ChatbotError as exc:
        detail, ok = " ".join(str(exc).split()), False
    except Exception as exc:
        log.debug("check %s failed", name, exc_info=True)
        detail, ok = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}", False
    return CheckResult(name, ok, detail, round(time.perf_counter() - started, 3))


def _embedder(paths: DataPaths) -> str:
    from chatbot.models.embedder import embedder_path, load_embedder

    model = load_embedder(paths)
    vector = model.encode(["Where is my parcel?"])
    return f"{embedder_path(paths)}: {vector.shape[1]}-dimensional embeddings"


def _reply_source() -> str:
    from chatbot.models.reply_model import packaged_gguf_path

    path = packaged_gguf_path()
    return f"{path} ({path.stat().st_size / 2**20:.0f} MiB)"


def _load_and_run(path: Path, repair: str) -> str:
    import torch

    from chatbot.errors import ModelUnavailableError
    from chatbot.meta_file import MetaFileError, read_meta
    from chatbot.models.reply_model import load_reply_model

    model, tokenizer = load_reply_model(path, repair=repair)
    try:
        ids = tokenizer("Hello", return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits
    except Exception as exc:
        raise ModelUnavailableError(
            f"the reply model at {path} loads but does not run: {exc}; {repair}"
        ) from None
    try:
        meta = read_meta(path)
    except MetaFileError:
        meta = {}
    params = meta.get("parameters") or sum(p.numel() for p in model.parameters())
    return f"{path}: {params / 1e6:.0f}M parameters, vocabulary {logits.shape[-1]}"


def _reply_model(paths: DataPaths) -> str:
    from chatbot.models.reply_model import repair_hint, reply_model_path

    path = reply_model_path(paths)
    return _load_and_run(path, repair_hint(paths, path))


def promoted_version_or_none(paths: DataPaths) -> VersionInfo | None:
    """The promoted reply-model version, or None when there is none or the store
    cannot be read (then there is nothing of it to check here)."""
    from sqlalchemy.engine import make_url

    from chatbot.models.versions import promoted_version
    from chatbot.store.database import Database, require_schema

    url = paths.database_url
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and not (
            parsed.database and Path(parsed.database).is_file()
        ):
            return None  # no store yet (and checking must not create an empty one)
        database = Database(url)
    except Exception:
        return None
    try:
        require_schema(database.engine)
        return promoted_version(database, "reply")
    except ChatbotError as exc:
        log.info("models check: the promoted version is not checked: %s", exc)
        return None
    finally:
        database.dispose()


def _served_version(version: VersionInfo) -> str:
    return _load_and_run(
        Path(version.path),
        "roll back to the version served before it: chatbot models rollback "
        "(or promote another: chatbot models list)",
    )


def run_checks(paths: DataPaths) -> list[CheckResult]:
    checks = [_timed("embedder", lambda: _embedder(paths))]
    if paths.reply_model_path is None:
        checks.append(_timed("reply model package", _reply_source))
    checks.append(_timed("reply model", lambda: _reply_model(paths)))
    version = promoted_version_or_none(paths)
    if version is not None:
        checks.append(
            _timed(f"promoted reply model {version.name}", lambda: _served_version(version))
        )
    return checks
