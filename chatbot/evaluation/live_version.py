"""Which reply-model version of the LIVE store the evaluation runs as `trained`: the
promoted one or one named, read without ever creating the live database. Loading the
model and evaluating it are `replies`' job.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.errors import ChatbotError

if TYPE_CHECKING:
    from chatbot.models.versions import VersionInfo


def live_promoted_version(
    database_url: str, name: str | None = None
) -> tuple[VersionInfo | None, str]:
    """(the promoted reply version of the live store at `database_url`, or the one called
    `name`, or None; a note saying why not). Never creates the live database: a missing
    SQLite file means no versions."""
    from sqlalchemy.engine import make_url

    from chatbot.models.versions import promoted_version
    from chatbot.store.database import Database, redact_url, require_schema

    url = database_url
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
