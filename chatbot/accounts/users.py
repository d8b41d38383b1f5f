"""Agents' and admins' accounts in the store: add, list, remove, change password or
role, and log in (throttled by `chatbot.accounts.throttle`, never locked out).

Usernames are kept as typed and matched without regard to case ("Alice" logs in as
"alice"). Every change that must end existing sessions (password, role, removal)
deletes the account's rows in `web_sessions` (`chatbot.accounts.sessions`). Cookies,
forms and the per-client rate limit are `chatbot.web`'s; hashing is
`chatbot.accounts.passwords`'s.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from chatbot.accounts import throttle
from chatbot.accounts.passwords import (
    MAX_PASSWORD_LENGTH,
    check_password_policy,
    dummy_verify,
    hash_password,
    needs_rehash,
    verify_password,
)
from chatbot.accounts.throttle import ThrottlePolicy
from chatbot.errors import AccountError, InputError, LoginRefused, LoginThrottled
from chatbot.store.access_schema import WebSession
from chatbot.store.database import Database
from chatbot.store.schema import utcnow
from chatbot.store.support_schema import USER_ROLES, User

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{3,80}")
WRONG_LOGIN = "wrong username or password"


@dataclass(frozen=True)
class UserInfo:
    """An account as the rest of the program sees it (never the password hash)."""

    id: int
    username: str
    role: str
    active: bool
    session_epoch: int
    created_at: datetime
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _utc(value: datetime | None) -> datetime:
    """`value` (default: now) as an aware UTC datetime; a naive one is taken as UTC
    (SQLite hands back naive datetimes)."""
    if value is None:
        return utcnow()
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        role=user.role,
        active=bool(user.active),
        session_epoch=user.session_epoch,
        created_at=_utc(user.created_at),
        last_login_at=_utc_or_none(user.last_login_at),
    )


def check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME_PATTERN.fullmatch(username):
        raise InputError(
            f"username {username!r} is not allowed: use 3 to 80 letters, digits or . _ @ - (no spaces)"
        )
    return username


def _check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise InputError(f"role {role!r} is not one of: {', '.join(USER_ROLES)}")
    return role


def _same_name(username: str) -> ColumnElement[bool]:
    return func.lower(User.username) == username.strip().lower()


def _find(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(_same_name(username))).first()
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def _active_admin_ids(session: Session) -> list[int]:
    """The active admins' ids, their rows locked until the transaction ends (PostgreSQL),
    so that two sessions cannot each remove or demote one of the last two admins."""
    query = select(User.id).where(User.role == "admin", User.active.is_(True)).with_for_update()
    return list(session.scalars(query))


def _refuse_last_admin(session: Session, user: User, what: str, force: bool) -> None:
    if force or user.role != "admin" or not user.active:
        return
    if _active_admin_ids(session) == [user.id]:
        raise AccountError(
            f"{user.username!r} is the last active admin; {what} would leave nobody able to use the admin "
            "console (add another admin first, or use --force)"
        )


def _end_sessions(session: Session, user_id: int) -> None:
    """Every console session of the user ends (`chatbot.accounts.sessions`)."""
    session.execute(delete(WebSession).where(WebSession.user_id == user_id))


def add_user(database: Database, username: str, password: str, role: str) -> UserInfo:
    """Create an account; InputError for a bad name, role or password, AccountError when
    the name (in any case) is taken."""
    check_username(username)
    _check_role(role)
    check_password_policy(password, username=username)
    password_hash = hash_password(password)
    with database.session() as session:
        if session.scalars(select(User.id).where(_same_name(username))).first() is not None:
            raise AccountError(f"user {username!r} already exists")
        user = User(
            username=username,
            password_hash=password_hash,
            role=role,
            active=True,
            # A random start: SQLite may give a removed user's id to the next account,
            # and a session cookie of the removed user must not fit the new one.
            session_epoch=secrets.randbelow(2**30),
            created_at=utcnow(),
        )
        session.add(user)
        session.flush()
        return _info(user)


def list_users(database: Database) -> list[UserInfo]:
    with database.session() as session:
        return [_info(u) for u in session.scalars(select(User).order_by(func.lower(User.username)))]


def find_user(database: Database, username: str) -> UserInfo | None:
    """The account named `username` (in any case), or None."""
    with database.session() as session:
        user = session.scalars(select(User).where(_same_name(username))).first()
        return None if user is None else _info(user)


def get_user(database: Database, username: str) -> UserInfo:
    """The account named `username` (in any case); AccountError when there is none."""
    user = find_user(database, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


def count_admins(database: Database) -> int:
    """How many active admins there are."""
    with database.session() as session:
        query = (
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.active.is_(True))
        )
        return int(session.scalar(query) or 0)


def remove_user(database: Database, username: str, *, force: bool = False) -> UserInfo:
    """Delete the account (what the user did stays, under their username); their
    sessions end with it. Refuses to remove the last active admin unless `force`."""
    with database.session() as session:
        user = _find(session, username)
        _refuse_last_admin(session, user, "removing them", force)
        info = _info(user)
        _end_sessions(session, user.id)
        session.execute(delete(User).where(User.id == user.id))
        return info


def set_password(database: Database, username: str, password: str) -> UserInfo:
    """Give the account a new password: ends its sessions and lifts the login delays."""
    with database.session() as session:
        name = _find(session, username).username
    check_password_policy(password, username=name)
    password_hash = hash_password(password)
    with database.session() as session:
        user = _find(session, username)
        user.password_hash = password_hash
        user.session_epoch = user.session_epoch + 1
        _end_sessions(session, user.id)
        session.flush()
        info = _info(user)
    throttle.clear(database, info.username)
    return info


def set_role(database: Database, username: str, role: str, *, force: bool = False) -> UserInfo:
    """Change the account's role (its sessions end, so the new role applies at once).
    Refuses to demote the last active admin unless `force`."""
    _check_role(role)
    with database.session() as session:
        user = _find(session, username)
        if user.role == role:
            return _info(user)
        _refuse_last_admin(session, user, "making them an agent", force)
        user.role = role
        user.session_epoch = user.session_epoch + 1
        _end_sessions(session, user.id)
        session.flush()
        return _info(user)


def unlock_user(database: Database, username: str) -> UserInfo:
    """Lift every login delay on the account (forget the wrong passwords counted so far,
    from every address); its sessions are untouched."""
    info = get_user(database, username)
    throttle.clear(database, info.username)
    return info


def authenticate(
    database: Database,
    username: str,
    password: str,
    *,
    address: str,
    policy: ThrottlePolicy,
    now: datetime | None = None,
) -> UserInfo:
    """The account `username` logs in with `password` from client `address`, or
    LoginRefused.

    No lockout: after a few failures the name (from that address, from every address,
    and the address over every name) waits a growing delay before a password is checked
    again (`chatbot.accounts.throttle`), LoginThrottled until then. Unknown and known
    names read the same, wait the same and cost the same hashing time. A failure never
    touches the account's existing sessions. A success forgets this address's failures
    for the name and records the login."""
    now = _utc(now)
    name = username.strip() if isinstance(username, str) else ""
    wait = throttle.wait_seconds(database, name, address, policy, now)
    if wait > 0:
        raise LoginThrottled(wait)
    if (
        not isinstance(password, str)
        or len(password) > MAX_PASSWORD_LENGTH
        or not USERNAME_PATTERN.fullmatch(name)
    ):
        dummy_verify(password if isinstance(password, str) else "")
        throttle.record_failure(database, name, address, now)
        raise LoginRefused(WRONG_LOGIN)

    with database.session() as session:
        user = session.scalars(select(User).where(_same_name(name))).first()
        found = None if user is None or not user.active else (user.id, user.password_hash)
    if found is None:
        dummy_verify(password)
        throttle.record_failure(database, name, address, now)
        raise LoginRefused(WRONG_LOGIN)
    user_id, stored_hash = found
    if not verify_password(stored_hash, password):
        throttle.record_failure(database, name, address, now)
        raise LoginRefused(WRONG_LOGIN)

    throttle.forget(database, name, address)
    new_hash = hash_password(password) if needs_rehash(stored_hash) else None
    with database.session() as session:
        session.execute(update(User).where(User.id == user_id).values(last_login_at=now))
        if new_hash is not None:
            # Only if the password was not changed meanwhile.
            session.execute(
                update(User)
                .where(User.id == user_id, User.password_hash == stored_hash)
                .values(password_hash=new_hash)
            )
        user = session.get(User, user_id)
        if user is None or not user.active:
            raise LoginRefused(WRONG_LOGIN)
        return _info(user)
