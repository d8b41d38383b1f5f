"""Password hashing (argon2id through argon2-cffi) and the password policy.

Only hashes and checks strings; where a hash is stored, and what a failed check leads
to (lockout, rate limits), is `chatbot.accounts.users`'s and `chatbot.web`'s job.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from chatbot.errors import InputError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024


@lru_cache(maxsize=1)
def _recommended_hasher() -> PasswordHasher:
    # argon2-cffi's defaults are RFC 9106's recommended profile (argon2id, 64 MiB, t=3).
    return PasswordHasher()


#: Builds the hasher every function here uses. The default is argon2's recommended
#: parameters; tests replace it with a cheaper one (see tests/test_accounts.py).
#: Production code never changes it.
HASHER_FACTORY: Callable[[], PasswordHasher] = _recommended_hasher


def password_hasher() -> PasswordHasher:
    return HASHER_FACTORY()


def check_password_policy(password: str, *, username: str | None = None) -> None:
    """Raise InputError saying why `password` is not acceptable for a new password."""
    if not isinstance(password, str):
        raise InputError("password must be text")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(
            f"password is too short: {len(password)} characters, at least {MIN_PASSWORD_LENGTH} needed"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(
            f"password is too long: {len(password)} characters, at most {MAX_PASSWORD_LENGTH} allowed"
        )
    if len(set(password)) == 1:
        raise InputError("password must not be one character repeated")
    if username and password.strip().lower() == username.strip().lower():
        raise InputError("password must not be the username")


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted; PHC string format, about 100 characters)."""
    return password_hasher().hash(password)


def verify_password(stored_hash: object, password: object) -> bool:
    """True when `password` matches `stored_hash`; False on a mismatch, a malformed or
    foreign hash, or a password that is not text. Never raises for a wrong password."""
    if not isinstance(stored_hash, str) or not isinstance(password, str):
        return False
    try:
        return password_hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when `stored_hash` was made with other parameters than the current ones
    (it should be replaced by a new hash the next time the password is known)."""
    try:
        return password_hasher().check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


_dummy_lock = threading.Lock()
_dummy_hashes: dict[tuple[object, ...], str] = {}


def dummy_verify(password: str) -> None:
    """Spend the time a real check would, against a hash no password matches: used for
    unknown usernames, so that the time a login takes does not tell which names exist."""
    hasher = password_hasher()
    key = (
        hasher.time_cost,
        hasher.memory_cost,
        hasher.parallelism,
        hasher.hash_len,
        hasher.salt_len,
        hasher.type,
    )
    with _dummy_lock:
        dummy = _dummy_hashes.get(key)
        if dummy is None:
            dummy = _dummy_hashes[key] = hasher.hash(secrets.token_urlsafe(32))
    verify_password(dummy, password if isinstance(password, str) else "")
