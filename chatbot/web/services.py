"""What the web pages are built from: the settings, the store and the dialogue manager,
opened once at start-up by `chatbot serve` (or a test) and passed to each page builder.
Opening them is `chatbot.dialogue.sources`' job; this module only carries them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatbot.config import Settings
    from chatbot.dialogue.manager import DialogueManager
    from chatbot.store.database import Database
    from chatbot.web.readiness import ModelWarmup


@dataclass
class Services:
    settings: Settings
    database: Database
    manager: DialogueManager
    # The reply model loading in the background since start (None: loaded on first use).
    warmup: ModelWarmup | None = None
