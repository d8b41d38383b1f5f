"""Writing a file or a directory so that a reader sees the old one or the new one, never
half of one: everything is written under a temporary name beside its target, then
renamed over it with `os.replace` (atomic within one file system). A write that fails
or is interrupted removes its temporary file and leaves the target as it was.

What goes into a file is its writer's business; reading one back is its reader's
(`chatbot.meta_file` for a meta.json). Temporary names are `.<name>.<unique>.tmp`
(a writer that picks a format by suffix, like matplotlib's `savefig`, is told the
format): cleaning up what a killed process left is the caller's job, and a caller that
does it by a known name names the temporary file itself (`temp=`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "replace_directory",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


@contextmanager
def atomic_path(path: Path, *, temp: Path | None = None, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write to; when the block ends without an error
    it replaces `path`, otherwise it is deleted. `temp` names the temporary file (it must
    be in `path`'s directory); by default it is a fresh unique name, so two writers of
    the same file never write into each other's temporary file. `fsync` flushes the file
    to disk before the rename (for a file that must survive a power cut)."""
    path = Path(path)
    if temp is None:
        # Not mkstemp: the file is created by whoever writes it, with the usual
        # permissions, as the file it replaces was.
        unique = f"{os.getpid()}.{secrets.token_hex(4)}"
        temp = path.with_name(f".{path.name}.{unique}.tmp")
    try:
        yield temp
        if fsync:
            with open(temp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(
    path: Path, data: bytes, *, temp: Path | None = None, fsync: bool = False
) -> None:
    """`path` holds `data` afterwards, or (on an error) what it held before; `temp` as
    for `atomic_path`."""
    with atomic_path(path, temp=temp, fsync=fsync) as written:
        written.write_bytes(data)


def write_text_atomic(
    path: Path, text: str, *, temp: Path | None = None, fsync: bool = False
) -> None:
    """`path` holds `text` (UTF-8) afterwards, or (on an error) what it held before."""
    write_bytes_atomic(path, text.encode("utf-8"), temp=temp, fsync=fsync)


def write_json_atomic(
    path: Path,
    payload: object,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    newline: bool = True,
    temp: Path | None = None,
) -> None:
    """`payload` as JSON (values JSON does not know written with `str`), atomically;
    `newline` ends the file with one."""
    text = json.dumps(payload, indent=indent, sort_keys=sort_keys, default=str)
    write_text_atomic(path, text + "\n" if newline else text, temp=temp)


def replace_directory(staged: Path, target: Path) -> None:
    """Move a complete directory `staged` to `target`, replacing what was there.

    A directory cannot be renamed over a non-empty one, so an existing `target` is
    deleted first: a crash between the two leaves no `target` (never half of one) and
    the complete `staged` directory still in place."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(staged, target)
