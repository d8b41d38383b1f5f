"""The learned ranker: a cross-encoder, trained here on the company's own pairs from the
shipped MiniLM weights, that reads a conversation and ONE candidate reply and gives the
probability (0-1) that the reply fits.

`settings` holds its knobs, `model` loads a trained version and scores candidates,
`train` builds the examples (true replies, hard negatives from retrieval, agents'
rejections), trains with sentence-transformers' `CrossEncoderTrainer`, validates
against retrieval's own pick and the promoted ranker, and records the version.
Choosing what to send from the scores is the dialogue manager's job. Heavy libraries
are imported only inside the functions that need them.
"""

from __future__ import annotations

from chatbot.errors import ChatbotError


class RankerError(ChatbotError):
    """A ranker cannot be trained: too few pairs, no retrieval index, a bad setting."""
