"""The key that signs session cookies: from the configuration (`web.session_secret`,
env `CHATBOT_WEB__SESSION_SECRET`) or else generated once into
`<home>/session_secret` with file mode 0600, and read from there ever after by every
worker. Never from the repository, never a default in the code.

Only finds the key; signing and checking cookies is `chatbot.web`'s job.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from chatbot.config import DataPaths, ensure_home
from chatbot.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import SecretStr

SECRET_FILE = "session_secret"
MIN_SECRET_LENGTH = 32
_GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def session_secret(configured: SecretStr | None, paths: DataPaths) -> str:
    """The session signing key: `configured` (the setting `web.session_secret`) when
    set, else the one kept in the data directory of `paths` (see the module docstring)."""
    if configured is not None:
        value = configured.get_secret_value().strip()
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"web.session_secret is {len(value)} characters long; use at least {MIN_SECRET_LENGTH} "
                f"random ones (e.g. {_GENERATE}), or unset it to have one generated into the data directory"
            )
        return value
    path = ensure_home(paths) / SECRET_FILE
    existing = _read(path)
    if existing is not None:
        return existing
    return _create(path)


def _read(path: Path) -> str | None:
    """The key stored at `path`, None when there is no file; ConfigError when the file
    is unsafe (readable by others, not a regular file) or holds no usable key."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"session secret file {path} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"session secret file {path} is not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise ConfigError(
                f"session secret file {path} can be read by other users (mode {stat.S_IMODE(info.st_mode):03o}); "
                f"run: chmod 600 {path}"
            )
        raw = fh.read(4096)
    try:
        value = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        value = ""
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"session secret file {path} does not hold a usable key (at least {MIN_SECRET_LENGTH} ASCII characters); "
            "delete it to have a new one generated (everybody will have to log in again)"
        )
    return value


def _create(path: Path) -> str:
    """Write a new key to `path` unless another process does first; returns the key
    that is in the file afterwards."""
    value = secrets.token_urlsafe(48)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            if os.name == "posix":
                os.fchmod(fh.fileno(), 0o600)
            fh.write(value + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # A hard link creates the name only if it is free: the first process wins
            # and every other one reads the winner's key.
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            # A file system without hard links: replace, unless someone was faster.
            if not path.exists():
                os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(
            f"session secret file {path} cannot be written ({exc.strerror})"
        ) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    stored = _read(path)
    if stored is None:
        raise ConfigError(f"session secret file {path} disappeared while it was being created")
    return stored
