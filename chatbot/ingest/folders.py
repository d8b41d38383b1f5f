"""Which files of a folder an import takes: every file under it (recursively, in sorted
order) whose name ends in a transcript suffix, hidden files and folders skipped. The
suffix only picks the candidates (a folder also holds READMEs and screenshots); the
format of each file is still told apart by its content (`detect`). Importing them is
`importer`'s job."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chatbot.errors import InputError

IMPORTABLE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def is_importable(path: Path) -> bool:
    return path.suffix.lower() in IMPORTABLE_SUFFIXES and not is_hidden(path)


@dataclass
class Expanded:
    files: list[Path] = field(default_factory=list)  # what to import, in order
    ignored: list[Path] = field(
        default_factory=list
    )  # files in the folders that are not transcripts


def folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(importable files, other non-hidden files) under `folder`, each sorted."""
    importable: list[Path] = []
    ignored: list[Path] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        (importable if is_importable(path) else ignored).append(path)
    return importable, ignored


def expand_paths(paths: list[Path]) -> Expanded:
    """Files stay as they are (their format is checked on import); a folder becomes the
    importable files under it. InputError for a folder with none."""
    out = Expanded()
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            out.files.append(path)
            continue
        importable, ignored = folder_files(path)
        if not importable:
            raise InputError(
                f"holds no file to import: expected files ending in {', '.join(IMPORTABLE_SUFFIXES)} "
                f"(in it or its subfolders; hidden files are skipped){f', found {len(ignored)} other file(s)' if ignored else ''}",
                path=str(path),
            )
        out.files.extend(importable)
        out.ignored.extend(ignored)
    return out
