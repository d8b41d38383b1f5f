"""A trained ranker version, loaded and applied: `Ranker.load(path)` and
`Ranker.score(context, candidates)` -> the probability that each candidate fits the
conversation, and `query_text`, the one text the ranker reads for a conversation in
training and serving alike.

A conversation is a list of turns `{"role": "customer"|"agent"|"bot", "text": ...}`,
oldest first, the customer's last message at the end (the shape of
`chatbot.training.data.PairRecord.context`). Replies are read in the form the store keeps
them, slotted ("Hi {customer_name}, ..."): that is what the ranker was trained on, so a
caller scores a candidate's slotted form. Training is `chatbot.training.ranker`'s job;
deciding what to send from the scores is the dialogue manager's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from chatbot.errors import ModelUnavailableError
from chatbot.following import DEFAULT_CHECK_INTERVAL, Follower
from chatbot.meta_file import META_FILE, MetaFileError, read_meta

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers.cross_encoder import CrossEncoder

    from chatbot.ranking.settings import RankerSettings
    from chatbot.store.database import Database

log = logging.getLogger(__name__)

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
    try:
        meta = read_meta(path)
    except MetaFileError as exc:
        if exc.problem == "missing":
            raise ModelUnavailableError(
                f"ranker directory {path} has no {META_FILE} (an unfinished or damaged version); {TRAIN_HINT}"
            ) from None
        raise ModelUnavailableError(
            f"ranker {exc.path} cannot be read ({exc.problem}); {TRAIN_HINT}"
        ) from None
    if meta.get("kind") != KIND:
        raise ModelUnavailableError(
            f"{path / META_FILE} does not describe a ranker (kind {meta.get('kind')!r}); {TRAIN_HINT}"
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
        """Load a ranker version directory (written by `chatbot.training.ranker`).
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


def _load_promoted(version: tuple[str, str], section: RankerSettings, device: str) -> Ranker:
    """The promoted ranker (name, path), loaded; ModelUnavailableError naming it and the fix."""
    name, path = version
    try:
        return Ranker.load(path, device=device, batch_size=section.score_batch_size)
    except ModelUnavailableError as exc:
        raise ModelUnavailableError(
            f"the promoted ranker {name!r} cannot be loaded: {exc}; or roll back: chatbot ranker rollback"
        ) from None


def _promoted_key(database: Database, section: RankerSettings) -> tuple[str, str] | None:
    """(name, path) of the promoted ranker; None when none is promoted or rankers are off."""
    if not section.enabled:
        return None
    from chatbot.models.versions import promoted_version

    version = promoted_version(database, KIND)
    return (version.name, version.path) if version is not None else None


def promoted_ranker(
    database: Database, section: RankerSettings, device: str = "cpu"
) -> Ranker | None:
    """The promoted ranker version, loaded; None when none is promoted or when
    `section.enabled` is false. A damaged one raises ModelUnavailableError."""
    key = _promoted_key(database, section)
    return _load_promoted(key, section, device) if key is not None else None


class RankerSource(Follower["tuple[str, str] | None", "Ranker | None"]):
    """The ranker serving should use, followed as `chatbot.following` says: a promoted
    version that fails to load leaves the ranker already loaded serving (or none:
    the ranker is an improvement on retrieval, not a requirement, so `get` never
    raises), `error` saying why; `get()` is None while no version is promoted or
    `section.enabled` is off."""

    def __init__(
        self,
        database: Database,
        section: RankerSettings,
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        device: str = "cpu",
    ) -> None:
        self.database = database
        self.section = section
        self.device = device
        super().__init__(
            lambda: _promoted_key(self.database, self.section),
            lambda key: _load_promoted(key, self.section, self.device) if key else None,
            what="ranker",
            check_interval=check_interval,
            start=(None, None),
        )
