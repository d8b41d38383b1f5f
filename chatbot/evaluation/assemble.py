"""Building the evaluated variants over the throw-away store: the reply models each
needs (loaded once), the ranker learned from the train files' pairs, and each
variant (`variants`) with what it answers from. Running them over the turns and
scoring what they sent are `replies`' and `scoring`'s jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.errors import ChatbotError
from chatbot.evaluation.settings import EvaluationSettings
from chatbot.evaluation.variants import Variant

if TYPE_CHECKING:
    from chatbot.dialogue.model_wait import LoadedModel
    from chatbot.models.versions import VersionInfo
    from chatbot.ranking.model import Ranker
    from chatbot.retrieval.retriever import PairRetriever
    from chatbot.store.database import Database


class ReplyModels:
    """The reply models the variants generate with, each loaded once: `trained` is the
    version evaluated (when there is one), any other name the configured base model."""

    def __init__(self, settings: EvaluationSettings, trained_version: VersionInfo | None):
        self.settings = settings
        self.trained_version = trained_version
        self.loaded: dict[str, LoadedModel] = {}

    def __call__(self, name: str) -> LoadedModel:
        if name not in self.loaded:
            from chatbot.models.reply_model import load_reply_model, reply_model_path

            trained_version = self.trained_version
            if name == "trained" and trained_version is not None:
                model, tokenizer = load_reply_model(Path(trained_version.path))
                self.loaded[name] = (model, tokenizer, trained_version.name)
            else:
                path = reply_model_path(self.settings.paths)
                model, tokenizer = load_reply_model(path)
                self.loaded[name] = (model, tokenizer, f"base:{path.name}")
        return self.loaded[name]


def train_ranker_for(
    settings: EvaluationSettings,
    database: Database,
    retriever: PairRetriever,
    variants: list[str],
    notes: list[str],
    skipped: dict[str, str],
) -> tuple[Ranker, bool] | None:
    """The ranker learned from the train files' pairs (`chatbot.ranking`), as `chatbot
    ranker train` makes it: (the loaded ranker, whether its acceptance rule kept it), or
    None when it cannot be trained here (the `ranker` variant is then skipped)."""
    from chatbot.ranking.model import Ranker
    from chatbot.training.ranker import train_ranker

    if not settings.ranker.enabled:
        if "ranker" in variants:
            skipped["ranker"] = "ranker.enabled is false"
        return None
    try:
        result = train_ranker(
            settings.paths, settings.ranker, settings.training, database, retriever
        )
    except ChatbotError as exc:
        if "ranker" in variants:
            skipped["ranker"] = f"no ranker could be trained: {exc}"
        notes.append(f"ranker: not trained ({exc}); refined scores with the hand-set critique")
        return None
    verdict = (
        "kept: it beat retrieval's own order on the validation pairs"
        if result.kept
        else f"NOT kept by its acceptance rule ({result.why}); the dialogue manager would not use it"
    )
    notes.append(f"ranker: trained on the train files' pairs, {verdict}")
    return Ranker.load(Path(result.path)), bool(result.kept)


def build_variant(
    name: str,
    settings: EvaluationSettings,
    database: Database,
    retriever: PairRetriever,
    model_for: Callable[[str], LoadedModel],
    trained_version: VersionInfo | None,
    notes: list[str],
    ranker: tuple[Ranker, bool] | None = None,
) -> Variant:
    from chatbot.evaluation import variants as V

    fill = V.SlotFiller(database)
    if name == "knn":
        return V.KnnVariant(retriever, database, fill, batch_size=settings.retrieval.batch_size)
    if name == "retrieval":
        return V.RetrievalVariant(retriever, fill=fill)
    if name == "ranker" and ranker is not None:
        return V.RankerVariant(retriever, ranker[0], settings.ranker.retrieve_k, fill=fill)
    if name in ("base", "trained"):
        model, tokenizer, version = model_for(name)
        return V.OnePassVariant(
            name,
            model,
            tokenizer,
            version,
            retriever,
            settings.prompt,
            settings.dialogue.max_new_tokens,
        )
    from chatbot.dialogue.manager import DialogueManager

    dialogue = settings.dialogue
    if (
        "@" in name
    ):  # refined@N: N rounds, and a draft on every turn (nothing sent before generating)
        rounds = int(name.split("@", 1)[1])
        dialogue = dialogue.model_copy(update={"max_rounds": rounds, "send_retrieved_at": 1.0})
    source = None
    if dialogue.generate:
        model, tokenizer, version = model_for("trained" if trained_version is not None else "base")
        source = V.FixedReplySource(model, tokenizer, version)
        notes.append(f"refined: the dialogue manager drafts with {version}")
    else:
        notes.append(
            "refined: dialogue.generate is off, so the manager answers from retrieved past answers only"
        )
    from chatbot.text.prompt import PromptFormat

    prompt = PromptFormat.from_settings(settings.prompt)
    manager = DialogueManager(
        dialogue,
        database,
        retriever,
        source,
        prompt,
        ranker=ranker[0] if ranker is not None and ranker[1] else None,
    )
    return V.RefinedVariant(manager, database, name=name)
