"""What a customer reads from the support side itself, with no person or model writing it:
the defaults of the texts the recovery sweep (`chatbot.support.recovery`) posts. Text
only; a deployment changes it through its settings (`web.interrupted_message`), which
start from these defaults."""

from __future__ import annotations

# What a customer reads when the server died while answering them.
DEFAULT_INTERRUPTED_MESSAGE = (
    "Sorry, we were interrupted before I could answer your last message. "
    "A member of our team will reply here as soon as possible."
)
