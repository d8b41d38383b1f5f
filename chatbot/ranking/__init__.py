"""The learned ranker: a cross-encoder, trained here on the company's own pairs from the
shipped MiniLM weights, that reads a conversation and ONE candidate reply and gives the
probability (0-1) that the reply fits.

`settings` holds its knobs, `model` loads a trained version and scores candidates:
the serving side, which knows neither retrieval nor anything above it. Training a
version (examples from retrieval and agents' rejections, sentence-transformers'
`CrossEncoderTrainer`, validation against retrieval's own pick) is
`chatbot.training.ranker`'s job, beside the reply model's training; choosing what to
send from the scores is the dialogue manager's. Heavy libraries
are imported only inside the functions that need them.
"""

from __future__ import annotations

from chatbot.errors import ChatbotError


class RankerError(ChatbotError):
    """A ranker cannot be trained: too few pairs, no retrieval index, a bad setting."""
