"""Console sessions kept in the store: a login starts one, and it lasts until it
expires, its user logs out, or the account's password or role changes or the account
is removed (`chatbot.accounts.users` deletes the rows then). Every request checks its
row, so an ended session opens nothing, in any worker, at once, even with a copy of
the old cookie.

The browser holds only a random key (inside the signed cookie of `chatbot.web.auth`);
the store holds its SHA-256. Where the job ends: cookies and requests are
`chatbot.web`'s; accounts and passwords are `chatbot.accounts.users`'.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from chatbot.accounts.users import UserInfo, _info, _utc
from chatbot.store.access_schema import WebSession
from chatbot.store.database import Database
from chatbot.store.support_schema import User

KEY_BYTES = 32


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def start_session(
    database: Database,
    user_id: int,
    *,
    hours: float,
    address: str | None = None,
    now: datetime | None = None,
) -> str:
    """A new session for the user; returns its key (for the cookie). Expired sessions of
    everybody are swept away on the way."""
    now = _utc(now)
    key = secrets.token_urlsafe(KEY_BYTES)
    with database.session() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at <= now))
        session.add(
            WebSession(
                key_hash=_digest(key),
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(hours=hours),
                address=(address or None) and address[:64],
            )
        )
    return key


def session_user(
    database: Database, key: object, *, now: datetime | None = None
) -> UserInfo | None:
    """The active account whose session `key` is, or None (no such session, expired,
    or the account is disabled). One indexed read per request."""
    if not isinstance(key, str) or not key or len(key) > 200:
        return None
    with database.session() as session:
        row = session.execute(
            select(WebSession.expires_at, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.key_hash == _digest(key))
        ).first()
        if row is None:
            return None
        expires_at, user = row
        if _utc(expires_at) <= _utc(now) or not user.active:
            return None
        return _info(user)


def end_session(database: Database, key: object) -> None:
    """Log out: the session's row goes; its cookie opens nothing from now on."""
    if isinstance(key, str) and key:
        with database.session() as session:
            session.execute(delete(WebSession).where(WebSession.key_hash == _digest(key)))


def count_sessions(database: Database, user_id: int, *, now: datetime | None = None) -> int:
    """How many live sessions the user has (for the admin console and tests)."""
    with database.session() as session:
        rows = session.scalars(
            select(WebSession.key_hash).where(
                WebSession.user_id == user_id, WebSession.expires_at > _utc(now)
            )
        )
        return len(list(rows))
