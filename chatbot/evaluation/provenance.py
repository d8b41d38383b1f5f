"""What a reply evaluation says about itself (its report's `meta`): the program
version and time, the variants run and the models they used, what every metric
means, the settings that shaped the answers, and the machine. The figures are
`scoring`'s; writing the report is `report`'s.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chatbot.evaluation.settings import EvaluationSettings

if TYPE_CHECKING:
    from chatbot.dialogue.model_wait import LoadedModel
    from chatbot.models.versions import VersionInfo


def run_meta(
    settings: EvaluationSettings,
    variants: list[str],
    trained_version: VersionInfo | None,
    loaded: dict[str, LoadedModel],
) -> dict[str, Any]:
    """The report's `meta` for a run of `variants` (see the module docstring)."""
    from chatbot import __version__
    from chatbot.models.embedder import embedder_path

    return {
        "what": "chatbot eval replies",
        "chatbot": __version__,
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "variants_run": variants,
        "trained_version": trained_version.name if trained_version is not None else None,
        "models": {name: version for name, (_m, _t, version) in loaded.items()},
        "embedder": str(embedder_path(settings.paths)),
        "metrics": {
            "answered_turn": "the customer was sent a reply of the assistant's own (decision answer, "
            "answer_flagged, act, decline or clarify); a hand-off, a held draft or silence is not an "
            "answer, and its text is never scored",
            "coverage": "share of turns answered (refined: its decision; retrieval: answered unless the "
            "out-of-scope check hands off; one-pass variants always answer)",
            "answered": "quality of the answered turns only: rouge_l (ROUGE-L F-measure, rouge-score, stemmed, "
            "mean), embedding_similarity (mean cosine of sent reply and agent reply embeddings, the "
            "configured embedder), sentence_bleu (mean sacrebleu sentence BLEU, 0-100), bleu "
            "(sacrebleu corpus BLEU, 0-100), document (turns where the real agent sent a help "
            "document: the sent reply or its citations point to it)",
            "all_turns": "the same quality over every turn, an unanswered turn scoring 0: the figure at equal "
            "footing across variants that answer different turns",
            "latency_s": "p50, p95 and mean seconds per turn (retrieval included)",
            "comparisons": "every two variants a, b: paired differences a - b (coverage, all-turns quality, "
            "quality on the turns both answered); better = the higher one where the interval "
            "excludes 0",
            "intervals": "every figure is {value, low, high}: a 95% percentile bootstrap interval, resampling "
            "conversations with replacement (data.intervals)",
        },
        "settings": {
            "retrieval": settings.retrieval.model_dump(mode="json"),
            "dialogue": {
                k: v
                for k, v in settings.dialogue.model_dump(mode="json").items()
                if k not in ("system_prompt", "handoff_message", "hold_message")
            },
            "prompt": {
                k: getattr(settings.prompt, k)
                for k in ("evidence_k", "evidence_max_chars", "history_turns")
            },
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "argv": sys.argv[1:],
        },
    }
