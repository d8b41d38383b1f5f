"""Checksums of a model directory's weights: written once when the directory is made
(`models prepare`, a training run's version), checked before the weights are trusted
(`models prepare`, `models check`, every load while serving). A file cut short by a full
disk or a copy that stopped half-way loads without complaint in some formats; its
SHA-256 does not match.

`checksums.json` lists every weight and tokenizer file with its size and SHA-256. A
directory without it (a model the admin points `reply_model_path` at, one made by an
older version) is "unverified", not damaged. Repairing is the callers' job.

A file is hashed once per process while it stays as it was: serving checks the same
weights at start (`models prepare`'s check of its cache), at the warm-up load and at
each later load (a rollback to a version loaded before), and hashing hundreds of MB
again finds nothing new unless the file was written since (its inode, size, mtime or
ctime changed). A file written shortly before it was hashed is hashed again each time:
file times are coarse, and a rewrite of the same size within the same tick would keep them.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from chatbot.errors import ModelUnavailableError
from chatbot.files import write_json_atomic

CHECKSUM_FILE = "checksums.json"
# Files of a model directory that describe it rather than make it up.
_NOT_CHECKED = {CHECKSUM_FILE, "meta.json", "metrics.json"}
_NOT_CHECKED_SUFFIXES = (".png", ".tmp")

# Longer than the coarsest file-time tick (2 s): a file changed more recently than this
# before it was hashed is not remembered as matching.
SETTLED_SECONDS = 2.0
# A file's identity on disk: (inode, size, mtime, ctime), in nanoseconds.
_Identity = tuple[int, int, int, int]
# Files whose SHA-256 matched in this process: path -> (identity then, the SHA-256).
_matched: dict[Path, tuple[_Identity, str]] = {}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.name not in _NOT_CHECKED and not p.name.endswith(_NOT_CHECKED_SUFFIXES)
    )


def write_checksums(directory: Path) -> Path:
    """Write `checksums.json` for the files now in `directory` (call it on the staging
    directory, before the rename that publishes it)."""
    files = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_of(p)}
        for p in _checked_files(directory)
    }
    target = directory / CHECKSUM_FILE
    write_json_atomic(target, {"algorithm": "sha256", "files": files}, sort_keys=True)
    return target


def has_checksums(directory: Path) -> bool:
    return (Path(directory) / CHECKSUM_FILE).is_file()


def verify_checksums(directory: Path, repair: str | None = None) -> bool:
    """True when every file listed in `checksums.json` is there with its size and
    SHA-256; False when the directory has no checksums (unverified). A missing, cut
    short or changed file raises ModelUnavailableError naming it (and `repair`)."""
    directory = Path(directory)
    listing = directory / CHECKSUM_FILE
    if not listing.is_file():
        return False
    hint = f"; {repair}" if repair else ""
    try:
        files = json.loads(listing.read_text())["files"]
        expected = {str(name): (int(v["size"]), str(v["sha256"])) for name, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ModelUnavailableError(
            f"the checksums of the model at {directory} are unreadable{hint}"
        ) from None
    for name, (size, digest) in expected.items():
        path = directory / name
        if not path.is_file():
            raise ModelUnavailableError(f"the model at {directory} is missing {name}{hint}")
        actual_size = path.stat().st_size
        if actual_size != size:
            raise ModelUnavailableError(
                f"the model file {path} is damaged ({actual_size} bytes, expected {size}: cut short or changed){hint}"
            )
        if not _sha256_matches(path, digest):
            raise ModelUnavailableError(
                f"the model file {path} is damaged (its SHA-256 does not match the one written with it){hint}"
            )
    return True


def _identity(path: Path) -> _Identity:
    info = path.stat()
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _sha256_matches(path: Path, digest: str) -> bool:
    """Whether `path` hashes to `digest`; not hashed again while the file is as it was
    when it last matched in this process (see the module docstring)."""
    key = path.resolve()
    before = _identity(key)
    if _matched.get(key) == (before, digest):
        return True
    started = time.time_ns()
    if sha256_of(key) != digest:
        return False
    _ino, _size, mtime, ctime = before
    settled = max(mtime, ctime) < started - SETTLED_SECONDS * 1e9
    if settled and _identity(key) == before:  # and not written while it was hashed
        _matched[key] = (before, digest)
    return True
