"""A trained ranker version, loaded and applied: `Ranker.load(path)` and
`Ranker.score(context, candidates)` -> the probability that each candidate fits the
conversation, and `query_text`, the one text the ranker reads for a conversation in
training and serving alike.

A conversation is a list of turns `{"role": "customer"|"agent"|"bot", "text": ...}`,
oldest first, the customer's last message at the end (the shape of
`chatbot.training.data.PairRecord.context`). Replies are read in the form the store keeps
them, slotted ("Hi {customer_name}, ..."): that is what the ranker was trained on, so a
caller scores a candidate's slotted form. Training is `chatbot.ranking.train`'s job;
deciding what to send from the scores is the dialogue manager's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from chatbot.errors import ModelUnavailableError

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers.cross_encoder import CrossEncoder

    from chatbot.ranking.settings import RankerSettings
    from chatbot.settings import Settings
    from chatbot.store.database import Database

log = logging.getLogger(__name__)

META_FILE = "meta.json"
KIND = "ranker"
TRAIN_HINT = "train one: chatbot ranker train"
DEFAULT_HISTORY_TURNS = 2

Context = Sequence[dict[str, str]]


def query_text(context: Context, history_turns: int) -> str:
    """What the ranker reads for a conversation: the customer's last message first,
    then up to `history_turns` earlier turns, newest first and role-tagged, so that
    truncating a long pair cuts the oldest turn and never the message."""
    turns = [t for t in context if str(t.get("text") or "").strip()]
    if not turns:
        return ""
    message = str(turns[-1]["text"]).strip()
    earlier = turns[:-1][::-1][: max(0, history_turns)]
    if not earlier:
        return message
    lines = [f"{t.get('role') or 'customer'}: {str(t['text']).strip()}" for t in earlier]
    return message + "\n\nearlier:\n" + "\n".join(lines)


def _meta(path: Path) -> dict[str, Any]:
    """The version's meta.json, or ModelUnavailableError naming the path and the fix."""
    if not path.is_dir():
        raise ModelUnavailableError(f"ranker directory {path} does not exist; {TRAIN_HINT}")
    meta_file = path / META_FILE
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelUnavailableError(
            f"ranker directory {path} has no {META_FILE} (an unfinished or damaged version); {TRAIN_HINT}"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(
            f"ranker {meta_file} cannot be read ({exc}); {TRAIN_HINT}"
        ) from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise ModelUnavailableError(
            f"{meta_file} does not describe a ranker (kind {meta.get('kind') if isinstance(meta, dict) else None!r}); {TRAIN_HINT}"
        )
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise ModelUnavailableError(f"ranker directory {path} has no {name}; {TRAIN_HINT}")
    return meta


@dataclass
class Ranker:
    """A cross-encoder (sentence-transformers `CrossEncoder`, one logit) and what its
    version recorded. Build with `load`; `score` is thread-safe for inference."""

    model: CrossEncoder
    name: str
    path: Path | None = None
    history_turns: int = DEFAULT_HISTORY_TURNS
    meta: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32

    @classmethod
    def load(cls, path: Path | str, device: str = "cpu", *, batch_size: int = 32) -> Ranker:
        """Load a ranker version directory (written by `chatbot.ranking.train`).
        A missing or damaged one raises ModelUnavailableError naming the path and the fix."""
        path = Path(path)
        meta = _meta(path)
        from chatbot.models.offline import force_offline

        force_offline()
        from sentence_transformers.cross_encoder import CrossEncoder
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated in transformers
        try:
            model = CrossEncoder(str(path), device=device, local_files_only=True)
        except Exception as exc:  # any failure to read the files means the version cannot serve
            raise ModelUnavailableError(
                f"cannot load the ranker from {path} ({type(exc).__name__}: {exc}); {TRAIN_HINT}"
            ) from None
        if model.num_labels != 1:
            raise ModelUnavailableError(
                f"the model at {path} gives {model.num_labels} scores, not one; {TRAIN_HINT}"
            )
        model.eval()
        history = meta.get("query", {}).get("history_turns", DEFAULT_HISTORY_TURNS)
        return cls(
            model=model,
            name=str(meta.get("name") or path.name),
            path=path,
            history_turns=int(history),
            meta=meta,
            batch_size=batch_size,
        )

    @property
    def val_pick_probability(self) -> dict[str, float]:
        """Quantiles of the probability of the ranker's pick on its validation pairs
        ({"0.05": p, "0.1": p, "0.25": p, "0.5": p}): where thresholds on its scale sit."""
        return dict(self.meta.get("val_pick_probability") or {})

    def query(self, context: Context) -> str:
        return query_text(context, self.history_turns)

    def score(self, context: Context, candidates: Sequence[str]) -> list[float]:
        """The probability (0-1) that each candidate fits the conversation, in order."""
        q = self.query(context)
        return self.score_texts([(q, str(c)) for c in candidates])

    def score_pairs(self, pairs: Sequence[tuple[Context, str]]) -> list[float]:
        """`score` for many (conversation, candidate) pairs at once, batched together."""
        return self.score_texts(
            [(self.query(context), str(candidate)) for context, candidate in pairs]
        )

    def score_texts(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Probabilities for (query text, reply) pairs already built with `query_text`."""
        if not pairs:
            return []
        import torch

        with torch.inference_mode():
            scores = self.model.predict(
                [list(p) for p in pairs],  # type: ignore[arg-type]  # typed as tuples; lists are what it always got here
                batch_size=self.batch_size,
                show_progress_bar=False,
                activation_fn=torch.nn.Sigmoid(),
                convert_to_numpy=True,
            )
        return [float(s) for s in cast("np.ndarray", scores).reshape(-1)]  # convert_to_numpy


# -- what serving uses -------------------------------------------------------------------


def promoted_ranker(rs: RankerSettings, database: Database, device: str = "cpu") -> Ranker | None:
    """The promoted ranker version, loaded; None when none is promoted or when
    `ranker.enabled` is false. A damaged one raises ModelUnavailableError."""
    if not rs.enabled:
        return None
    from chatbot.models.versions import promoted_version

    version = promoted_version(database, KIND)
    if version is None:
        return None
    try:
        return Ranker.load(version.path, device=device, batch_size=rs.score_batch_size)
    except ModelUnavailableError as exc:
        raise ModelUnavailableError(
            f"the promoted ranker {version.name!r} cannot be loaded: {exc}; or roll back: chatbot ranker rollback"
        ) from None


class RankerSource:
    """The ranker serving should use, reloaded when the promoted version changes.

    `get()` looks at the store at most every `check_interval` seconds. A version that
    fails to load is logged once (and kept in `error`) and the ranker already loaded, if
    any, keeps serving: the ranker is an improvement on retrieval, not a requirement.
    Thread-safe.
    """

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        check_interval: float = 5.0,
        device: str = "cpu",
    ):
        import threading

        self.settings = settings
        self.database = database
        self.check_interval = check_interval
        self.device = device
        self.error: str | None = None
        self._lock = threading.Lock()
        self._ranker: Ranker | None = None
        self._key: tuple[str, str] | None = None
        self._failed: tuple[str, str] | None = None
        self._checked_at = float("-inf")

    def get(self) -> Ranker | None:
        import time

        with self._lock:
            now = time.monotonic()
            if now - self._checked_at < self.check_interval:
                return self._ranker
            self._checked_at = now
            if not self.settings.ranker.enabled:
                self._ranker, self._key = None, None
                return None
            from chatbot.errors import ChatbotError
            from chatbot.models.versions import promoted_version

            try:
                version = promoted_version(self.database, KIND)
            except ChatbotError:
                log.exception(
                    "ranker: cannot read the promoted version; keeping %s",
                    self._ranker.name if self._ranker else "none",
                )
                return self._ranker
            if version is None:
                if self._ranker is not None:
                    log.info("ranker: no version is promoted any more; serving without one")
                self._ranker, self._key, self.error = None, None, None
                return None
            key = (version.name, version.path)
            if key == self._key or key == self._failed:
                return self._ranker
            try:
                ranker = Ranker.load(
                    version.path,
                    device=self.device,
                    batch_size=self.settings.ranker.score_batch_size,
                )
            except ModelUnavailableError as exc:
                self._failed, self.error = (
                    key,
                    f"the promoted ranker {version.name!r} cannot be loaded: {exc}",
                )
                log.error(
                    "ranker: %s; keeping %s",
                    self.error,
                    self._ranker.name if self._ranker else "none",
                )
                return self._ranker
            if self._ranker is not None:
                log.info("ranker: switched from %s to %s", self._ranker.name, ranker.name)
            self._ranker, self._key, self._failed, self.error = ranker, key, None, None
            return ranker
