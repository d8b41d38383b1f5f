"""Model versions in the store: registering a trained reply model, listing, promoting
and rolling back, and what serving loads — the promoted version, or the base model
when none is promoted — picked up without a restart by `ReplyModelProvider`.
Training a version is `chatbot.training`'s job; generating text is `generate`'s.

Promotion history is a stack ordered by `promoted_at`: `promote` stamps the time,
`rollback` retires the current version, takes it off the stack (clears its stamp,
noting it in `evaluation`) and re-promotes the one promoted just before it, so
repeated rollbacks walk further back and never return to a rolled-back version.
`promote` refuses a version that evaluated worse than the serving one on the same
validation pairs (what training recorded in `evaluation`) unless forced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import ChatbotError, ModelUnavailableError
from chatbot.following import DEFAULT_CHECK_INTERVAL, Follower

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from chatbot.store.database import Database
    from chatbot.store.schema import ModelVersion

BASE_VERSION = "base"


class VersionError(ChatbotError):
    """A model version that does not exist, or a promotion/rollback that cannot be done."""


@dataclass
class VersionInfo:
    id: int
    name: str
    kind: str
    path: str
    status: str
    created_at: datetime | None
    promoted_at: datetime | None
    parent_id: int | None
    metrics: dict[str, Any]
    data_snapshot: dict[str, Any]
    settings: dict[str, Any]
    evaluation: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("created_at", "promoted_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def _info(row: ModelVersion) -> VersionInfo:
    return VersionInfo(
        id=row.id,
        name=row.name,
        kind=row.kind,
        path=row.path,
        status=row.status,
        created_at=row.created_at,
        promoted_at=row.promoted_at,
        parent_id=row.parent_id,
        metrics=dict(row.metrics or {}),
        data_snapshot=dict(row.data_snapshot or {}),
        settings=dict(row.settings or {}),
        evaluation=dict(row.evaluation or {}),
    )


def register_version(
    database: Database,
    *,
    name: str,
    path: Path | str,
    settings: dict[str, Any],
    data_snapshot: dict[str, Any],
    metrics: dict[str, Any],
    evaluation: dict[str, Any] | None = None,
    parent_id: int | None = None,
    kind: str = "reply",
) -> VersionInfo:
    """Record a finished model directory as a candidate version."""
    from sqlalchemy import select

    from chatbot.store.schema import ModelVersion

    with database.session() as session:
        if session.scalar(select(ModelVersion.id).where(ModelVersion.name == name)) is not None:
            raise VersionError(f"a model version named {name!r} already exists")
        row = ModelVersion(
            name=name,
            kind=kind,
            path=str(path),
            status="candidate",
            settings=settings,
            data_snapshot=data_snapshot,
            metrics=metrics,
            evaluation=evaluation or {},
            parent_id=parent_id,
        )
        session.add(row)
        session.flush()
        return _info(row)


def set_evaluation(database: Database, name: str, evaluation: dict[str, Any]) -> None:
    from sqlalchemy import select

    from chatbot.store.schema import ModelVersion

    with database.session() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.name == name))
        if row is None:
            raise VersionError(f"no model version named {name!r}")
        row.evaluation = dict(evaluation)


def list_versions(database: Database, kind: str = "reply") -> list[VersionInfo]:
    """Every version of `kind`, newest first."""
    from sqlalchemy import select

    from chatbot.store.schema import ModelVersion

    with database.session() as session:
        rows = session.scalars(
            select(ModelVersion)
            .where(ModelVersion.kind == kind)
            .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        ).all()
        return [_info(r) for r in rows]


def get_version(database: Database, name: str) -> VersionInfo:
    from sqlalchemy import select

    from chatbot.store.schema import ModelVersion

    with database.session() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.name == name))
        if row is None:
            raise VersionError(f"no model version named {name!r}; see: chatbot models list")
        return _info(row)


def promoted_version(database: Database, kind: str = "reply") -> VersionInfo | None:
    from sqlalchemy import select

    from chatbot.store.schema import ModelVersion

    with database.session() as session:
        row = session.scalar(
            select(ModelVersion)
            .where(ModelVersion.kind == kind, ModelVersion.status == "promoted")
            .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc())
        )
        return _info(row) if row is not None else None


def _locked_versions(session: Session, kind: str) -> list[ModelVersion]:
    """All versions of `kind`, locked for this transaction where the database can
    (PostgreSQL), so two admins promoting at once cannot leave two promoted versions."""
    from sqlalchemy import select

    from chatbot.store.schema import ModelVersion

    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.kind == kind)
            .order_by(ModelVersion.id)
            .with_for_update()
        ).all()
    )


def metric_number(value: object) -> float | None:
    """A figure read back from a version's stored JSON as a float (None when it is not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def worse_than_serving(candidate: VersionInfo, serving: VersionInfo | None) -> str | None:
    """Why `candidate` evaluates worse than what serves now (`serving`, None for the base
    model) on the same validation pairs, or None when it does not or when the two were
    never compared on the same pairs.

    A training run measures its model and the version serving at the time on the run's
    validation pairs (`evaluation`: val_loss, compared_with, compared_val_loss); that is
    the comparison used, whichever of the two versions recorded it. A ranker records
    instead whether its picks beat retrieval's and the promoted ranker's on its
    validation questions (`evaluation`: kept, why); one that did not is refused."""
    if candidate.kind == "ranker":
        if candidate.evaluation.get("kept", False):
            return None
        return str(candidate.evaluation.get("why") or "it did not win on validation")
    serving_name = serving.name if serving is not None else BASE_VERSION
    comparison = None  # (candidate's loss, serving's loss, validation pairs)
    mine = candidate.evaluation
    if mine.get("compared_with") == serving_name:
        comparison = (mine.get("val_loss"), mine.get("compared_val_loss"), mine.get("val_pairs"))
    elif serving is not None and serving.evaluation.get("compared_with") == candidate.name:
        theirs = serving.evaluation
        comparison = (
            theirs.get("compared_val_loss"),
            theirs.get("val_loss"),
            theirs.get("val_pairs"),
        )
    if comparison is None:
        return None
    loss, other, pairs = (
        metric_number(comparison[0]),
        metric_number(comparison[1]),
        comparison[2],
    )
    if loss is None or other is None or loss <= other:
        return None
    on = f"the same {pairs} validation pairs" if pairs is not None else "the same validation pairs"
    return f"{candidate.name} evaluates worse than the serving {serving_name}: validation loss {loss:.4f} vs {other:.4f} on {on}"


