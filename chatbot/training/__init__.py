"""Fine-tuning the reply model on the stored training pairs.

The package turns training pairs (plus retrieved past answers) into chat-formatted
examples, runs the multi-step optimisation (AdamW, warm-up and decay, accumulation,
validation, early stopping, label smoothing, noise augmentation, checkpoint fusion),
and hands a finished model directory to `chatbot.models.versions`. Serving the model
and deciding what to say belong elsewhere. Heavy libraries are imported only inside
the functions that need them.
"""

from __future__ import annotations

from chatbot.errors import ChatbotError


class TrainingError(ChatbotError):
    """Training cannot start or continue: too few pairs, a run that cannot be resumed."""
