"""How settings are read, and the data directory every layer needs: a leaf module.

Values come from, highest priority first: keyword overrides (tests, the CLI's own
flags), `CHATBOT_*` environment variables (nested sections with a double underscore,
e.g. `CHATBOT_DIALOGUE__MAX_ROUNDS`), an optional TOML file (`--config FILE` or
`CHATBOT_CONFIG`), and the defaults. This module holds the reading machinery and
`DataPaths`; it imports no feature package. The assembled `Settings` (every package's
section) lives in `chatbot.settings`, which only entry points import. Nothing is
created on disk except through `ensure_home`, called by the commands that write.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from chatbot.errors import ConfigError

CONFIG_FILE_ENV = "CHATBOT_CONFIG"
# The parsed file travels to the settings source through this variable, so that
# building settings from two files at once (tests) never mixes them up.
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar(
    "chatbot_config_file_values", default=None
)


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "chatbot"


@dataclass(frozen=True)
class DataPaths:
    """Where the data lives: what every layer may need to know of the configuration
    besides its own section (built by `Settings.paths`)."""

    home: Path
    database_url: str
    model_cache_dir: Path
    embedder_path: Path | None = None
    reply_model_path: Path | None = None

    @property
    def index_dir(self) -> Path:
        return self.home / "indexes"

    @property
    def versions_dir(self) -> Path:
        return self.home / "versions"


class FileSource(PydanticBaseSettingsSource):
    """Values read from the TOML configuration file (already parsed)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(  # pragma: no cover - __call__ is used
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def file_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
    """The settings source of the file being read by `reading_file` (empty outside it)."""
    return FileSource(settings_cls, _FILE_VALUES.get() or {})


@contextmanager
def reading_file(config_file: Path | str | None) -> Iterator[str | None]:
    """Parse the configuration file (the argument, else `CHATBOT_CONFIG`) and make its
    values the file source while the settings are built; yields the path read, if any."""
    path = config_file or os.environ.get(CONFIG_FILE_ENV)
    file_values = read_config_file(Path(path)) if path else {}
    token = _FILE_VALUES.set(file_values)
    try:
        yield str(path) if path else None
    finally:
        _FILE_VALUES.reset(token)


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc}") from None


def ensure_home(paths: DataPaths) -> Path:
    """Create the data directory tree and check it can be written; returns the home."""
    home = paths.home
    for directory in (home, paths.model_cache_dir, paths.index_dir, paths.versions_dir):
        # A new data directory is its owner's alone (the store, secrets, logs); the mode
        # applies to the directory made, not to its parents nor to one already there.
        mode = 0o700 if directory == home else 0o777
        try:
            directory.mkdir(mode=mode, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"data directory {directory} cannot be created ({exc.strerror}); set CHATBOT_HOME to a writable directory"
            ) from None
    # One probe name per caller: several workers may start at once.
    probe = home / f".write-test.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"data directory {home} is not writable ({exc.strerror}); set CHATBOT_HOME to a writable directory"
        ) from None
    return home