def promote(
    database: Database, name: str, force: bool = False
) -> tuple[VersionInfo, VersionInfo | None]:
    """Make `name` the served version; returns (it, the version it replaced or None).

    Refuses (VersionError) a version that evaluates worse than the serving one on the
    same validation pairs, unless `force`."""
    from sqlalchemy import select

    from chatbot.store.schema import ModelVersion, utcnow

    with database.session() as session:
        kind = session.scalar(select(ModelVersion.kind).where(ModelVersion.name == name))
        if kind is None:
            raise VersionError(f"no model version named {name!r}; see: chatbot models list")
        rows = _locked_versions(session, kind)
        target = next(r for r in rows if r.name == name)
        if kind == "reply" and not (Path(target.path) / "config.json").is_file():
            raise VersionError(
                f"model version {name!r} has no model files at {target.path}; it cannot be served"
            )
        previous = next((r for r in rows if r.status == "promoted" and r.id != target.id), None)
        if target.status == "promoted":
            return _info(target), None
        if not force:
            why = worse_than_serving(
                _info(target), _info(previous) if previous is not None else None
            )
            if why:
                raise VersionError(
                    f"not promoted: {why}; to serve it anyway, promote it with --force"
                )
        for r in rows:
            if r.status == "promoted" and r.id != target.id:
                r.status = "retired"
        target.status = "promoted"
        target.promoted_at = utcnow()
        session.flush()
        return _info(target), (_info(previous) if previous is not None else None)


