"""The login throttle: growing delays after wrong passwords, instead of a lockout that
a stranger could trigger (OWASP ASVS 2.2.1).

Failures are counted in the store (`login_failures`, shared by every worker) by the
name as typed, whether or not an account has it, so an unknown name is throttled
exactly like a known one and the answers never tell which names exist. Three counts,
each over the last hour, each with its own free allowance, then a delay that doubles
with every further failure, up to `max_delay_seconds`:

- this name from this address (a mistyping agent: a few free tries, then seconds);
- this address over every name (one client spraying passwords over many names);
- this name over every address, capped at `account_failures_per_hour` (many clients
  guessing one password), after which the name waits for its oldest failure to age out.

A success forgets its own address's failures for that name, never another address's,
so a stranger's guesses never stop the real user from their own address for longer than
the account-wide cap. Nothing here ends or touches an existing session.

Where the job ends: checking the password is `chatbot.accounts.users.authenticate`'s;
the per-process request limit before any of this is `chatbot.accounts.ratelimit`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select

from chatbot.store.access_schema import LoginFailure
from chatbot.store.database import Database
from chatbot.store.schema import utcnow

WINDOW = timedelta(hours=1)
KEPT = timedelta(days=1)
# Names and addresses longer than their columns are cut (nothing that long is an account).
MAX_NAME, MAX_ADDRESS = 80, 64


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 3
    address_free_failures: int = 10
    max_delay_seconds: float = 300.0
    account_failures_per_hour: int = 100

    def __post_init__(self) -> None:
        if min(self.free_failures, self.address_free_failures, self.account_failures_per_hour) < 1:
            raise ValueError(f"every allowance of the login throttle must be at least 1: {self}")
        if self.max_delay_seconds <= 0:
            raise ValueError(f"max_delay_seconds must be positive, got {self.max_delay_seconds}")


@dataclass(frozen=True)
class FailureSummary:
    """What the admin console shows of one name's recent failures."""

    username: str
    failures: int
    addresses: int
    last_at: datetime
    wait_seconds: float


def delay_after(failures: int, free: int, max_delay: float) -> float:
    """Seconds to wait after the latest of `failures` failures: none while within the
    free allowance, then 1, 2, 4, … seconds, at most `max_delay`."""
    if failures < free:
        return 0.0
    return float(min(max_delay, 2.0 ** min(failures - free, 30)))


def _key(username: str) -> str:
    return username.strip().lower()[:MAX_NAME]


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes: they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def wait_seconds(
    database: Database,
    username: str,
    address: str,
    policy: ThrottlePolicy,
    now: datetime | None = None,
) -> float:
    """How long `username` from `address` must wait before a password is checked; 0.0
    when it may try now."""
    now = _utc(now or utcnow())
    since = now - WINDOW
    name, address = _key(username), address[:MAX_ADDRESS]
    with database.session() as session:

        def count_and_last(*where: ColumnElement[bool]) -> tuple[int, datetime | None]:
            row = session.execute(
                select(func.count(), func.max(LoginFailure.at)).where(
                    LoginFailure.at > since, *where
                )
            ).one()
            return int(row[0]), (None if row[1] is None else _utc(row[1]))

        pair, pair_last = count_and_last(
            LoginFailure.username == name, LoginFailure.address == address
        )
        spread, spread_last = count_and_last(LoginFailure.address == address)
        account, _ = count_and_last(LoginFailure.username == name)
        waits = [0.0]
        if pair_last is not None:
            delay = delay_after(pair, policy.free_failures, policy.max_delay_seconds)
            waits.append(delay - (now - pair_last).total_seconds())
        if spread_last is not None:
            delay = delay_after(spread, policy.address_free_failures, policy.max_delay_seconds)
            waits.append(delay - (now - spread_last).total_seconds())
        if account >= policy.account_failures_per_hour:
            oldest = session.scalar(
                select(LoginFailure.at)
                .where(LoginFailure.username == name, LoginFailure.at > since)
                .order_by(LoginFailure.at.desc())
                .offset(policy.account_failures_per_hour - 1)
                .limit(1)
            )
            if oldest is not None:
                waits.append((_utc(oldest) + WINDOW - now).total_seconds())
    return max(waits)


def record_failure(
    database: Database, username: str, address: str, now: datetime | None = None
) -> None:
    """Count one failed login (and forget failures older than a day)."""
    now = _utc(now or utcnow())
    with database.session() as session:
        session.execute(delete(LoginFailure).where(LoginFailure.at < now - KEPT))
        session.add(LoginFailure(username=_key(username), address=address[:MAX_ADDRESS], at=now))


def forget(database: Database, username: str, address: str) -> None:
    """A successful login: that address's failures for that name no longer count."""
    with database.session() as session:
        session.execute(
            delete(LoginFailure).where(
                LoginFailure.username == _key(username),
                LoginFailure.address == address[:MAX_ADDRESS],
            )
        )


def clear(database: Database, username: str) -> int:
    """An admin lifts every delay on `username`; returns how many failures were forgotten."""
    with database.session() as session:
        result = session.execute(
            delete(LoginFailure).where(LoginFailure.username == _key(username))
        )
        return int(getattr(result, "rowcount", 0) or 0)


def recent_failures(
    database: Database,
    policy: ThrottlePolicy,
    *,
    since: timedelta = KEPT,
    now: datetime | None = None,
    limit: int = 50,
) -> list[FailureSummary]:
    """Names with failed logins in the last `since`, most recent first: how many, from
    how many addresses, when the last was, and how long the name now waits (from an
    address that has not failed)."""
    now = _utc(now or utcnow())
    with database.session() as session:
        rows = session.execute(
            select(
                LoginFailure.username,
                func.count(),
                func.count(func.distinct(LoginFailure.address)),
                func.max(LoginFailure.at),
            )
            .where(LoginFailure.at > now - since)
            .group_by(LoginFailure.username)
            .order_by(func.max(LoginFailure.at).desc())
            .limit(limit)
        ).all()
    return [
        FailureSummary(
            username=name,
            failures=int(count),
            addresses=int(addresses),
            last_at=_utc(last),
            wait_seconds=max(0.0, wait_seconds(database, name, "", policy, now)),
        )
        for name, count, addresses, last in rows
    ]
