"""Reading the `meta.json` that sits beside everything the program writes (an index
version, an adapted embedder, the converted reply model): the file as a JSON object, or
a `MetaFileError` that names the file and what is wrong with it. What a meta.json must
hold is its reader's business (`chatbot.retrieval.index_files.load_meta` checks an index
version's); writing one is its writer's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatbot.errors import ChatbotError

META_FILE = "meta.json"


class MetaFileError(ChatbotError):
    """A meta.json is missing, unreadable, not JSON, or not a JSON object."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def describe_problem(exc: BaseException) -> str:
    """One line about why a file could not be read."""
    if isinstance(exc, FileNotFoundError):
        return "missing"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def read_meta(directory: Path) -> dict[str, Any]:
    """`directory/meta.json` as a JSON object; MetaFileError when it cannot be."""
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MetaFileError(path, describe_problem(exc)) from None
    if not isinstance(meta, dict):
        raise MetaFileError(path, "is not a JSON object")
    return meta
