"""Is the app ready to answer customers, and what is it doing without: the checks
behind `/readyz` and the admin console's serving notice.

- database: writable, not just reachable (a statement that would write and matches no
  row: a read-only file, a read-only transaction or a standby refuses it);
- index: loaded, and whether it is the current version or an older one standing in
  for a damaged current one (`chatbot.retrieval.fallback`);
- models: the embedder loaded with the index; the reply model verified against its
  checksums and loaded in the background at start (`ModelWarmup`).

Anonymous callers get booleans only (`public_view`); the admin console shows the
reasons (`ui.admin.serving_notice`). Serving the routes is `chatbot.app`'s job.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from chatbot.errors import ChatbotError

if TYPE_CHECKING:
    from chatbot.dialogue.model_wait import ReplyModelSource
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

# A write that changes nothing: refused where the database cannot be written.
WRITE_PROBE = "UPDATE alembic_version SET version_num = version_num WHERE 1 = 0"


@dataclass
class ModelWarmup:
    """The reply model loaded (its checksums verified on the way) in a daemon thread at
    start, so that the first customer does not wait for it and /readyz can tell."""

    problem: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start(self, source: ReplyModelSource) -> ModelWarmup:
        def run() -> None:
            try:
                source.get()
            except ChatbotError as exc:
                self.problem = str(exc)
            except Exception as exc:  # a load that fails in any other way: still reported
                self.problem = f"{type(exc).__name__}: {exc}"
            finally:
                if self.problem:
                    log.error("reply model: %s (answers come from past answers only)", self.problem)
                self.done.set()

        threading.Thread(target=run, name="reply-model-warmup", daemon=True).start()
        return self


@dataclass
class Check:
    ok: bool
    detail: str
    degraded: bool = False  # serving, but not as configured


def database_check(services: Services) -> Check:
    try:
        with services.database.session() as session:
            session.execute(text(WRITE_PROBE))
            session.rollback()
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        return Check(False, f"the database cannot be written: {reason}")
    return Check(True, "writable")


def index_check(services: Services) -> Check:
    retriever = services.manager.retriever
    health = getattr(retriever, "health", None)
    version = getattr(retriever, "version", None)
    if health is not None and health.degraded:
        return Check(True, str(health.problem), degraded=True)
    return Check(True, f"version {version}" if version else "loaded")


def models_check(services: Services) -> Check:
    if services.manager.reply_source is None:
        return Check(True, "the reply model is off (dialogue.generate); embedder loaded")
    warmup = services.warmup
    if warmup is None:
        return Check(True, "embedder loaded; the reply model loads on first use")
    if not warmup.done.is_set():
        return Check(False, "the reply model is still loading")
    if warmup.problem:
        return Check(True, f"the reply model is unusable: {warmup.problem}", degraded=True)
    return Check(True, "embedder and reply model loaded")


def readiness(services: Services) -> dict[str, Check]:
    return {
        "database": database_check(services),
        "index": index_check(services),
        "models": models_check(services),
    }


def is_ready(checks: dict[str, Check]) -> bool:
    return all(c.ok for c in checks.values())


def public_view(checks: dict[str, Check]) -> dict[str, Any]:
    """What anyone may read: ready or not, and which part is down or degraded (no paths,
    versions or error texts)."""
    return {
        "ready": is_ready(checks),
        "checks": {name: c.ok for name, c in checks.items()},
        "degraded": sorted(name for name, c in checks.items() if c.degraded),
    }
