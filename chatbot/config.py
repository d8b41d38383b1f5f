"""The one configuration object, built at the entry point and passed down.

Values come from, highest priority first: keyword overrides (tests, the CLI's own
flags), `CHATBOT_*` environment variables (nested sections with a double underscore,
e.g. `CHATBOT_DIALOGUE__MAX_ROUNDS`), an optional TOML file (`--config FILE` or
`CHATBOT_CONFIG`), and the defaults below. This module only builds and checks the
settings; it creates nothing on disk except through `ensure_home`, called by the
commands that write.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from chatbot.dialogue.settings import DialogueSettings
from chatbot.errors import ConfigError
from chatbot.ingest.settings import IngestSettings
from chatbot.orders.settings import OrderSettings
from chatbot.ranking.settings import RankerSettings
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.settings_section import Section
from chatbot.text.prompt import PromptSettings
from chatbot.training.settings import TrainingSettings
from chatbot.web.settings import WebSettings

CONFIG_FILE_ENV = "CHATBOT_CONFIG"
# The parsed file travels to the settings source through this variable, so that
# building settings from two files at once (tests) never mixes them up.
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar(
    "chatbot_config_file_values", default=None
)


class RetentionSettings(Section):
    """The `retention` section (`CHATBOT_RETENTION__*`): how long live conversations are
    kept; `chatbot retention run` applies it (from cron, for instance)."""

    days: int | None = Field(
        default=None,
        ge=1,
        description="Live conversations with no activity for this many days are deleted or anonymised; None: kept for ever.",
    )
    mode: Literal["delete", "anonymise"] = Field(
        default="delete",
        description="delete: remove them; anonymise: keep counts and decisions, blank every text.",
    )
    batch_size: int = Field(
        default=200, ge=1, le=10_000, description="Conversations per transaction."
    )


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "chatbot"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATBOT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(
        default_factory=default_home,
        description="Data directory: database, indexes, model cache, versions.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in the data directory."
    )
    model_cache: Path | None = Field(
        default=None, description="Where converted models live; default <home>/models."
    )
    embedder_path: Path | None = Field(
        default=None,
        description="A sentence-transformers directory; default the packaged all-MiniLM-L6-v2.",
    )
    reply_model_path: Path | None = Field(
        default=None,
        description="A transformers causal-LM directory; default the converted SmolLM2-135M-Instruct.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=1, le=65535)
    retrieval: RetrievalSettings = Field(
        default_factory=RetrievalSettings, description="Index, fusion and out-of-scope settings."
    )
    ingest: IngestSettings = Field(
        default_factory=IngestSettings,
        description="Transcript import: redaction, pair building, splits.",
    )
    dialogue: DialogueSettings = Field(
        default_factory=DialogueSettings,
        description="Answer cache, refinement, fusion, smoothing and hand-off.",
    )
    training: TrainingSettings = Field(
        default_factory=TrainingSettings,
        description="Reply-model fine-tuning: budget, schedule, weights, fusion.",
    )
    prompt: PromptSettings = Field(
        default_factory=PromptSettings,
        description="What the reply model is shown: the same in training, serving and evaluation.",
    )
    ranker: RankerSettings = Field(
        default_factory=RankerSettings,
        description="The learned ranker: what it reads, how it is trained and when it replaces the serving one.",
    )
    web: WebSettings = Field(
        default_factory=WebSettings,
        description="Sessions, logins, live updates and uploads of the web app.",
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="How long live conversations are kept."
    )
    orders: OrderSettings = Field(
        default_factory=OrderSettings,
        description="The order system an answer may look the customer's own order up in.",
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'chatbot.db'}"

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.home / "models"

    @property
    def index_dir(self) -> Path:
        return self.home / "indexes"

    @property
    def versions_dir(self) -> Path:
        return self.home / "versions"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls, _FILE_VALUES.get() or {}))


class _FileSource(PydanticBaseSettingsSource):
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


def load_settings(config_file: Path | str | None = None, **overrides: object) -> Settings:
    """Build the settings from overrides, environment, an optional file and defaults."""
    path = config_file or os.environ.get(CONFIG_FILE_ENV)
    file_values = read_config_file(Path(path)) if path else {}
    token = _FILE_VALUES.set(file_values)
    try:
        # pydantic validates and coerces each value (a section may come as a dict); its
        # generated signature declares only the final types.
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        origin = f" (from {path} or CHATBOT_* variables)" if path else " (from CHATBOT_* variables)"
        raise ConfigError(f"invalid configuration{origin}: {problems}") from None
    finally:
        _FILE_VALUES.reset(token)


def ensure_home(settings: Settings) -> Path:
    """Create the data directory tree and check it can be written; returns the home."""
    home = settings.home
    for directory in (home, settings.model_cache_dir, settings.index_dir, settings.versions_dir):
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
