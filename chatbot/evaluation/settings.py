"""What the reply evaluation reads of the configuration: the data paths (the live store,
the model cache, the configured models) and the sections of the parts it runs (import,
index and retrieval, the ranker and its training, the dialogue manager, the prompt).
The CLI builds it from the assembled settings; which variants run and on which files
are `evaluate_replies`' arguments, not settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.config import DataPaths
from chatbot.dialogue.settings import DialogueSettings
from chatbot.ingest.settings import IngestSettings
from chatbot.ranking.settings import RankerSettings
from chatbot.retrieval.settings import RetrievalSettings
from chatbot.training.prompt import PromptSettings
from chatbot.training.settings import TrainingSettings

if TYPE_CHECKING:
    from chatbot.settings import Settings


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


def whole_settings(settings: EvaluationSettings) -> Settings:
    """TEMPORARY (issue 25): the index builder, the retriever, the ranker's training and
    the model paths still take the assembled settings on this branch; they are being
    changed to take their sections and `DataPaths`, and this bridge goes with that
    change (each call then passes `settings.paths` and the sections it names)."""
    from chatbot.settings import Settings

    paths = settings.paths
    return Settings.model_construct(
        home=paths.home,
        database_url=paths.database_url,
        model_cache=paths.model_cache_dir,
        embedder_path=paths.embedder_path,
        reply_model_path=paths.reply_model_path,
        ingest=settings.ingest,
        retrieval=settings.retrieval,
        dialogue=settings.dialogue,
        prompt=settings.prompt,
        ranker=settings.ranker,
        training=settings.training,
    )