def rollback(database: Database, kind: str = "reply") -> tuple[VersionInfo, VersionInfo | None]:
    """Retire the promoted version and re-promote the one promoted before it.

    Returns (the retired version, the version now served or None for the base model).
    """
    from chatbot.store.schema import utcnow

    with database.session() as session:
        rows = _locked_versions(session, kind)
        current = next((r for r in rows if r.status == "promoted"), None)
        if current is None:
            raise VersionError(
                "no version is promoted, so there is nothing to roll back (serving uses the base model)"
            )
        earlier = [
            r
            for r in rows
            if r.id != current.id
            and r.promoted_at is not None
            and _naive(r.promoted_at) < _naive(current.promoted_at)
        ]
        earlier.sort(key=lambda r: (_naive(r.promoted_at), r.id))
        current.status = "retired"
        # A rolled-back version leaves the promotion stack (its stamp moves into
        # `evaluation`), so a later rollback never returns to it.
        current.evaluation = {
            **(current.evaluation or {}),
            "rolled_back_at": utcnow().isoformat(),
            "was_promoted_at": current.promoted_at.isoformat() if current.promoted_at else None,
        }
        current.promoted_at = None
        restored = earlier[-1] if earlier else None
        if restored is not None:
            restored.status = "promoted"
        session.flush()
        return _info(current), (_info(restored) if restored is not None else None)


def _naive(value: datetime | None) -> datetime:
    """Comparable promotion times (SQLite drops the zone); no time sorts first."""
    if value is None:
        return datetime.min
    return value.replace(tzinfo=None) if value.tzinfo else value


def promoted_reply_model_path(
    database: Database, base_model: Callable[[], Path]
) -> tuple[Path, str]:
    """(directory, version name) of what serving should load: the promoted reply
    version, or the base model (`base_model()`, name "base") when none is promoted."""
    version = promoted_version(database, "reply")
    if version is None:
        return base_model(), BASE_VERSION
    path = Path(version.path)
    if not (path / "config.json").is_file():
        raise ModelUnavailableError(
            f"the promoted model version {version.name!r} has no model at {path}; "
            "promote another version or roll back: chatbot models rollback"
        )
    return path, version.name


class ReplyModelProvider(
    Follower[tuple[str, str], "tuple[PreTrainedModel, PreTrainedTokenizerBase, str]"]
):
    """The reply model serving should use: the promoted version, or the base model
    while none is promoted, followed as `chatbot.following` says (a version that cannot
    be loaded leaves the model already loaded serving; with none loaded yet, `get`
    raises ModelUnavailableError).

    `base_model()` gives the base model's directory (ModelUnavailableError when it is
    missing), `base_repair(path)` what to run when it is damaged."""

    def __init__(
        self,
        database: Database,
        base_model: Callable[[], Path],
        *,
        base_repair: Callable[[Path], str],
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        device: str = "cpu",
    ) -> None:
        self.database = database
        self.device = device
        self._base_model = base_model
        self._base_repair = base_repair
        super().__init__(
            self._promoted_key,
            self._load_version,
            what="reply model",
            check_interval=check_interval,
        )

    def _promoted_key(self) -> tuple[str, str]:
        path, name = promoted_reply_model_path(self.database, self._base_model)
        return str(path), name

    def _load_version(
        self, key: tuple[str, str]
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
        from chatbot.models.reply_model import load_reply_model

        path, name = Path(key[0]), key[1]
        repair = (
            self._base_repair(path)
            if name == BASE_VERSION
            else f"model version {name!r} is damaged; roll back: chatbot models rollback"
        )
        model, tokenizer = load_reply_model(path, device=self.device, repair=repair)
        return model, tokenizer, name
