"""The base of every settings section (`ingest`, `retrieval`, `training`, `dialogue`).

Lives apart from `chatbot.config` so that the sections, which `chatbot.config` imports,
can subclass it without a circular import."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")
