"""What the web pages are built from: the settings, the store and the dialogue manager,
opened once at start-up by `chatbot serve` (or a test) and passed to each page builder.
Opening them is `chatbot.dialogue.sources`' job; this module only carries them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatbot.dialogue.manager import DialogueManager
    from chatbot.settings import Settings
    from chatbot.store.database import Database
    from chatbot.web.readiness import ModelWarmup


@dataclass
class Services:
    settings: Settings
    database: Database
    manager: DialogueManager
    # The key customers' conversation tokens are signed with; None: derived from the
    # session secret on first use (`chatbot.support.customer.token_key`).
    conversation_key: bytes | None = None
    # The reply model loading in the background since start (None: loaded on first use).
    warmup: ModelWarmup | None = None

    def customer_token_key(self) -> bytes:
        if self.conversation_key is None:
            from chatbot.accounts.secret import session_secret
            from chatbot.support.customer import token_key

            self.conversation_key = token_key(
                session_secret(self.settings.web.session_secret, self.settings.paths)
            )
        return self.conversation_key
