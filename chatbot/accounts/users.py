"""Agents' and admins' accounts in the store: add, list, remove, change password or
role, log in (with a per-account lockout that every worker shares through the
database), and find the user behind a session.

Usernames are kept as typed and matched without regard to case ("Alice" logs in as
"alice"). Every change that must end existing sessions (password, role, removal)
changes or removes what `session_user` checks. Cookies, forms and the per-client rate
limit are `chatbot.web`'s; hashing is `chatbot.accounts.passwords`'s.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session

from chatbot.accounts.passwords import (
    MAX_PASSWORD_LENGTH,
    check_password_policy,
    dummy_verify,
    hash_password,
    needs_rehash,
    verify_password,
)
from chatbot.errors import AccountError, InputError, LoginRefused
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
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def is_locked(self, now: datetime | None = None) -> bool:
        return self.locked_until is not None and self.locked_until > _utc(now)

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
        locked_until=_utc_or_none(user.locked_until),
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
            failed_logins=0,
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
        session.execute(delete(User).where(User.id == user.id))
        return info


def set_password(database: Database, username: str, password: str) -> UserInfo:
    """Give the account a new password: ends its sessions and lifts a lockout."""
    with database.session() as session:
        name = _find(session, username).username
    check_password_policy(password, username=name)
    password_hash = hash_password(password)
    with database.session() as session:
        user = _find(session, username)
        user.password_hash = password_hash
        user.session_epoch = user.session_epoch + 1
        user.failed_logins = 0
        user.locked_until = None
        session.flush()
        return _info(user)


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
        session.flush()
        return _info(user)


def unlock_user(database: Database, username: str) -> UserInfo:
    """Lift a lockout and forget the wrong passwords counted so far."""
    with database.session() as session:
        user = _find(session, username)
        user.failed_logins = 0
        user.locked_until = None
        session.flush()
        return _info(user)


def _locked_message(locked_until: datetime) -> str:
    return f"account locked until {_utc(locked_until):%H:%M} UTC (too many wrong passwords)"


def authenticate(
    database: Database,
    username: str,
    password: str,
    *,
    lockout_failures: int,
    lockout_minutes: float,
    now: datetime | None = None,
) -> UserInfo:
    """The account `username` logs in with `password`, or LoginRefused.

    One message for an unknown name and a wrong password (an unknown name costs the
    same hashing time). Each attempt takes a slot in the account's failure count
    before the password is checked, in one atomic UPDATE, so parallel guesses from
    several workers cannot exceed `lockout_failures` before the account locks for
    `lockout_minutes`. A success empties the count and records the login."""
    if lockout_failures < 1:
        raise ValueError("lockout_failures must be at least 1")
    now = _utc(now)
    name = username.strip() if isinstance(username, str) else ""
    if (
        not isinstance(password, str)
        or len(password) > MAX_PASSWORD_LENGTH
        or not USERNAME_PATTERN.fullmatch(name)
    ):
        raise LoginRefused(WRONG_LOGIN)

    with database.session() as session:
        user = session.scalars(select(User).where(_same_name(name))).first()
        found = (
            None if user is None else (user.id, bool(user.active), _utc_or_none(user.locked_until))
        )
    if found is None or not found[1]:
        dummy_verify(password)
        raise LoginRefused(WRONG_LOGIN)
    user_id, _active, locked_until = found
    if locked_until is not None and locked_until > now:
        raise LoginRefused(_locked_message(locked_until))

    with database.session() as session:
        claimed = session.execute(
            update(User)
            .where(
                User.id == user_id,
                User.active.is_(True),
                or_(User.locked_until.is_(None), User.locked_until <= now),
            )
            .values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins, User.password_hash)
        ).first()
        if claimed is None:  # locked, removed or disabled since the first look
            current = session.get(User, user_id)
            if current is not None and current.active and current.locked_until is not None:
                raise LoginRefused(_locked_message(current.locked_until))
            raise LoginRefused(WRONG_LOGIN)
        attempt, stored_hash = claimed
        if attempt > lockout_failures:
            # Other attempts in flight used the last slots: lock without checking.
            until = now + timedelta(minutes=lockout_minutes)
            session.execute(
                update(User).where(User.id == user_id).values(locked_until=until, failed_logins=0)
            )
            raise LoginRefused(_locked_message(until))

    if not verify_password(stored_hash, password):
        if attempt >= lockout_failures:
            until = now + timedelta(minutes=lockout_minutes)
            with database.session() as session:
                session.execute(
                    update(User)
                    .where(User.id == user_id)
                    .values(locked_until=until, failed_logins=0)
                )
            raise LoginRefused(_locked_message(until))
        raise LoginRefused(WRONG_LOGIN)

    new_hash = hash_password(password) if needs_rehash(stored_hash) else None
    with database.session() as session:
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(failed_logins=0, locked_until=None, last_login_at=now)
        )
        if new_hash is not None:
            # Only if the password was not changed meanwhile.
            session.execute(
                update(User)
                .where(User.id == user_id, User.password_hash == stored_hash)
                .values(password_hash=new_hash)
            )
        user = session.get(User, user_id)
        if user is None:
            raise LoginRefused(WRONG_LOGIN)
        return _info(user)


def session_user(
    database: Database, user_id: object, epoch: object, *, now: datetime | None = None
) -> UserInfo | None:
    """The user a session cookie (user id, session epoch) stands for, or None when the
    account is gone, disabled, locked, or its password or role changed since the
    session began. One primary-key read: cheap enough for every request."""
    if not isinstance(user_id, int) or not isinstance(epoch, int):
        return None
    with database.session() as session:
        user = session.get(User, user_id)
        if user is None or not user.active or user.session_epoch != epoch:
            return None
        info = _info(user)
    if info.is_locked(now):
        return None
    return info
