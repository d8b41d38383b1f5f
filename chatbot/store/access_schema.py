"""SQLAlchemy tables for who is logged in and who tried: the console sessions (one row
per login, deleted by logout, a password or role change, or the account's removal) and
the failed logins that the login throttle counts and the admin console shows.

Structure only; the queries live in `chatbot.accounts.sessions` and
`chatbot.accounts.throttle`. Created by migration 0008_sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from chatbot.store.schema import Base, utcnow


class WebSession(Base):
    """One login to a console. The browser's cookie holds a random session key; only its
    SHA-256 is stored, so a copy of the database opens no console."""

    __tablename__ = "web_sessions"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    address: Mapped[str | None] = mapped_column(String(64))


class LoginFailure(Base):
    """One wrong password (or unknown username), by name as typed (lower-cased) and the
    client address it came from. Kept for a day; a successful login from the same address
    forgets that address's failures for that name."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    __table_args__ = (
        Index("ix_login_failures_username_at", "username", "at"),
        Index("ix_login_failures_address_at", "address", "at"),
    )
