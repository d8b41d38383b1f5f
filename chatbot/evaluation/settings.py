"""What the reply evaluation reads of the configuration: the data paths (the live store,
the model cache, the configured models) and the sections of the parts it runs (import,
index and retrieval, the ranker and its training, the dialogue manager, the prompt).
The CLI builds it from the assembled settings; which variants run and on which files
are `evaluate_replies`' arguments, not settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatbot.config import DataPaths
from chatbot.dialogue.settings import DialogueSettings
from chatbot.ingest.settings import IngestSettings
from chatbot.ranking.settings import RankerSettings
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.text.prompt import PromptSettings
from chatbot.training.settings import TrainingSettings


@dataclass(frozen=True)
class EvaluationSettings:
    """The sections a reply evaluation needs, and where the data lives."""

    paths: DataPaths
    ingest: IngestSettings
    retrieval: RetrievalSettings
    dialogue: DialogueSettings
    prompt: PromptSettings
    ranker: RankerSettings
    training: TrainingSettings
