"""The assembled configuration: every package's section and the data paths, read once.

Only entry points (the CLI, `chatbot serve` and the web app's services, the jobs'
worker) build a `Settings` and import this module; they hand each layer below its own
section and `DataPaths`, never the whole object. How values are read (overrides,
`CHATBOT_*` variables, a TOML file, defaults) is `chatbot.config`'s job.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from chatbot.config import DataPaths, default_home, file_source, reading_file
from chatbot.dialogue.settings import DialogueSettings
from chatbot.errors import ConfigError
from chatbot.ingest.settings import IngestSettings
from chatbot.orders.settings import OrderSettings
from chatbot.ranking.settings import RankerSettings
from chatbot.retention import RetentionSettings
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.text.prompt import PromptSettings
from chatbot.training.settings import TrainingSettings
from chatbot.web_settings import WebSettings


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
    def paths(self) -> DataPaths:
        """What the layers below the entry points may know besides their own section."""
        return DataPaths(
            home=self.home,
            database_url=self.resolved_database_url,
            model_cache_dir=self.model_cache_dir,
            embedder_path=self.embedder_path,
            reply_model_path=self.reply_model_path,
        )

    @property
    def index_dir(self) -> Path:
        return self.paths.index_dir

    @property
    def versions_dir(self) -> Path:
        return self.paths.versions_dir

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'chatbot.db'}"

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.home / "models"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, file_source(settings_cls))


def load_settings(config_file: Path | str | None = None, **overrides: object) -> Settings:
    """Build the settings from overrides, environment, an optional file and defaults."""
    with reading_file(config_file) as path:
        try:
            # pydantic validates and coerces each value (a section may come as a dict); its
            # generated signature declares only the final types.
            return Settings(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
                for err in exc.errors()
            )
            origin = (
                f" (from {path} or CHATBOT_* variables)" if path else " (from CHATBOT_* variables)"
            )
            raise ConfigError(f"invalid configuration{origin}: {problems}") from None
